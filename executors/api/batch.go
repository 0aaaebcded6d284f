package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/shared"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/spec"
)

// The Batch API (https://platform.openai.com/docs/guides/batch) through
// openai-go's Files and Batches services: a JSONL file of chat requests is
// uploaded with purpose "batch", a batch is created from it, polled until
// it ends, and its output and error files are downloaded. Every call here
// is retried like a chat request's attempts (5xx, 429, dropped
// connections), under the client's policy; none of them is billed but the
// batch's creation, which CreateBatch makes once per call and never
// retries after the provider may have received it (see CreateBatch).

// Batch statuses, as the provider reports them.
const (
	BatchValidating = "validating"
	BatchInProgress = "in_progress"
	BatchFinalizing = "finalizing"
	BatchCompleted  = "completed"
	BatchFailed     = "failed"
	BatchExpired    = "expired"
	BatchCancelling = "cancelling"
	BatchCancelled  = "cancelled"
)

// BatchEnded reports whether a batch in status will not change any more.
func BatchEnded(status string) bool {
	switch status {
	case BatchCompleted, BatchFailed, BatchExpired, BatchCancelled:
		return true
	}
	return false
}

// Batch is a provider-side batch as last seen.
type Batch struct {
	ID, Status                             string
	InputFileID, OutputFileID, ErrorFileID string
	Total, Completed, Failed               int
	Metadata                               map[string]string
	CreatedAt                              time.Time
	// Message is what the provider says went wrong with the whole batch
	// (validation errors of a failed batch), redacted; "" when nothing.
	Message string
}

// BatchRequest is one line of a batch: its custom id and messages, and
// its own sampling when it differs from the generator's (nil: the
// generator's).
type BatchRequest struct {
	ID       string
	Messages []Message
	Sampling *spec.Sampling
}

// BatchLine is the JSONL line (with its newline) of req: the chat body
// the synchronous request would send, addressed to /v1/chat/completions.
func (c *Client) BatchLine(req BatchRequest) ([]byte, error) {
	if len(req.Messages) == 0 {
		return nil, fmt.Errorf("generator %s: request %s has no messages", c.cfg.Name, req.ID)
	}
	body, err := c.encodeRequest(Request{Messages: req.Messages, Sampling: req.Sampling})
	if err != nil {
		return nil, fmt.Errorf("generator %s: %s", c.cfg.Name, c.redact(err.Error()))
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(req.ID) + 80)
	b.WriteString(`{"custom_id":`)
	if err := encodeTo(&b, req.ID); err != nil {
		return nil, err
	}
	b.WriteString(`,"method":"POST","url":"/v1/chat/completions","body":`)
	b.Write(body)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// control runs one batch call under the client's retry policy: transient
// failures are retried, a permanent one or an outage is the error.
func (c *Client) control(ctx context.Context, what string, call func(actx context.Context, hres **http.Response) error) error {
	var f *failure
	r, err := c.policy.Do(ctx, 0, func(actx context.Context) retry.Outcome {
		var hres *http.Response
		if err := call(actx, &hres); err != nil {
			var pe *permanentError
			if errors.As(err, &pe) {
				f = &failure{permanent: true, msg: c.redact(pe.Error())}
			} else {
				f = c.classify(err, hres, actx)
			}
			return f.outcome()
		}
		f = nil
		return retry.Outcome{}
	})
	if err != nil {
		return err
	}
	if !r.Last.OK() {
		e := c.errorf(f, r.Attempts, r.Outage)
		e.Msg = what + ": " + e.Msg
		return e
	}
	return nil
}

// UploadBatch uploads a JSONL file of batch lines with purpose "batch"
// under name and returns its file id. An upload whose answer was lost is
// sent again: a file costs nothing, and an orphan is never used.
func (c *Client) UploadBatch(ctx context.Context, name string, jsonl []byte) (string, error) {
	var id string
	err := c.control(ctx, "upload batch file", func(actx context.Context, hres **http.Response) error {
		f, err := c.files.New(actx, openai.FileNewParams{
			File:    openai.File(bytes.NewReader(jsonl), name, "application/jsonl"),
			Purpose: openai.FilePurposeBatch,
		}, option.WithResponseInto(hres))
		if err != nil {
			return err
		}
		if f.ID == "" {
			return errors.New("malformed response: json: no file id")
		}
		id = f.ID
		return nil
	})
	return id, err
}

// FindUpload looks for a batch file named name of size bytes among the
// files uploaded with purpose "batch" since (newest first): the upload of
// a killed apply whose answer was never read. It returns its id.
func (c *Client) FindUpload(ctx context.Context, name string, size int64, since time.Time) (string, bool, error) {
	after := ""
	for {
		var page []openai.FileObject
		var more bool
		err := c.control(ctx, "list files", func(actx context.Context, hres **http.Response) error {
			q := openai.FileListParams{Purpose: openai.String("batch"), Limit: openai.Int(100), Order: openai.FileListParamsOrderDesc}
			if after != "" {
				q.After = openai.String(after)
			}
			p, err := c.files.List(actx, q, option.WithResponseInto(hres))
			if err == nil {
				page, more = p.Data, p.HasMore
			}
			return err
		})
		if err != nil {
			return "", false, err
		}
		for _, f := range page {
			if f.Filename == name && f.Bytes == size && f.Status != openai.FileObjectStatusError {
				return f.ID, true, nil
			}
		}
		if !more || len(page) == 0 || time.Unix(page[len(page)-1].CreatedAt, 0).Before(since) {
			return "", false, nil
		}
		after = page[len(page)-1].ID
	}
}

// CreateBatch creates a batch of the chat requests in the uploaded file
// fileID, with the completion window and metadata given. It makes one
// attempt: a creation whose answer was lost may have created a batch,
// and retrying could pay for it twice; the caller looks it up by its
// metadata (FindBatch) before creating again.
func (c *Client) CreateBatch(ctx context.Context, fileID, window string, metadata map[string]string) (Batch, error) {
	var hres *http.Response
	b, err := c.batches.New(ctx, openai.BatchNewParams{
		CompletionWindow: openai.BatchNewParamsCompletionWindow(window),
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		InputFileID:      fileID,
		Metadata:         shared.Metadata(metadata),
	}, option.WithResponseInto(&hres))
	if err != nil {
		e := c.errorf(c.classify(err, hres, ctx), 1, false)
		e.Msg = "create batch: " + e.Msg
		return Batch{}, e
	}
	return c.batch(b), nil
}

// GetBatch returns a batch's status and counts.
func (c *Client) GetBatch(ctx context.Context, id string) (Batch, error) {
	var out Batch
	err := c.control(ctx, "look at batch "+id, func(actx context.Context, hres **http.Response) error {
		b, err := c.batches.Get(actx, id, option.WithResponseInto(hres))
		if err == nil {
			out = c.batch(b)
		}
		return err
	})
	return out, err
}

// CancelBatch asks the provider to cancel a batch; it goes on to
// cancelling, then cancelled with what it completed.
func (c *Client) CancelBatch(ctx context.Context, id string) (Batch, error) {
	var out Batch
	err := c.control(ctx, "cancel batch "+id, func(actx context.Context, hres **http.Response) error {
		b, err := c.batches.Cancel(actx, id, option.WithResponseInto(hres))
		if err == nil {
			out = c.batch(b)
		}
		return err
	})
	return out, err
}

// FindBatch looks for the batch whose metadata has key = value among the
// batches listed (newest first), down to those created before since: the
// batch a creation made when its answer was lost.
func (c *Client) FindBatch(ctx context.Context, key, value string, since time.Time) (Batch, bool, error) {
	after := ""
	for {
		var page []openai.Batch
		var more bool
		err := c.control(ctx, "list batches", func(actx context.Context, hres **http.Response) error {
			q := openai.BatchListParams{Limit: openai.Int(100)}
			if after != "" {
				q.After = openai.String(after)
			}
			p, err := c.batches.List(actx, q, option.WithResponseInto(hres))
			if err == nil {
				page, more = p.Data, p.HasMore
			}
			return err
		})
		if err != nil {
			return Batch{}, false, err
		}
		for i := range page {
			if page[i].Metadata[key] == value {
				return c.batch(&page[i]), true, nil
			}
		}
		if !more || len(page) == 0 || time.Unix(page[len(page)-1].CreatedAt, 0).Before(since) {
			return Batch{}, false, nil
		}
		after = page[len(page)-1].ID
	}
}

// DownloadFile writes the content of file id to path (through a temporary
// file renamed into place, so a path that exists is whole), reading at
// most limit bytes. A download cut short is made again from the start.
func (c *Client) DownloadFile(ctx context.Context, id, path string, limit int64) error {
	return c.control(ctx, "download file "+id, func(actx context.Context, hres **http.Response) error {
		res, err := c.files.Content(withBodyCap(actx, limit), id, option.WithResponseInto(hres))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
		if err != nil {
			return &permanentError{err}
		}
		defer os.Remove(tmp.Name())
		if _, err := io.Copy(tmp, res.Body); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return &permanentError{err}
		}
		if err := tmp.Close(); err != nil {
			return &permanentError{err}
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return &permanentError{err}
		}
		return nil
	})
}

// DeleteFile deletes file id at the provider (its batch's lines are all
// recorded: agora needs it no more). A file already gone is no error.
func (c *Client) DeleteFile(ctx context.Context, id string) error {
	return c.control(ctx, "delete file "+id, func(actx context.Context, hres **http.Response) error {
		_, err := c.files.Delete(actx, id, option.WithResponseInto(hres))
		if err != nil && *hres != nil && (*hres).StatusCode == http.StatusNotFound {
			return nil
		}
		return err
	})
}

// permanentError is a local failure (the disk) that retrying cannot help.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (c *Client) batch(b *openai.Batch) Batch {
	out := Batch{ID: b.ID, Status: string(b.Status), InputFileID: b.InputFileID, OutputFileID: b.OutputFileID,
		ErrorFileID: b.ErrorFileID, Total: int(b.RequestCounts.Total), Completed: int(b.RequestCounts.Completed),
		Failed: int(b.RequestCounts.Failed), Metadata: b.Metadata, CreatedAt: time.Unix(b.CreatedAt, 0)}
	var msgs []string
	for _, e := range b.Errors.Data {
		m := e.Message
		if e.Code != "" {
			m = e.Code + ": " + m
		}
		if e.Line > 0 {
			m = fmt.Sprintf("line %d: %s", e.Line, m)
		}
		msgs = append(msgs, m)
		if len(msgs) == 3 {
			break
		}
	}
	out.Message = c.redact(strings.Join(msgs, "; "))
	return out
}

// BatchResult is one line of a batch's output or error file.
type BatchResult struct {
	// ID is the line's custom id.
	ID string
	// Response is the completion, when Err is nil.
	Response Response
	// Err is why the line has no completion. Retryable errors (the batch
	// expired or was cancelled before the line ran, a 5xx or 429) cost
	// nothing and may be sent again; the others will fail again.
	Err *Error
	// Billed is set when the line carries a completion the provider
	// billed but that cannot be used (its usage is not a plausible bill).
	Billed bool
}

// batchResultLine is a line of an output or error file.
type batchResultLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// maxBatchLine bounds one line of a result file.
const maxBatchLine = 64 << 20

// ReadBatchResults calls fn with each line of a batch's output or error
// file read from r.
func (c *Client) ReadBatchResults(r io.Reader, fn func(BatchResult) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBatchLine)
	n := 0
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l batchResultLine
		if err := json.Unmarshal(raw, &l); err != nil || l.CustomID == "" {
			return fmt.Errorf("generator %s: batch result line %d is not a result: %s", c.cfg.Name, n, c.redact(trimJSONErr(err)))
		}
		if err := fn(c.result(l)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("generator %s: read batch results: %w", c.cfg.Name, err)
	}
	return nil
}

func trimJSONErr(err error) string {
	if err == nil {
		return "no custom_id"
	}
	return err.Error()
}

// result judges one result line like a synchronous response.
func (c *Client) result(l batchResultLine) BatchResult {
	out := BatchResult{ID: l.CustomID}
	lineErr := func(status int, code, msg string, retryable bool) *Error {
		return &Error{Status: status, Code: code, Permanent: !retryable, Attempts: 1, generator: c.cfg.Name,
			Msg: c.redact(fmt.Sprintf("batch request %s: %s", l.CustomID, msg))}
	}
	switch {
	case l.Response != nil && l.Response.StatusCode == http.StatusOK:
		res, f := c.decodeResponse(l.Response.Body)
		if f != nil {
			out.Err = lineErr(http.StatusOK, f.code, f.msg, !f.permanent && f.code != "invalid_usage")
			out.Billed = f.code == "invalid_usage"
			return out
		}
		if res.ID == "" {
			res.ID = l.Response.RequestID
		}
		if res.UsageEstimated {
			// A batch line without usage cannot be settled on what the
			// provider billed: it is refused like invalid usage.
			out.Err = lineErr(http.StatusOK, "invalid_usage", "a completion without usage: it is not used", false)
			out.Billed = true
			return out
		}
		out.Response = res
	case l.Response != nil:
		var body struct {
			Error struct{ Code, Type, Message string } `json:"error"`
		}
		_ = json.Unmarshal(l.Response.Body, &body)
		s := l.Response.StatusCode
		code := body.Error.Code
		if code == "" {
			code = body.Error.Type
		}
		msg := fmt.Sprintf("%d %s: %s", s, code, body.Error.Message)
		out.Err = lineErr(s, code, msg, s == http.StatusTooManyRequests || s >= 500 || s == http.StatusRequestTimeout)
	case l.Error != nil:
		retryable := l.Error.Code == "batch_expired" || l.Error.Code == "batch_cancelled"
		out.Err = lineErr(0, l.Error.Code, l.Error.Code+": "+l.Error.Message, retryable)
	default:
		out.Err = lineErr(0, "", "a result line with neither response nor error", true)
	}
	return out
}
