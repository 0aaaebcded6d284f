// Package providerpb is the gRPC protocol between agora and LM provider
// plugins: provider.proto and the Go code protoc generates from it
// (committed, so building agora needs no protoc). Only plugins/host and
// plugins/sdk import it; the engine never sees these types.
//
// The Python message classes of the Python test plugin
// (plugins/plugintest/python) are generated here too.
//
// To regenerate after editing provider.proto (protoc from the
// protobuf-compiler package; the generators from the module proxy):
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.3.0
//	go generate ./plugins/providerpb
package providerpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative provider.proto
//go:generate protoc --python_out=../plugintest/python provider.proto
