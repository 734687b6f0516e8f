// Command otlpsink is an OTLP trace receiver for benchmarks: it accepts
// spans over OTLP/gRPC and OTLP/HTTP on loopback, keeps count, and prints
// the count when stopped (SIGTERM/SIGINT).
//
//	go run ./bench/otlpsink -grpc 127.0.0.1:14317 -http 127.0.0.1:14318
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/iotplatform/iotplatform/internal/telemetry/otlptest"
)

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:14317", "OTLP/gRPC address")
	httpAddr := flag.String("http", "127.0.0.1:14318", "OTLP/HTTP address")
	flag.Parse()
	r, stop, err := otlptest.Listen(*grpcAddr, *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
	fmt.Println("otlpsink: grpc", r.GRPCAddr, "http", r.HTTPURL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	stop()
	fmt.Println("otlpsink: spans received", r.Count())
}
