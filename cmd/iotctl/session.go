package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// session is what `iotctl login` keeps between runs, in
// $XDG_CONFIG_HOME/iotctl/session.json (default ~/.config/iotctl), mode
// 0600: user tokens live 15 minutes, the refresh token renews them.
type session struct {
	// API is the URL the session belongs to.
	API string `json:"api"`
	// LoginToken is the token login printed (what `export IOT_TOKEN=$(iotctl
	// login ...)` holds): with it in IOT_TOKEN the session is still used.
	LoginToken   string    `json:"login_token"`
	Token        string    `json:"token"`
	RefreshToken string    `json:"refresh_token"`
	ExpireTime   time.Time `json:"expire_time"`
}

func sessionPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("session file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "iotctl", "session.json"), nil
}

// loadSession returns the stored session, nil when there is none.
func loadSession(path string) (*session, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session file: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("session file %s: %w (delete it and log in again)", path, err)
	}
	return &s, nil
}

// save writes the session readable by its owner only, atomically.
func (s *session) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".session-*")
	if err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("session file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("session file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("session file: %w", err)
	}
	return nil
}

// clientOptions picks the credentials: the stored session when no token is
// given or the given one is the session's (so an expired user token is
// renewed with the refresh token), else the given token as is (device and
// consumer keys, tokens from elsewhere).
func (s *session) clientOptions(api, token string) (iot.Option, bool) {
	if s != nil && s.API == api && s.RefreshToken != "" && (token == "" || token == s.LoginToken || token == s.Token) {
		return iot.WithSession(s.Token, s.RefreshToken, s.ExpireTime), true
	}
	return iot.WithToken(token), false
}

// update stores the client's session when a call renewed it (refresh
// tokens work once, so the new one must be kept).
func (s *session) update(path string, c *iot.Client) error {
	tok, rt, exp := c.Session()
	if tok == s.Token && rt == s.RefreshToken {
		return nil
	}
	s.Token, s.RefreshToken, s.ExpireTime = tok, rt, exp
	return s.save(path)
}
