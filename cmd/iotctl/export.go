package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
)

// exportCommand downloads a sensor's or device's readings as CSV or NDJSON
// (GET /api/export/...), streamed to stdout or a file.
func (a *app) exportCommand() *cobra.Command {
	var sensor, device int64
	var from, to, format, file string
	cmd := &cobra.Command{Use: "export (--sensor ID | --device ID)", Short: "Download readings as CSV or NDJSON (re-importable with backfill)", Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (sensor > 0) == (device > 0) {
				return usageErr(cmd, "give exactly one of --sensor and --device")
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			path := fmt.Sprintf("/api/export/sensors/%d", sensor)
			if device > 0 {
				path = fmt.Sprintf("/api/export/devices/%d", device)
			}
			q := url.Values{"format": {format}}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimRight(a.apiURL(), "/")+path+"?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+c.Token())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				return fmt.Errorf("export: %s: %s", resp.Status, strings.TrimSpace(string(b)))
			}
			var out io.Writer = a.out
			if file != "" && file != "-" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			n, err := io.Copy(out, resp.Body)
			if err != nil {
				return fmt.Errorf("export interrupted after %d bytes: %w", n, err)
			}
			if file != "" && file != "-" {
				fmt.Fprintf(a.errOut, "export: %d bytes written to %s\n", n, file)
			}
			return nil
		}}
	f := cmd.Flags()
	f.Int64Var(&sensor, "sensor", 0, "sensor to export")
	f.Int64Var(&device, "device", 0, "device to export (all its sensors)")
	f.StringVar(&from, "from", "", "oldest time (RFC 3339 or epoch milliseconds)")
	f.StringVar(&to, "to", "", "end of the range, exclusive")
	f.StringVar(&format, "format", "csv", "csv or ndjson")
	f.StringVarP(&file, "file", "f", "", "write to this file instead of stdout")
	return cmd
}

// backfillCommand imports historical readings of one device from CSV or
// NDJSON through the HTTP ingest gateway, with the device's key: validated
// and durable like any reading, and idempotent when run again (readings
// carry their timestamps, so a replayed batch lands on the same readings).
func (a *app) backfillCommand() *cobra.Command {
	var httpURL, format string
	var batch int
	cmd := &cobra.Command{Use: "backfill DEVICE FILE", Short: "Import historical readings from CSV or NDJSON (idempotent), with progress", Args: nArgs(2, 2),
		Long: `backfill sends the readings of FILE (as written by 'iotctl export': CSV with the columns
sensor_id,timestamp,value where value is a JSON literal, or NDJSON readings) to the HTTP ingest
gateway with the device's key, in batches; every batch is acknowledged only once durable. The
timestamps are kept, so running it again stores nothing twice. Progress goes to stderr.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args[:1])
			if err != nil {
				return err
			}
			if format == "" {
				format = "csv"
				if strings.HasSuffix(args[1], ".ndjson") || strings.HasSuffix(args[1], ".jsonl") {
					format = "ndjson"
				}
			}
			if format != "csv" && format != "ndjson" {
				return usageErr(cmd, "--format: want csv or ndjson")
			}
			if batch < 1 || batch > 10000 {
				return usageErr(cmd, "--batch: want 1..10000")
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			k, err := c.Core.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: ids[0]})
			cancel()
			if err != nil {
				return fmt.Errorf("device %d key: %w", ids[0], err)
			}
			if httpURL == "" {
				u, err := url.Parse(a.apiURL())
				if err != nil {
					return err
				}
				httpURL = "http://" + hostPort(u.Hostname(), "8083") + "/"
			}
			total, err := countReadings(args[1], format)
			if err != nil {
				return err
			}
			return a.backfill(cmd.Context(), args[1], format, httpURL, k.GetToken(), batch, total)
		}}
	f := cmd.Flags()
	f.StringVar(&httpURL, "http-url", env("IOT_HTTP_URL", ""), "HTTP gateway URL ($IOT_HTTP_URL; default http://<api host>:8083/)")
	f.StringVar(&format, "format", "", "csv or ndjson (default: by the file name, .ndjson/.jsonl, else csv)")
	f.IntVar(&batch, "batch", 5000, "readings per request (at most 10000)")
	return cmd
}

// readingSource yields the file's readings as JSON objects.
type readingSource func(yield func(line int, reading []byte) error) error

func openReadings(path, format string) (readingSource, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	if format == "ndjson" {
		return func(yield func(int, []byte) error) error {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for line := 1; sc.Scan(); line++ {
				b := bytes.TrimSpace(sc.Bytes())
				if len(b) == 0 {
					continue
				}
				if len(b) < 2 || b[0] != '{' || !json.Valid(b) {
					return fmt.Errorf("line %d: not a JSON object", line)
				}
				if err := yield(line, append([]byte(nil), b...)); err != nil {
					return err
				}
			}
			return sc.Err()
		}, f, nil
	}
	return func(yield func(int, []byte) error) error {
		cr := csv.NewReader(r)
		cr.ReuseRecord = true
		head, err := cr.Read()
		if err != nil {
			return fmt.Errorf("csv header: %w", err)
		}
		col := map[string]int{}
		for i, h := range head {
			col[strings.TrimSpace(strings.ToLower(h))] = i
		}
		for _, need := range []string{"sensor_id", "timestamp", "value"} {
			if _, ok := col[need]; !ok {
				return fmt.Errorf("csv header: no %q column (want sensor_id,timestamp,value)", need)
			}
		}
		for line := 2; ; line++ {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			v := []byte(rec[col["value"]])
			if !json.Valid(v) {
				v, _ = json.Marshal(rec[col["value"]]) // a bare string
			}
			sid, ts := rec[col["sensor_id"]], rec[col["timestamp"]]
			sidJSON, _ := json.Marshal(sid)
			tsJSON, _ := json.Marshal(ts)
			if _, err := strconv.ParseFloat(ts, 64); err == nil {
				tsJSON = []byte(ts) // epoch numbers stay numbers
			}
			obj := fmt.Appendf(nil, `{"sensor_id":%s,"timestamp":%s,"value":%s}`, sidJSON, tsJSON, v)
			if err := yield(line, obj); err != nil {
				return err
			}
		}
	}, f, nil
}

func countReadings(path, format string) (int, error) {
	src, c, err := openReadings(path, format)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	err = src(func(int, []byte) error { n++; return nil })
	return n, err
}

func (a *app) backfill(ctx context.Context, path, format, httpURL, key string, batch, total int) error {
	src, c, err := openReadings(path, format)
	if err != nil {
		return err
	}
	defer c.Close()
	var buf bytes.Buffer
	n, first, sent, accepted := 0, 0, 0, int64(0)
	start, lastReport := time.Now(), time.Time{}
	client := &http.Client{Timeout: a.timeout}
	flush := func(lastLine int) error {
		if n == 0 {
			return nil
		}
		buf.WriteByte(']')
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL, bytes.NewReader(buf.Bytes()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("lines %d-%d: %w (the batches before are stored; run backfill again to resume)", first, lastLine, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		var ans gatewayAnswer
		_ = json.Unmarshal(body, &ans)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("lines %d-%d refused: http %d %s %s %s (the batches before are stored)", first, lastLine, resp.StatusCode, ans.Code, ans.Message, strings.TrimSpace(string(body)))
		}
		sent += n
		accepted += ans.Accepted
		if time.Since(lastReport) >= time.Second || sent == total {
			lastReport = time.Now()
			pct := 100.0
			if total > 0 {
				pct = 100 * float64(sent) / float64(total)
			}
			fmt.Fprintf(a.errOut, "backfill: %d/%d readings (%.0f%%) stored, %.0f/s\n", sent, total, pct, float64(sent)/time.Since(start).Seconds())
		}
		buf.Reset()
		n = 0
		return nil
	}
	lastLine := 0
	err = src(func(line int, obj []byte) error {
		if n == 0 {
			buf.WriteByte('[')
			first = line
		} else {
			buf.WriteByte(',')
		}
		buf.Write(obj)
		n++
		lastLine = line
		if n >= batch || buf.Len() > 768<<10 {
			return flush(line)
		}
		return nil
	})
	if err == nil {
		err = flush(lastLine)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "{\"readings\":%d,\"accepted\":%d}\n", sent, accepted)
	return nil
}
