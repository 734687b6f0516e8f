module github.com/iotplatform/iotplatform/examples/go

go 1.26.0

require (
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/iotplatform/iotplatform/gen v0.0.0
	github.com/iotplatform/iotplatform/sdk/go v0.0.0
	google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e
)

require (
	connectrpc.com/connect v1.21.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)

// This example builds against the SDK in this repository; a program of
// your own requires github.com/iotplatform/iotplatform/sdk/go at a release
// instead (see docs/SDK.md).
replace (
	github.com/iotplatform/iotplatform/gen => ../../gen
	github.com/iotplatform/iotplatform/sdk/go => ../../sdk/go
)
