// Command old is a test plugin built before the batch calls: it speaks
// provider protocol version 1 only (Describe and Complete: model old-1,
// at $1 in / $2 out per 1M tokens, answers every request with one short
// worked answer), as a
// plugin built for an older agora does. agora must keep completing
// through it one request at a time, and refuse batch mode for it before
// spending.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/agorabench/agora/plugins/providerpb"
)

type v1 struct{ plugin.NetRPCUnsupportedPlugin }

func (v1) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterProviderServer(s, server{})
	return nil
}

func (v1) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

// server answers the calls of version 1; the batch calls are
// UNIMPLEMENTED, as they are for a plugin generated from the version-1
// provider.proto.
type server struct{ pb.UnimplementedProviderServer }

func (server) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return &pb.DescribeResponse{Name: "old", Capabilities: &pb.Capabilities{},
		Models: []*pb.Model{{Id: "old-1", Price: &pb.Price{InputPerMtok: 1, OutputPerMtok: 2}}}}, nil
}

func (server) Complete(_ context.Context, r *pb.CompleteRequest) (*pb.CompleteResponse, error) {
	in := 0
	for _, m := range r.GetMessages() {
		in += len(m.GetContent())
	}
	const text = "Add the two numbers step by step: 3 + 4 = 7.\n[RESULT] 7 [/RESULT]"
	return &pb.CompleteResponse{Result: &pb.CompleteResponse_Completion{Completion: &pb.Completion{
		Text: text, FinishReason: "stop", Model: r.GetModel(), Id: "old-1",
		Usage: &pb.Usage{InputTokens: int64(in+3) / 4, OutputTokens: int64(len(text)+3) / 4},
	}}}, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: pb.CookieKey, MagicCookieValue: pb.CookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{1: {pb.PluginName: v1{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
