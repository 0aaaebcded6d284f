package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agorabench/agora/executors/retry"
	pb "github.com/agorabench/agora/plugins/providerpb"
	"github.com/agorabench/agora/spec"
)

// The batch calls of protocol version 2 (provider.proto): a generator in
// batch mode sends a step's requests through them. The engine keeps the
// state, the money and the retries of lines; the client keeps the calls
// honest: a submission is never retried here (the engine looks a batch
// up by its key before making it again), the other calls are retried a
// few times on the failures that may pass.

// BatchLimits bounds one batch; zero fields: no bound.
type BatchLimits struct {
	MaxRequests int
	MaxBytes    int64
}

// BatchItem is one request of a batch: its custom id (at most 20
// characters of [a-z0-9-]), its messages and its sampling (nil: the
// generator's).
type BatchItem struct {
	CustomID string
	Messages []Message
	Sampling *spec.Sampling
}

// BatchStatus is a batch as the plugin last reported it.
type BatchStatus struct {
	ID, Status, Message      string
	Ended                    bool
	Total, Completed, Failed int
}

// BatchFound is what FindBatch found.
type BatchFound int

const (
	// Absent: the plugin found no batch made with the key.
	Absent BatchFound = iota
	// Present: the batch was made.
	Present
	// Unknown: the plugin cannot tell yet; ask again later.
	Unknown
)

// BatchResult is one request's outcome: a completion, or Err; an Err that
// is Retryable cost nothing.
type BatchResult struct {
	CustomID  string
	Response  Response
	Err       error
	Retryable bool
}

// batchControlAttempts bounds the attempts of one get, find, cancel or
// results call.
const batchControlAttempts = 4

// BatchSupport says why the plugin cannot take batches; nil when it can.
func (p *Plugin) BatchSupport() error {
	if p.Version() < pb.BatchVersion {
		return fmt.Errorf("plugin %s (%s) speaks provider protocol version %d, which has no batch calls: use a build of the plugin for protocol %d, or set batch: false", p.Name, p.Path, p.Version(), pb.BatchVersion)
	}
	if !p.Description().Batches {
		return fmt.Errorf("plugin %s (%s) takes no batches (its Describe does not offer them): set batch: false", p.Name, p.Path)
	}
	return nil
}

// BatchSupport says why the client's plugin cannot take batches.
func (c *Client) BatchSupport() error { return c.plugin.BatchSupport() }

// BatchLimits are the plugin's bounds on one batch.
func (c *Client) BatchLimits() BatchLimits { return c.plugin.Description().BatchLimits }

// batchError is a failed batch call; IsPermanent says the plugin refused
// for good (for SubmitBatch: no batch was made).
type batchError struct {
	msg       string
	permanent bool
}

func (e *batchError) Error() string     { return e.msg }
func (e *batchError) IsPermanent() bool { return e.permanent }

func (c *Client) batchErr(what string, err error) error {
	code := status.Code(err)
	msg := fmt.Sprintf("generator %s: plugin %s: %s: %s", c.cfg.Generator, c.cfg.Plugin, what, c.plugin.host.redact.String(grpcMessage(err)))
	return &batchError{msg: msg, permanent: code == codes.FailedPrecondition || code == codes.InvalidArgument || code == codes.Unimplemented}
}

// SubmitBatch makes batch key of items at the provider, once.
func (c *Client) SubmitBatch(ctx context.Context, key, window string, items []BatchItem) (BatchStatus, error) {
	if err := c.BatchSupport(); err != nil {
		return BatchStatus{}, &batchError{msg: "generator " + c.cfg.Generator + ": " + err.Error(), permanent: true}
	}
	if len(items) == 0 {
		return BatchStatus{}, &batchError{msg: "generator " + c.cfg.Generator + ": a batch of no requests", permanent: true}
	}
	reqs := make([]*pb.SubmitBatchRequest, 0, len(items)+1)
	reqs = append(reqs, &pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Header{Header: &pb.BatchHeader{
		Key: key, Model: c.cfg.Model, Count: int32(len(items)), Window: window}}})
	for _, it := range items {
		sp := c.sampling
		if it.Sampling != nil {
			var err error
			if sp, err = sampling(*it.Sampling); err != nil {
				return BatchStatus{}, &batchError{msg: fmt.Sprintf("generator %s: %v", c.cfg.Generator, err), permanent: true}
			}
		}
		req := &pb.CompleteRequest{Model: c.cfg.Model, Sampling: sp, Messages: make([]*pb.Message, len(it.Messages))}
		for i, m := range it.Messages {
			req.Messages[i] = &pb.Message{Role: m.Role, Content: m.Content}
		}
		reqs = append(reqs, &pb.SubmitBatchRequest{Part: &pb.SubmitBatchRequest_Item{Item: &pb.BatchItem{CustomId: it.CustomID, Request: req}}})
	}
	inst, err := c.plugin.current(ctx)
	if err != nil {
		return BatchStatus{}, err
	}
	st, err := submit(ctx, inst, reqs)
	if err != nil {
		if mayHaveCrashed(err) && inst.exited() {
			c.plugin.crashed(inst)
		}
		return BatchStatus{}, c.batchErr("submit batch", err)
	}
	return batchStatus(st), nil
}

// mayHaveCrashed says whether a failed call may be the plugin's death
// (what rpcFailure checks too): only then is the process waited for.
func mayHaveCrashed(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

func submit(ctx context.Context, inst *instance, reqs []*pb.SubmitBatchRequest) (*pb.BatchStatus, error) {
	stream, err := inst.rpc.SubmitBatch(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			if errors.Is(err, io.EOF) {
				// The plugin ended the call: its status says why.
				_, err = stream.CloseAndRecv()
			}
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// control makes one get, find or cancel call, retried on the failures
// that may pass (the plugin restarting, UNAVAILABLE, a rate limit, a
// timeout) with a growing pause.
func (c *Client) control(ctx context.Context, what string, call func(ctx context.Context, rpc pb.ProviderClient) error) error {
	timeout := c.policy.Config().AttemptTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	var last error
	for n := 0; n < batchControlAttempts; n++ {
		if n > 0 {
			t := time.NewTimer(time.Duration(1<<(n-1)) * time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		inst, err := c.plugin.current(ctx)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err = call(actx, inst.rpc)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = c.batchErr(what, err)
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.Internal, codes.Unknown:
			if mayHaveCrashed(err) && inst.exited() {
				if final := c.plugin.crashed(inst); final != nil {
					return final
				}
			}
			continue
		}
		return last
	}
	return last
}

// FindBatch asks the plugin for the batch key of count requests made
// since: one whose SubmitBatch answer was lost; known are the batches
// agora knows (not this one), which the plugin may skip.
func (c *Client) FindBatch(ctx context.Context, key string, count int, since time.Time, known ...string) (BatchStatus, BatchFound, string, error) {
	var res *pb.FindBatchResponse
	err := c.control(ctx, "find batch "+key, func(actx context.Context, rpc pb.ProviderClient) error {
		var err error
		res, err = rpc.FindBatch(actx, &pb.FindBatchRequest{Key: key, Count: int32(count), SinceUnixMs: since.UnixMilli(), KnownIds: known})
		return err
	})
	if err != nil {
		return BatchStatus{}, Absent, "", err
	}
	switch res.GetFound() {
	case pb.FindBatchResponse_FOUND:
		if res.GetBatch().GetId() == "" {
			return BatchStatus{}, Absent, "", &batchError{msg: fmt.Sprintf("generator %s: plugin %s found batch %s without an id", c.cfg.Generator, c.cfg.Plugin, key)}
		}
		return batchStatus(res.GetBatch()), Present, "", nil
	case pb.FindBatchResponse_UNKNOWN:
		return BatchStatus{}, Unknown, c.plugin.host.redact.String(res.GetWhy()), nil
	}
	return BatchStatus{}, Absent, "", nil
}

// GetBatch reads batch id's state.
func (c *Client) GetBatch(ctx context.Context, id string) (BatchStatus, error) {
	var st *pb.BatchStatus
	err := c.control(ctx, "get batch "+id, func(actx context.Context, rpc pb.ProviderClient) error {
		var err error
		st, err = rpc.GetBatch(actx, &pb.BatchRef{Id: id})
		return err
	})
	return batchStatus(st), err
}

// CancelBatch asks the provider to stop batch id.
func (c *Client) CancelBatch(ctx context.Context, id string) (BatchStatus, error) {
	var st *pb.BatchStatus
	err := c.control(ctx, "cancel batch "+id, func(actx context.Context, rpc pb.ProviderClient) error {
		var err error
		st, err = rpc.CancelBatch(actx, &pb.BatchRef{Id: id})
		return err
	})
	return batchStatus(st), err
}

// BatchResults calls fn with each result of ended batch id. A stream
// broken part-way is read again from its start (fn sees repeats; the
// engine records each line once); each message is bounded by the
// generator's response cap.
func (c *Client) BatchResults(ctx context.Context, id string, fn func(BatchResult) error) error {
	var fnErr error
	limit := grpc.MaxCallRecvMsgSize(int(retry.ResponseCap(int64(max(c.cfg.Sampling.MaxTokens, 1)))))
	err := c.control(ctx, "batch results "+id, func(actx context.Context, rpc pb.ProviderClient) error {
		// The whole stream may take longer than one attempt's timeout:
		// only the caller's context bounds it.
		stream, err := rpc.BatchResults(ctx, &pb.BatchRef{Id: id}, limit)
		if err != nil {
			return err
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if fnErr = fn(c.batchResult(r)); fnErr != nil {
				return nil
			}
		}
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func (c *Client) batchResult(r *pb.BatchResult) BatchResult {
	out := BatchResult{CustomID: r.GetCustomId()}
	switch {
	case r.GetCompletion() != nil:
		x := r.GetCompletion()
		out.Response = Response{Text: x.GetText(), FinishReason: x.GetFinishReason(), Model: x.GetModel(), ID: x.GetId(),
			SystemFingerprint: x.GetSystemFingerprint(), PromptTokens: int(x.GetUsage().GetInputTokens()),
			CompletionTokens: int(x.GetUsage().GetOutputTokens()), Attempts: 1}
	case r.GetError() != nil:
		e := r.GetError()
		out.Retryable = e.GetRetryable() || e.GetRateLimited() || e.GetTimedOut()
		out.Err = &Error{Permanent: !out.Retryable, Attempts: 1, generator: c.cfg.Generator,
			Msg: "plugin " + c.cfg.Plugin + ": " + c.plugin.host.redact.String(e.GetMessage())}
	default:
		out.Err = &Error{Permanent: true, Attempts: 1, generator: c.cfg.Generator,
			Msg: "plugin " + c.cfg.Plugin + " gave a batch result with neither a completion nor an error"}
	}
	return out
}

func batchStatus(s *pb.BatchStatus) BatchStatus {
	if s == nil {
		return BatchStatus{}
	}
	return BatchStatus{ID: s.GetId(), Status: s.GetStatus(), Message: s.GetMessage(), Ended: s.GetEnded(),
		Total: int(s.GetTotal()), Completed: int(s.GetCompleted()), Failed: int(s.GetFailed())}
}
