package storeopensearch

// This file holds the HTTP requests to the cluster.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// do sends a JSON request; out (may be nil) receives the JSON response.
// It returns the HTTP status and an error for non-2xx answers.
func (s *Store) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	raw, status, err := s.raw(ctx, method, path, "application/json", rd)
	if err != nil {
		return status, err
	}
	if status >= 300 {
		return status, fmt.Errorf("opensearch %s %s: %d %s", method, path, status, truncate(raw, 500))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("decode opensearch response: %w", err)
		}
	}
	return status, nil
}

func (s *Store) raw(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := s.c.Stream(req) // the raw body, read whole below
	if err != nil {
		return nil, 0, fmt.Errorf("opensearch %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, res.StatusCode, fmt.Errorf("read opensearch response: %w", err)
	}
	return raw, res.StatusCode, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
