//go:build !cgo

package main

// cgoNote marks a CGO_ENABLED=0 build in `iotplatform version`: it has no Kafka bus.
const cgoNote = ", no cgo: without the Kafka bus"
