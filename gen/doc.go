// Package gen is the module of the Go code generated from proto/ by
// `make generate`: the messages (iot/<service>/v1) and their Connect
// clients and handlers (iot/<service>/v1/<service>v1connect). The server and
// the Go SDK (sdk/go) both import it, so every .proto file is registered once
// per binary. It depends on protobuf and connect only; the grpc-go and
// grpc-gateway code the server needs lives in internal/gengrpc.
package gen
