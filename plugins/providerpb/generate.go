// Package providerpb is the gRPC protocol between agora and LM provider
// plugins: provider.proto and the Go code protoc generates from it
// (committed, so building agora needs no protoc), and the two other
// services a plugin serves, health.proto and controller.proto (agora's
// side uses the Go implementations of grpc and go-plugin; the files state
// the contract for authors in other languages). Only plugins/host and
// plugins/sdk import it; the engine never sees these types.
//
// The Python message classes of the Python SDK (plugins/sdk/python) are
// generated here too.
//
// To regenerate after editing provider.proto: protoc 3.15 or later (proto3
// `optional`); the committed code was made with libprotoc 29.0, the one in
// grpcio-tools 1.71.0, whose Python code needs protobuf >= 5.29 at run
// time (the SDK pins it). The Go generators come from the module proxy:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.3.0
//	go generate ./plugins/providerpb
package providerpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative provider.proto
//go:generate protoc --python_out=../sdk/python/agora_plugin provider.proto
