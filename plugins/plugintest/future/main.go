// Command future is a test plugin built against a future version 3 of the
// provider protocol: agora, which speaks versions 1 and 2, must refuse it and
// name both versions.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/agorabench/agora/plugins/providerpb"
)

type v2 struct{ plugin.NetRPCUnsupportedPlugin }

func (v2) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterProviderServer(s, pb.UnimplementedProviderServer{})
	return nil
}

func (v2) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: 3, MagicCookieKey: pb.CookieKey, MagicCookieValue: pb.CookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{3: {pb.PluginName: v2{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
