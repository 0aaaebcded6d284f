// Package sdk is what an LM provider plugin for agora imports: implement
// Provider (and optionally TokenCounter or Embedder), call Serve from
// main, and build the program as agora-provider-NAME. agora finds the
// binary, starts it through github.com/hashicorp/go-plugin, and talks to it
// over gRPC (plugins/providerpb); rate limits, retries, budgets and state
// stay on agora's side. docs/plugins.md shows a whole provider.
//
// Complete makes ONE attempt: do not retry inside it. Report failures
// with *Error (or HTTPError for an HTTP answer) so that agora knows
// whether to retry and how long the provider asked it to wait; any other
// error is permanent.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/agorabench/agora/plugins/providerpb"
)

// Provider is an LM provider.
type Provider interface {
	// Describe says what the provider offers.
	Describe(ctx context.Context) (Description, error)
	// Complete makes one chat completion attempt.
	Complete(ctx context.Context, req Request) (Completion, error)
}

// TokenCounter is implemented by providers that count prompt tokens as
// their models do.
type TokenCounter interface {
	CountTokens(ctx context.Context, model string, msgs []Message) (int, error)
}

// Embedder is implemented by providers that serve embeddings.
type Embedder interface {
	Embed(ctx context.Context, model string, inputs []string) ([][]float32, Usage, error)
}

// Description is what Describe returns.
type Description struct {
	Name   string
	Models []Model
	// Unavailable says why the provider cannot serve requests now (a key
	// that is not set, say); empty when it can. agora lists the plugin
	// but refuses to run a generator through it, with this reason.
	// Describe should succeed without credentials.
	Unavailable string
}

// Model is one model the provider serves. Prices are US dollars per
// million tokens, zero when unknown; limits are the account's defaults,
// zero when unknown (a spec's limits take precedence).
type Model struct {
	ID                      string
	InputPrice, OutputPrice float64
	// BatchDiscount is the fraction taken off for batch requests (0.5:
	// half price); 0 when there is none or it is unknown.
	BatchDiscount         float64
	RPM, TPM, Concurrency int
}

// Message is one chat message; Role is system, developer, user or
// assistant. It encodes as {"role": …, "content": …}, as most chat APIs
// expect.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Sampling holds the decoding parameters of the spec's sampling block;
// nil and zero fields are the provider's defaults. Extra holds the spec's
// sampling.extra entries as JSON.
type Sampling struct {
	Temperature, TopP *float64
	MaxTokens         int
	Stop              []string
	Seed              *int64
	Extra             map[string]json.RawMessage
}

// Request is one chat completion to make.
type Request struct {
	Model    string
	Messages []Message
	Sampling Sampling
}

// Usage is what the provider billed.
type Usage struct{ InputTokens, OutputTokens int }

// Completion is one answer. FinishReason is in OpenAI's terms (stop,
// length, content_filter, tool_calls); Model is the model as the provider
// reported it.
type Completion struct {
	Text, FinishReason, Model, ID, SystemFingerprint string
	Usage                                            Usage
}

// Error is a failed attempt. Its message must not carry the API key.
type Error struct {
	Message string
	// Retryable: the same request may succeed later.
	Retryable bool
	// RateLimited: the provider refused for a rate limit or overload;
	// agora lowers its concurrency. Implies Retryable.
	RateLimited bool
	// RetryAfter is how long the provider asked to wait; 0 when it did
	// not say.
	RetryAfter time.Duration
	// Status is the provider's HTTP status and Code its error code or
	// type, when known.
	Status int
	Code   string
}

func (e *Error) Error() string { return e.Message }

// Retryable wraps err as a failure worth retrying (a dropped connection, a
// timeout).
func Retryable(err error) *Error { return &Error{Message: err.Error(), Retryable: true} }

// HTTPError classifies an HTTP error answer: 429 and 529 (overloaded) are
// rate limits, honouring retry-after-ms and Retry-After (seconds or an
// HTTP date); 408, 409, 425 and 5xx are retryable; anything else is
// permanent. msg is the provider's message, code its error type.
func HTTPError(status int, h http.Header, code, msg string) *Error {
	e := &Error{Status: status, Code: code, Message: fmt.Sprintf("%d %s", status, http.StatusText(status))}
	if code != "" {
		e.Message = fmt.Sprintf("%d %s", status, code)
	}
	if msg != "" {
		e.Message += ": " + msg
	}
	switch {
	case status == http.StatusTooManyRequests || status == 529:
		e.RateLimited, e.Retryable = true, true
		e.RetryAfter = retryAfter(h, time.Now())
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooEarly || status >= 500:
		e.Retryable = true
	}
	return e
}

func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
			return time.Duration(s * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now))
		}
	}
	return 0
}

// Log is the plugin's logger. Its lines go to stderr as JSON, which agora
// reads into its own log (.agora/agora.log) with their levels; anything
// else a plugin writes to stderr arrives there too, as debug lines.
var Log = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Trace})

// Serve serves p to agora and returns when agora ends the plugin. It
// exits the process when agora disappears, even if agora was killed
// without a chance to stop it. Run by hand, it says so and exits 1.
func Serve(p Provider) {
	go watchParent(os.Getppid(), time.Second/2, func() { os.Exit(2) })
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			pb.ProtocolVersion: {pb.PluginName: &grpcPlugin{impl: p}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     Log,
	})
}

// Handshake is the go-plugin handshake of agora's provider plugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  pb.ProtocolVersion,
	MagicCookieKey:   pb.CookieKey,
	MagicCookieValue: pb.CookieValue,
}

// watchParent calls exit once the process's parent is no longer ppid: the
// parent died and the process was reparented (to init or a subreaper).
func watchParent(ppid int, every time.Duration, exit func()) {
	if ppid <= 1 {
		return
	}
	for {
		time.Sleep(every)
		if os.Getppid() != ppid {
			exit()
			return
		}
	}
}

// grpcPlugin is the server half of go-plugin's GRPCPlugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Provider
}

func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterProviderServer(s, &server{impl: g.impl})
	return nil
}

func (g *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the SDK serves providers; agora's plugins/host is the client")
}

// server adapts a Provider to the gRPC service.
type server struct {
	pb.UnimplementedProviderServer
	impl Provider
}

func (s *server) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	out := &pb.DescribeResponse{Name: d.Name, Unavailable: d.Unavailable, Capabilities: &pb.Capabilities{}}
	_, out.Capabilities.CountTokens = s.impl.(TokenCounter)
	_, out.Capabilities.Embeddings = s.impl.(Embedder)
	if b, ok := s.impl.(Batcher); ok {
		out.Capabilities.Batches = true
		l := b.BatchLimits()
		out.Capabilities.BatchLimits = &pb.BatchLimits{MaxRequests: int32(l.MaxRequests), MaxBytes: l.MaxBytes}
	}
	for _, m := range d.Models {
		pm := &pb.Model{Id: m.ID}
		if m.InputPrice > 0 || m.OutputPrice > 0 {
			pm.Price = &pb.Price{InputPerMtok: m.InputPrice, OutputPerMtok: m.OutputPrice, BatchDiscount: m.BatchDiscount}
		}
		if m.RPM > 0 || m.TPM > 0 || m.Concurrency > 0 {
			pm.Limits = &pb.RateLimits{RequestsPerMinute: int32(m.RPM), TokensPerMinute: int32(m.TPM), Concurrency: int32(m.Concurrency)}
		}
		out.Models = append(out.Models, pm)
	}
	return out, nil
}

func (s *server) Complete(ctx context.Context, r *pb.CompleteRequest) (*pb.CompleteResponse, error) {
	req := request(r)
	c, err := s.impl.Complete(ctx, req)
	if err != nil {
		return &pb.CompleteResponse{Result: &pb.CompleteResponse_Error{Error: wireError(ctx, err)}}, nil
	}
	return &pb.CompleteResponse{Result: &pb.CompleteResponse_Completion{Completion: wireCompletion(c)}}, nil
}

// request is r in the SDK's terms.
func request(r *pb.CompleteRequest) Request {
	req := Request{Model: r.GetModel(), Messages: messages(r.GetMessages())}
	if sp := r.GetSampling(); sp != nil {
		req.Sampling = Sampling{Temperature: sp.Temperature, TopP: sp.TopP, MaxTokens: int(sp.GetMaxTokens()),
			Stop: sp.GetStop(), Seed: sp.Seed}
		if len(sp.GetExtraJson()) > 0 {
			req.Sampling.Extra = map[string]json.RawMessage{}
			for k, v := range sp.GetExtraJson() {
				req.Sampling.Extra[k] = json.RawMessage(v)
			}
		}
	}
	return req
}

func wireCompletion(c Completion) *pb.Completion {
	return &pb.Completion{
		Text: c.Text, FinishReason: c.FinishReason, Model: c.Model, Id: c.ID, SystemFingerprint: c.SystemFingerprint,
		Usage: &pb.Usage{InputTokens: int64(c.Usage.InputTokens), OutputTokens: int64(c.Usage.OutputTokens)},
	}
}

func (s *server) CountTokens(ctx context.Context, r *pb.CountTokensRequest) (*pb.CountTokensResponse, error) {
	tc, ok := s.impl.(TokenCounter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this provider does not count tokens")
	}
	n, err := tc.CountTokens(ctx, r.GetModel(), messages(r.GetMessages()))
	if err != nil {
		return nil, statusError(ctx, err)
	}
	return &pb.CountTokensResponse{Tokens: int64(n)}, nil
}

func (s *server) Embed(ctx context.Context, r *pb.EmbedRequest) (*pb.EmbedResponse, error) {
	em, ok := s.impl.(Embedder)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this provider does not serve embeddings")
	}
	vs, u, err := em.Embed(ctx, r.GetModel(), r.GetInputs())
	if err != nil {
		return nil, statusError(ctx, err)
	}
	out := &pb.EmbedResponse{Usage: &pb.Usage{InputTokens: int64(u.InputTokens), OutputTokens: int64(u.OutputTokens)}}
	for _, v := range vs {
		out.Embeddings = append(out.Embeddings, &pb.Embedding{Values: v})
	}
	return out, nil
}

func messages(ms []*pb.Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = Message{Role: m.GetRole(), Content: m.GetContent()}
	}
	return out
}

// statusError is a failed CountTokens or Embed as a gRPC status, whose
// code tells agora what to do: RESOURCE_EXHAUSTED for a rate limit,
// UNAVAILABLE for what may succeed later, DEADLINE_EXCEEDED when the
// call's deadline passed, FAILED_PRECONDITION for a permanent failure.
func statusError(ctx context.Context, err error) error {
	e := wireError(ctx, err)
	switch {
	case e.TimedOut:
		return status.Error(codes.DeadlineExceeded, e.Message)
	case e.RateLimited:
		return status.Error(codes.ResourceExhausted, e.Message)
	case e.Retryable:
		return status.Error(codes.Unavailable, e.Message)
	}
	return status.Error(codes.FailedPrecondition, e.Message)
}

// wireError describes a failed attempt for agora. A plain error is
// permanent unless the attempt's context ended (agora's attempt timeout).
func wireError(ctx context.Context, err error) *pb.Error {
	var e *Error
	if errors.As(err, &e) {
		return &pb.Error{Message: e.Message, Retryable: e.Retryable || e.RateLimited, RateLimited: e.RateLimited,
			RetryAfterMs: e.RetryAfter.Milliseconds(), Status: int32(e.Status), Code: e.Code}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &pb.Error{Message: err.Error(), Retryable: true, TimedOut: true}
	}
	if ctx.Err() != nil {
		return &pb.Error{Message: err.Error(), Retryable: true}
	}
	return &pb.Error{Message: err.Error()}
}
