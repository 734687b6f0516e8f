//go:build cgo

package buskafka

// Available reports whether this binary contains the Kafka client: true in
// builds with cgo, false in CGO_ENABLED=0 builds (see nocgo.go).
const Available = true
