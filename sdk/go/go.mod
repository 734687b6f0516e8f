module github.com/iotplatform/iotplatform/sdk/go

go 1.26.0

require (
	connectrpc.com/connect v1.21.1
	github.com/iotplatform/iotplatform/gen v0.0.0
)

require google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e

// The generated code lives in the gen module of the same repository.
replace github.com/iotplatform/iotplatform/gen => ../../gen
