package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/iotplatform/iotplatform/app"
)

// function runs `iotplatform function`: Core procedures as a stateless
// function (Cloud Run / Knative, or an OpenWhisk action).
func function(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("function", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg app.FunctionConfig
	cfg.RegisterFlags(fs)
	logFormat := fs.String("log-format", envOr("IOT_LOG_FORMAT", "json"), "log format: json or text ($IOT_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	a, err := app.NewFunction(log, cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

// healthcheck is the container HEALTHCHECK of an image without shell or
// curl: GET url (default http://127.0.0.1:$port/readyz, port from
// IOT_API_ADDR or PORT, else 8080) must answer 200 within 3 s.
func healthcheck(args []string, stdout, stderr io.Writer) error {
	url := ""
	if len(args) > 0 {
		url = args[0]
	} else {
		port := "8080"
		if p := os.Getenv("PORT"); p != "" {
			port = p
		}
		if a := os.Getenv("IOT_API_ADDR"); a != "" {
			if i := strings.LastIndex(a, ":"); i >= 0 && i < len(a)-1 {
				port = a[i+1:]
			}
		}
		url = "http://127.0.0.1:" + port + "/readyz"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("healthcheck: %s answered %d: %s", url, resp.StatusCode, b)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
