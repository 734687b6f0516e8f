// Command iotplatform is the platform's one server binary.
//
//	iotplatform serve [flags]   run the selected roles (all by default)
//	iotplatform function [flags] serve Core procedures as a stateless function
//	iotplatform healthcheck     exit 0 when /readyz answers 200 (container HEALTHCHECK)
//	iotplatform version         print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/iotplatform/iotplatform/app"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build, the Dockerfile); a plain `go build` falls back to the VCS revision
// the Go toolchain stamps into the binary (see buildVersion).
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "iotplatform:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("missing command")
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "iotplatform", buildVersion())
		return nil
	case "serve":
		return serve(args[1:], stderr)
	case "function":
		return function(args[1:], stderr)
	case "healthcheck":
		return healthcheck(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: iotplatform serve [flags] | function [flags] | healthcheck [url] | version\nrun `iotplatform serve -h` or `iotplatform function -h` for the flags")
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg app.Config
	cfg.RegisterFlags(fs)
	logFormat := fs.String("log-format", envOr("IOT_LOG_FORMAT", "json"), "log format: json or text ($IOT_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log.Info("starting", "version", buildVersion(), "roles", cfg.Roles)
	a, err := app.New(log, cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format: want json or text, got %q", format)
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
