package anthropic_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/plugintest"
	pb "github.com/agorabench/agora/plugins/providerpb"
)

// clientPlugin is the client half of go-plugin's GRPCPlugin.
type clientPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the test is the client")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pb.NewProviderClient(cc), nil
}

// TestBinaryBatches drives the built agora-provider-anthropic over gRPC,
// protocol version 2, against the stand-in: the batch calls as agora
// makes them.
func TestBinaryBatches(t *testing.T) {
	dir := plugintest.Build(t, t.TempDir(), "anthropic")
	s := anthropictest.New(anthropictest.Options{BatchPolls: 1, LineOutcome: func(id string) anthropictest.Outcome {
		if id == "grpc-key_b" {
			return anthropictest.Expired
		}
		return ""
	}})
	defer s.Close()
	cmd := exec.Command(filepath.Join(dir, "agora-provider-anthropic"))
	cmd.Env = append(os.Environ(), "ANTHROPIC_BASE_URL="+s.URL(), "ANTHROPIC_API_KEY="+s.APIKey())
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: pb.ProtocolVersion, MagicCookieKey: pb.CookieKey, MagicCookieValue: pb.CookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{pb.BatchVersion: {pb.PluginName: clientPlugin{}}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	defer c.Kill()
	rpc, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	if v := c.NegotiatedVersion(); v != pb.BatchVersion {
		t.Fatalf("protocol %d", v)
	}
	raw, err := rpc.Dispense(pb.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	p := raw.(pb.ProviderClient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d, err := p.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if caps := d.GetCapabilities(); !caps.GetBatches() || caps.GetBatchLimits().GetMaxRequests() != 100000 || caps.GetBatchLimits().GetMaxBytes() != 256000000 {
		t.Errorf("capabilities %v", caps)
	}
	if m := d.GetModels(); len(m) != 1 || m[0].GetPrice().GetBatchDiscount() != 0.5 {
		t.Errorf("models %v", m)
	}

	since := time.Now()
	stream, err := p.SubmitBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := func(text string) *pb.CompleteRequest {
		return &pb.CompleteRequest{Model: anthropictest.DefaultModel, Messages: []*pb.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: text}},
			Sampling: &pb.Sampling{MaxTokens: 100}}
	}
	for _, m := range []*pb.SubmitBatchRequest{
		{Part: &pb.SubmitBatchRequest_Header{Header: &pb.BatchHeader{Key: "grpc-key", Model: anthropictest.DefaultModel, Count: 2, Window: "24h"}}},
		{Part: &pb.SubmitBatchRequest_Item{Item: &pb.BatchItem{CustomId: "a", Request: msgs("one")}}},
		{Part: &pb.SubmitBatchRequest_Item{Item: &pb.BatchItem{CustomId: "b", Request: msgs("two")}}},
	} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	st, err := stream.CloseAndRecv()
	if err != nil || st.GetStatus() != "in_progress" || st.GetTotal() != 2 || st.GetEnded() {
		t.Fatalf("submit %v %v", st, err)
	}
	f, err := p.FindBatch(ctx, &pb.FindBatchRequest{Key: "grpc-key", Count: 2, SinceUnixMs: since.UnixMilli()})
	if err != nil || f.GetFound() != pb.FindBatchResponse_UNKNOWN || f.GetWhy() == "" {
		t.Errorf("find in progress %v %v", f, err)
	}
	for range 2 {
		st, err = p.GetBatch(ctx, &pb.BatchRef{Id: st.GetId()})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !st.GetEnded() || st.GetCompleted() != 1 || st.GetFailed() != 1 {
		t.Fatalf("ended %v", st)
	}
	f, err = p.FindBatch(ctx, &pb.FindBatchRequest{Key: "grpc-key", Count: 2, SinceUnixMs: since.UnixMilli()})
	if err != nil || f.GetFound() != pb.FindBatchResponse_FOUND || f.GetBatch().GetId() != st.GetId() {
		t.Errorf("find ended %v %v", f, err)
	}
	rs, err := p.BatchResults(ctx, &pb.BatchRef{Id: st.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*pb.BatchResult{}
	for {
		r, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.GetCustomId()] = r
	}
	if c := got["a"].GetCompletion(); c.GetText() != "echo: one" || c.GetUsage().GetInputTokens() != int64(anthropictest.Tokens("be brief")+anthropictest.Tokens("one")+3) {
		t.Errorf("a: %v", got["a"])
	}
	if e := got["b"].GetError(); !e.GetRetryable() || e.GetCode() != "expired" {
		t.Errorf("b: %v", got["b"])
	}
	// A refused batch: FAILED_PRECONDITION, none made.
	s.EnqueueBatch(anthropictest.OpCreate, anthropictest.FaultBadRequest)
	stream, _ = p.SubmitBatch(ctx)
	stream.Send(&pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Header{Header: &pb.BatchHeader{Key: "k2", Count: 1}}})
	stream.Send(&pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Item{Item: &pb.BatchItem{CustomId: "a", Request: msgs("x")}}})
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("refused: %v", err)
	}
	// A lost answer: UNAVAILABLE, and the batch is there to be found.
	s.EnqueueBatch(anthropictest.OpCreate, anthropictest.FaultLoseAnswer)
	stream, _ = p.SubmitBatch(ctx)
	stream.Send(&pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Header{Header: &pb.BatchHeader{Key: "k3", Count: 1}}})
	stream.Send(&pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Item{Item: &pb.BatchItem{CustomId: "a", Request: msgs("x")}}})
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.Unavailable {
		t.Errorf("lost answer: %v", err)
	}
	if tl := s.BatchTally(); tl.Batches != 2 {
		t.Errorf("tally %+v", tl)
	}
	c2, err := p.CancelBatch(ctx, &pb.BatchRef{Id: s.Batches()[1].ID})
	if err != nil || c2.GetStatus() != "canceling" {
		t.Errorf("cancel %v %v", c2, err)
	}
}
