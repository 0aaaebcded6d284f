package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agorabench/agora/executors/retry"
	pb "github.com/agorabench/agora/plugins/providerpb"
	"github.com/agorabench/agora/spec"
)

// Description is what a plugin says it offers.
type Description struct {
	Name                    string
	Models                  []Model
	CountTokens, Embeddings bool
	// Batches: the plugin offers the batch calls, within BatchLimits
	// (Plugin.BatchSupport also checks the protocol version).
	Batches     bool
	BatchLimits BatchLimits
	// Unavailable is why the plugin cannot serve requests now (a key that
	// is not set); empty when it can.
	Unavailable string
}

// Model is one model a plugin serves; zero prices and limits are unknown.
type Model struct {
	ID                      string
	InputPrice, OutputPrice float64 // dollars per million tokens
	// BatchDiscount is the fraction taken off for batch requests.
	BatchDiscount         float64
	RPM, TPM, Concurrency int
}

// Model returns the description of model id.
func (d Description) Model(id string) (Model, bool) {
	for _, m := range d.Models {
		if m.ID == id {
			return m, true
		}
	}
	return Model{}, false
}

func describe(d *pb.DescribeResponse) Description {
	out := Description{Name: d.GetName(), CountTokens: d.GetCapabilities().GetCountTokens(), Embeddings: d.GetCapabilities().GetEmbeddings(),
		Unavailable: d.GetUnavailable(), Batches: d.GetCapabilities().GetBatches(),
		BatchLimits: BatchLimits{MaxRequests: int(d.GetCapabilities().GetBatchLimits().GetMaxRequests()),
			MaxBytes: d.GetCapabilities().GetBatchLimits().GetMaxBytes()}}
	for _, m := range d.GetModels() {
		out.Models = append(out.Models, Model{ID: m.GetId(),
			InputPrice: m.GetPrice().GetInputPerMtok(), OutputPrice: m.GetPrice().GetOutputPerMtok(),
			BatchDiscount: m.GetPrice().GetBatchDiscount(),
			RPM:           int(m.GetLimits().GetRequestsPerMinute()), TPM: int(m.GetLimits().GetTokensPerMinute()),
			Concurrency: int(m.GetLimits().GetConcurrency())})
	}
	return out
}

// Config says how one generator uses a plugin.
type Config struct {
	// Generator is the generator's name in the spec, for messages.
	Generator string
	// Plugin is the plugin's name and SHA256 its pin (empty: none).
	Plugin, SHA256 string
	Model          string
	// Price is the spec's price, compared with the plugin's for a warning
	// in the log; nil when the spec has none.
	Price *spec.Price
	// Limits from the spec; zero fields take the plugin's advertised
	// limits for the model.
	Limits   spec.Limits
	Sampling spec.Sampling
	// Retry tunes the retry policy (timeouts, retries, backoff); its
	// limits come from Limits.
	Retry retry.Config
}

// Message is one chat message.
type Message struct{ Role, Content string }

// Response is one completion.
type Response struct {
	Text, FinishReason, Model, ID, SystemFingerprint string
	PromptTokens, CompletionTokens                   int
	Attempts                                         int
}

// Client makes one generator's completions through its plugin, under
// executors/retry's policy. It is safe for concurrent use.
type Client struct {
	cfg      Config
	plugin   *Plugin
	policy   *retry.Policy
	sampling *pb.Sampling
}

// Error is a failed call; its message names the generator and the plugin.
type Error struct {
	Permanent, Outage bool
	Attempts          int
	Msg               string
	generator         string
}

func (e *Error) Error() string { return "generator " + e.generator + ": " + e.Msg }

// Client starts (or reuses) cfg's plugin and returns a client for it.
func (h *Host) Client(ctx context.Context, cfg Config) (*Client, error) {
	p, err := h.Open(ctx, cfg.Plugin, cfg.SHA256)
	if err != nil {
		return nil, fmt.Errorf("generator %s: %w", cfg.Generator, err)
	}
	if u := p.Description().Unavailable; u != "" {
		return nil, fmt.Errorf("generator %s: plugin %s cannot serve requests: %s", cfg.Generator, cfg.Plugin, h.redact.String(u))
	}
	rc := cfg.Retry
	rc.Concurrency, rc.RPM, rc.TPM = cfg.Limits.Concurrency, cfg.Limits.RPM, cfg.Limits.TPM
	if m, ok := p.Description().Model(cfg.Model); ok {
		if pr := cfg.Price; pr != nil && (m.InputPrice > 0 || m.OutputPrice > 0) && (pr.Input != m.InputPrice || pr.Output != m.OutputPrice) {
			h.opts.Logger.Warn("the spec's price differs from the plugin's: budgets use the spec's", "generator", cfg.Generator,
				"plugin", cfg.Plugin, "model", cfg.Model, "spec_input", pr.Input, "spec_output", pr.Output,
				"plugin_input", m.InputPrice, "plugin_output", m.OutputPrice)
		}
		if rc.Concurrency == 0 {
			rc.Concurrency = m.Concurrency
		}
		if rc.RPM == 0 {
			rc.RPM = m.RPM
		}
		if rc.TPM == 0 {
			rc.TPM = m.TPM
		}
	}
	s, err := sampling(cfg.Sampling)
	if err != nil {
		return nil, fmt.Errorf("generator %s: %v", cfg.Generator, err)
	}
	return &Client{cfg: cfg, plugin: p, policy: retry.New(rc), sampling: s}, nil
}

func sampling(s spec.Sampling) (*pb.Sampling, error) {
	out := &pb.Sampling{Temperature: s.Temperature, TopP: s.TopP, MaxTokens: int32(s.MaxTokens), Stop: s.Stop}
	if s.Seed != nil {
		v := int64(*s.Seed)
		out.Seed = &v
	}
	if len(s.Extra) > 0 {
		out.ExtraJson = map[string]string{}
		for k, v := range s.Extra {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("sampling.extra.%s: %v", k, err)
			}
			out.ExtraJson[k] = string(b)
		}
	}
	return out, nil
}

// Plugin is the client's plugin.
func (c *Client) Plugin() *Plugin { return c.plugin }

// Stats are the client's retry counters.
func (c *Client) Stats() retry.Stats { return c.policy.Stats() }

// Check verifies before a run that the plugin serves the model (when it
// lists its models).
func (c *Client) Check(context.Context) error {
	d := c.plugin.Description()
	if len(d.Models) == 0 {
		return nil
	}
	if _, ok := d.Model(c.cfg.Model); ok {
		return nil
	}
	ids := make([]string, len(d.Models))
	for i, m := range d.Models {
		ids[i] = m.ID
	}
	sort.Strings(ids)
	return &Error{Permanent: true, generator: c.cfg.Generator,
		Msg: fmt.Sprintf("model %s is not served by plugin %s (it serves %s)", c.cfg.Model, c.cfg.Plugin, strings.Join(ids, ", "))}
}

// Complete makes one chat completion, retrying transient failures under
// the policy; like executors/api it returns at most one billable
// response.
func (c *Client) Complete(ctx context.Context, msgs []Message) (Response, error) {
	return c.complete(ctx, msgs, c.sampling, c.cfg.Sampling.MaxTokens)
}

// complete sends msgs with sampling sp, whose new-token limit is maxTokens.
func (c *Client) complete(ctx context.Context, msgs []Message, sp *pb.Sampling, maxTokens int) (Response, error) {
	if len(msgs) == 0 {
		c.policy.Reject()
		return Response{}, &Error{Permanent: true, generator: c.cfg.Generator, Msg: "request has no messages"}
	}
	req := &pb.CompleteRequest{Model: c.cfg.Model, Sampling: sp, Messages: make([]*pb.Message, len(msgs))}
	prompt := 0
	for i, m := range msgs {
		req.Messages[i] = &pb.Message{Role: m.Role, Content: m.Content}
		prompt += len(m.Content)
	}
	tokens := (prompt+3)/4 + 4*len(msgs) + maxTokens
	var (
		out *pb.Completion
		msg string
	)
	r, err := c.policy.Do(ctx, tokens, func(actx context.Context) retry.Outcome {
		var o retry.Outcome
		out, o, msg = c.attempt(actx, req)
		return o
	})
	if err != nil {
		return Response{}, err
	}
	if !r.Last.OK() {
		e := &Error{Permanent: r.Last.Permanent, Outage: r.Outage, Attempts: r.Attempts, generator: c.cfg.Generator, Msg: msg}
		if r.Outage {
			e.Msg = fmt.Sprintf("gave up on plugin %s (model %s) after %d attempts: last error: %s", c.cfg.Plugin, c.cfg.Model, r.Attempts, msg)
		}
		e.Msg = c.plugin.host.redact.String(e.Msg)
		return Response{}, e
	}
	return Response{Text: out.GetText(), FinishReason: out.GetFinishReason(), Model: out.GetModel(), ID: out.GetId(),
		SystemFingerprint: out.GetSystemFingerprint(), PromptTokens: int(out.GetUsage().GetInputTokens()),
		CompletionTokens: int(out.GetUsage().GetOutputTokens()), Attempts: r.Attempts}, nil
}

// attempt makes one RPC; it returns the completion, or the outcome and a
// message.
func (c *Client) attempt(actx context.Context, req *pb.CompleteRequest) (*pb.Completion, retry.Outcome, string) {
	inst, err := c.plugin.current(actx)
	if err != nil {
		return nil, retry.Outcome{Permanent: true}, err.Error()
	}
	// A response is received up to the cap its max_tokens allows
	// (docs/budgets.md); a larger one fails this attempt unread.
	res, err := inst.rpc.Complete(actx, req, grpc.MaxCallRecvMsgSize(int(retry.ResponseCap(int64(req.GetSampling().GetMaxTokens())))))
	if err == nil {
		if e := res.GetError(); e != nil {
			if e.GetTimedOut() {
				return nil, retry.Outcome{Cause: retry.Timeout}, c.timedOut()
			}
			return nil, outcome(e), "plugin " + c.cfg.Plugin + ": " + e.GetMessage()
		}
		if res.GetCompletion() == nil {
			return nil, retry.Outcome{Cause: retry.Malformed}, "plugin " + c.cfg.Plugin + " returned neither a completion nor an error"
		}
		return res.GetCompletion(), retry.Outcome{}, ""
	}
	o, msg := c.rpcFailure(actx, inst, err)
	return nil, o, msg
}

// rpcFailure classifies a failed RPC to inst: the attempt's timeout, a
// crash (the process exited: restarted once, final the second time), or
// the gRPC status the plugin answered with.
func (c *Client) rpcFailure(actx context.Context, inst *instance, err error) (retry.Outcome, string) {
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return retry.Outcome{Cause: retry.Timeout}, c.timedOut()
	}
	if actx.Err() != nil {
		return retry.Outcome{Cause: retry.Connection}, "cancelled"
	}
	msg := "plugin " + c.cfg.Plugin + ": " + grpcMessage(err)
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.Internal, codes.Unknown:
		if inst.exited() {
			if final := c.plugin.crashed(inst); final != nil {
				return retry.Outcome{Permanent: true}, final.Error()
			}
			return retry.Outcome{Cause: retry.Connection}, fmt.Sprintf("plugin %s crashed during the request; restarting it", c.cfg.Plugin)
		}
		return retry.Outcome{Cause: retry.Connection}, msg
	case codes.ResourceExhausted:
		if strings.Contains(grpcMessage(err), "larger than max") {
			// The receive cap, not the plugin's rate limit.
			return retry.Outcome{Cause: retry.Malformed}, "plugin " + c.cfg.Plugin + ": response too large: " + grpcMessage(err)
		}
		return retry.Outcome{Cause: retry.RateLimit}, msg
	case codes.DeadlineExceeded:
		// The attempt's deadline as the plugin's gRPC saw it, a moment
		// before this side's own timer: the same timeout.
		return retry.Outcome{Cause: retry.Timeout}, c.timedOut()
	case codes.Aborted:
		return retry.Outcome{Cause: retry.Server}, msg
	}
	return retry.Outcome{Permanent: true}, msg
}

// Embed embeds texts with the generator's model through the plugin,
// under the same policy as Complete; it returns the vectors and the
// input tokens the plugin reported.
func (c *Client) Embed(ctx context.Context, texts []string) ([][]float32, int, error) {
	if len(texts) == 0 {
		c.policy.Reject()
		return nil, 0, &Error{Permanent: true, generator: c.cfg.Generator, Msg: "embeddings request has no inputs"}
	}
	if !c.plugin.Description().Embeddings {
		c.policy.Reject()
		return nil, 0, &Error{Permanent: true, generator: c.cfg.Generator, Msg: "plugin " + c.cfg.Plugin + " does not serve embeddings"}
	}
	est := 0
	for _, t := range texts {
		est += (len(t) + 3) / 4
	}
	req := &pb.EmbedRequest{Model: c.cfg.Model, Inputs: texts}
	var (
		res *pb.EmbedResponse
		msg string
	)
	r, err := c.policy.Do(ctx, est, func(actx context.Context) retry.Outcome {
		inst, err := c.plugin.current(actx)
		if err != nil {
			msg = err.Error()
			return retry.Outcome{Permanent: true}
		}
		if res, err = inst.rpc.Embed(actx, req, grpc.MaxCallRecvMsgSize(retry.DefaultResponseCap)); err != nil {
			var o retry.Outcome
			o, msg = c.rpcFailure(actx, inst, err)
			return o
		}
		if len(res.GetEmbeddings()) != len(texts) {
			msg = fmt.Sprintf("plugin %s returned %d embeddings for %d inputs", c.cfg.Plugin, len(res.GetEmbeddings()), len(texts))
			return retry.Outcome{Cause: retry.Malformed}
		}
		return retry.Outcome{}
	})
	if err != nil {
		return nil, 0, err
	}
	if !r.Last.OK() {
		e := &Error{Permanent: r.Last.Permanent, Outage: r.Outage, Attempts: r.Attempts, generator: c.cfg.Generator, Msg: msg}
		if r.Outage {
			e.Msg = fmt.Sprintf("gave up on plugin %s (model %s) after %d attempts: last error: %s", c.cfg.Plugin, c.cfg.Model, r.Attempts, msg)
		}
		e.Msg = c.plugin.host.redact.String(e.Msg)
		return nil, 0, e
	}
	vecs := make([][]float32, len(texts))
	for i, e := range res.GetEmbeddings() {
		vecs[i] = e.GetValues()
	}
	return vecs, int(res.GetUsage().GetInputTokens()), nil
}

func (c *Client) timedOut() string {
	return fmt.Sprintf("plugin %s: attempt timed out after %s", c.cfg.Plugin, c.policy.Config().AttemptTimeout)
}

func outcome(e *pb.Error) retry.Outcome {
	switch {
	case e.GetRateLimited():
		return retry.Outcome{Cause: retry.RateLimit, RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond}
	case e.GetRetryable():
		return retry.Outcome{Cause: retry.Server}
	}
	return retry.Outcome{Permanent: true}
}

// CountTokens counts a prompt's tokens through the plugin; ok is false
// when the plugin does not count tokens.
func (p *Plugin) CountTokens(ctx context.Context, model string, msgs []Message) (n int, ok bool, err error) {
	if !p.Description().CountTokens {
		return 0, false, nil
	}
	inst, err := p.current(ctx)
	if err != nil {
		return 0, false, err
	}
	req := &pb.CountTokensRequest{Model: model}
	for _, m := range msgs {
		req.Messages = append(req.Messages, &pb.Message{Role: m.Role, Content: m.Content})
	}
	res, err := inst.rpc.CountTokens(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("plugin %s: count tokens: %s", p.Name, grpcMessage(err))
	}
	return int(res.GetTokens()), true, nil
}

func grpcMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
