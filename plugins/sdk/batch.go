package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/agorabench/agora/plugins/providerpb"
)

// Batcher is implemented by providers that take batches of requests at a
// batch price (protocol version 2; docs/plugins.md, "Batches"). agora
// sends a generate step's requests through it when the spec sets batch on
// the generator, and keeps the money, the state and the retries on its
// side; a Batcher only talks to the provider.
type Batcher interface {
	// BatchLimits bounds one batch; zero fields: no bound of the
	// provider's own.
	BatchLimits() BatchLimits
	// SubmitBatch makes one batch at the provider, once: it must not
	// retry a creation whose answer was lost (agora calls FindBatch).
	// An error that is not Retryable says the provider refused the batch
	// and none was made.
	SubmitBatch(ctx context.Context, b BatchSubmission) (BatchStatus, error)
	// FindBatch finds the batch an earlier SubmitBatch with key made, of
	// count requests, created after since; known are the ids of batches
	// agora made and knows (under other keys), never the one asked for.
	// It answers Present with the batch, Absent when there is none, or
	// Unknown (with why) when it cannot tell yet: agora then asks again
	// later and submits nothing.
	FindBatch(ctx context.Context, key string, count int, since time.Time, known ...string) (BatchStatus, Found, string, error)
	GetBatch(ctx context.Context, id string) (BatchStatus, error)
	// CancelBatch asks the provider to stop a batch; what it completed
	// is still read with BatchResults.
	CancelBatch(ctx context.Context, id string) (BatchStatus, error)
	// BatchResults calls fn with each result of an ended batch, in any
	// order, and stops at fn's first error.
	BatchResults(ctx context.Context, id string, fn func(BatchResult) error) error
}

// BatchLimits is the most one batch takes: requests, and bytes of the
// requests' JSON encoding.
type BatchLimits struct {
	MaxRequests int
	MaxBytes    int64
}

// BatchSubmission is one batch to make. Key is agora's name for it (at
// most 40 characters of [A-Za-z0-9_-]); each item's CustomID (at most 20
// characters of [a-z0-9-]) names its result.
type BatchSubmission struct {
	Key, Model, Window string
	Items              []BatchItem
}

// BatchItem is one request of a batch.
type BatchItem struct {
	CustomID string
	Request  Request
}

// BatchStatus is a batch as the provider last reported it. Status is the
// provider's word for its state; Ended says it will not change any more
// and its results can be read; Completed and Failed count the requests
// with a result so far.
type BatchStatus struct {
	ID, Status, Message      string
	Ended                    bool
	Total, Completed, Failed int
}

// Found is what FindBatch found.
type Found int

const (
	// Absent: no batch was made with the key.
	Absent Found = iota
	// Present: the batch was made; BatchStatus is it.
	Present
	// Unknown: the plugin cannot tell yet.
	Unknown
)

// BatchResult is one request's outcome: a completion, or Err. An Err that
// is Retryable (expired, cancelled, a server error) cost nothing and
// agora sends the request again; any other is permanent.
type BatchResult struct {
	CustomID   string
	Completion Completion
	Err        *Error
}

var (
	batchKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)
	customIDRE = regexp.MustCompile(`^[a-z0-9-]{1,20}$`)
)

func (s *server) batcher() (Batcher, error) {
	b, ok := s.impl.(Batcher)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this provider takes no batches")
	}
	return b, nil
}

func (s *server) SubmitBatch(stream pb.Provider_SubmitBatchServer) error {
	b, err := s.batcher()
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "a batch starts with its header")
	}
	if !batchKeyRE.MatchString(h.GetKey()) {
		return status.Errorf(codes.InvalidArgument, "batch key %q is not 1 to 40 characters of [A-Za-z0-9_-]", h.GetKey())
	}
	sub := BatchSubmission{Key: h.GetKey(), Model: h.GetModel(), Window: h.GetWindow()}
	if n := h.GetCount(); n > 0 {
		sub.Items = make([]BatchItem, 0, n)
	}
	seen := map[string]bool{}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		it := m.GetItem()
		if it == nil {
			return status.Error(codes.InvalidArgument, "a batch has one header, then items")
		}
		if !customIDRE.MatchString(it.GetCustomId()) || seen[it.GetCustomId()] {
			return status.Errorf(codes.InvalidArgument, "custom id %q is not 1 to 20 characters of [a-z0-9-] unique in the batch", it.GetCustomId())
		}
		seen[it.GetCustomId()] = true
		sub.Items = append(sub.Items, BatchItem{CustomID: it.GetCustomId(), Request: request(it.GetRequest())})
	}
	if len(sub.Items) == 0 || len(sub.Items) != int(h.GetCount()) {
		return status.Errorf(codes.InvalidArgument, "the header announces %d requests; %d came", h.GetCount(), len(sub.Items))
	}
	st, err := b.SubmitBatch(stream.Context(), sub)
	if err != nil {
		return batchError(stream.Context(), err)
	}
	return stream.SendAndClose(wireBatch(st))
}

func (s *server) FindBatch(ctx context.Context, r *pb.FindBatchRequest) (*pb.FindBatchResponse, error) {
	b, err := s.batcher()
	if err != nil {
		return nil, err
	}
	st, found, why, err := b.FindBatch(ctx, r.GetKey(), int(r.GetCount()), time.UnixMilli(r.GetSinceUnixMs()), r.GetKnownIds()...)
	if err != nil {
		return nil, statusError(ctx, err)
	}
	out := &pb.FindBatchResponse{Why: why}
	switch found {
	case Present:
		out.Found, out.Batch = pb.FindBatchResponse_FOUND, wireBatch(st)
	case Unknown:
		out.Found = pb.FindBatchResponse_UNKNOWN
	default:
		out.Found = pb.FindBatchResponse_ABSENT
	}
	return out, nil
}

func (s *server) GetBatch(ctx context.Context, r *pb.BatchRef) (*pb.BatchStatus, error) {
	b, err := s.batcher()
	if err != nil {
		return nil, err
	}
	st, err := b.GetBatch(ctx, r.GetId())
	if err != nil {
		return nil, statusError(ctx, err)
	}
	return wireBatch(st), nil
}

func (s *server) CancelBatch(ctx context.Context, r *pb.BatchRef) (*pb.BatchStatus, error) {
	b, err := s.batcher()
	if err != nil {
		return nil, err
	}
	st, err := b.CancelBatch(ctx, r.GetId())
	if err != nil {
		return nil, statusError(ctx, err)
	}
	return wireBatch(st), nil
}

func (s *server) BatchResults(r *pb.BatchRef, stream pb.Provider_BatchResultsServer) error {
	b, err := s.batcher()
	if err != nil {
		return err
	}
	ctx := stream.Context()
	err = b.BatchResults(ctx, r.GetId(), func(res BatchResult) error {
		out := &pb.BatchResult{CustomId: res.CustomID}
		if res.Err != nil {
			e := *res.Err
			e.Retryable = e.Retryable || e.RateLimited
			out.Result = &pb.BatchResult_Error{Error: wireError(ctx, &e)}
		} else {
			out.Result = &pb.BatchResult_Completion{Completion: wireCompletion(res.Completion)}
		}
		return stream.Send(out)
	})
	if err != nil {
		if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
			return err
		}
		return statusError(ctx, err)
	}
	return nil
}

// batchError is a failed SubmitBatch as a gRPC status: FAILED_PRECONDITION
// (refused: no batch was made) for a permanent error, else as statusError
// (agora then looks the batch up before making it again).
func batchError(ctx context.Context, err error) error {
	e := wireError(ctx, err)
	if !e.Retryable && !e.TimedOut {
		msg := e.Message
		if e.Status != 0 {
			msg = fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
		}
		return status.Error(codes.FailedPrecondition, msg)
	}
	return statusError(ctx, err)
}

func wireBatch(b BatchStatus) *pb.BatchStatus {
	return &pb.BatchStatus{Id: b.ID, Status: b.Status, Message: b.Message, Ended: b.Ended,
		Total: int32(b.Total), Completed: int32(b.Completed), Failed: int32(b.Failed)}
}
