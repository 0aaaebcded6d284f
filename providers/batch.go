package providers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/spec"
)

// batchMetaKey is the metadata key under which agora names its batches
// at the provider: a batch whose creation's answer was lost is found by it.
const batchMetaKey = "agora_batch"

// apiBatchProvider is an OpenAI-compatible generator in batch mode: the
// engine's BatchProvider over the client's Batch API, and the synchronous
// client for what the engine sends one by one (sync_after).
type apiBatchProvider struct {
	apiProvider
	g   *spec.Generator
	cfg engine.BatchConfig
}

var (
	_ engine.BatchProvider = apiBatchProvider{}
	_ engine.FileBatcher   = apiBatchProvider{}
	_ engine.BatchCleaner  = apiBatchProvider{}
)

// CleanBatch deletes an ended batch's input, output and error files at
// the provider: its lines are in the state, and OpenAI keeps a file until
// it is deleted.
func (p apiBatchProvider) CleanBatch(ctx context.Context, b engine.BatchInfo, fileID string) error {
	var errs []error
	for _, id := range []string{fileID, b.OutputFileID, b.ErrorFileID} {
		if id != "" {
			if err := p.c.DeleteFile(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// batchConfig is the engine's batch mode of spec block b; pool names what
// its enqueued tokens count against (the endpoint and the model).
func batchConfig(b spec.Batch, t Tuning, pool string) engine.BatchConfig {
	cfg := engine.BatchConfig{Window: b.Window, MaxRequests: b.MaxRequests, MaxBytes: b.MaxBytes,
		MaxEnqueuedTokens: b.MaxEnqueuedTokens, Poll: b.PollInterval(), SyncAfter: b.SyncAfterDuration(),
		CancelWait: t.BatchCancelWait, EnqueuedPool: pool}
	if t.BatchPoll > 0 {
		cfg.Poll = t.BatchPoll
	}
	return cfg
}

func newAPIBatchProvider(c *api.Client, g *spec.Generator, t Tuning) apiBatchProvider {
	cfg := batchConfig(g.Provider.OpenAI.Batch, t, "openai:"+strings.TrimRight(g.Provider.OpenAI.BaseURL, "/")+" "+g.Model)
	return apiBatchProvider{apiProvider: apiProvider{c}, g: g, cfg: cfg}
}

func (p apiBatchProvider) BatchConfig() engine.BatchConfig { return p.cfg }

func (p apiBatchProvider) BatchLine(id string, msgs []engine.Message, s *spec.Sampling) ([]byte, error) {
	req := api.BatchRequest{ID: id, Messages: make([]api.Message, len(msgs)), Sampling: s}
	for i, m := range msgs {
		req.Messages[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	return p.c.BatchLine(req)
}

func (p apiBatchProvider) UploadBatch(ctx context.Context, key string, jsonl []byte) (string, error) {
	return p.c.UploadBatch(ctx, key+".jsonl", jsonl)
}

func (p apiBatchProvider) FindUpload(ctx context.Context, key string, size int64, since time.Time) (string, bool, error) {
	return p.c.FindUpload(ctx, key+".jsonl", size, since)
}

func (p apiBatchProvider) CreateBatch(ctx context.Context, key, fileID string) (engine.BatchInfo, error) {
	b, err := p.c.CreateBatch(ctx, fileID, p.cfg.Window, map[string]string{batchMetaKey: key})
	return info(b), err
}

func (p apiBatchProvider) FindBatch(ctx context.Context, key string, _ int, since time.Time, _ ...string) (engine.BatchInfo, bool, error) {
	b, ok, err := p.c.FindBatch(ctx, batchMetaKey, key, since)
	return info(b), ok, err
}

func (p apiBatchProvider) GetBatch(ctx context.Context, id string) (engine.BatchInfo, error) {
	b, err := p.c.GetBatch(ctx, id)
	return info(b), err
}

func (p apiBatchProvider) CancelBatch(ctx context.Context, id string) (engine.BatchInfo, error) {
	b, err := p.c.CancelBatch(ctx, id)
	return info(b), err
}

func info(b api.Batch) engine.BatchInfo {
	return engine.BatchInfo{ID: b.ID, Status: b.Status, Total: b.Total, Completed: b.Completed, Failed: b.Failed,
		Message: b.Message, OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID, Ended: api.BatchEnded(b.Status)}
}

// BatchResults downloads the output and error files of b into dir
// (kept: a rerun after a kill reads them again without a download) and
// reads their lines.
func (p apiBatchProvider) BatchResults(ctx context.Context, b engine.BatchInfo, dir string, fn func(engine.BatchResult) error) error {
	// A result line is at most a response body and its envelope.
	limit := int64(max(b.Total, 1)) * (api.BodyCap(p.g.Sampling) + 4096)
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		if id == "" {
			continue
		}
		path := filepath.Join(dir, b.ID+"-"+id+".jsonl")
		if _, err := os.Stat(path); err != nil {
			if err := p.c.DownloadFile(ctx, id, path, limit); err != nil {
				return err
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("generator %s: batch results: %w", p.g.Name, err)
		}
		err = p.c.ReadBatchResults(f, func(r api.BatchResult) error {
			out := engine.BatchResult{ID: r.ID}
			if r.Err != nil {
				out.Err, out.Retryable = r.Err, !r.Err.Permanent
			} else {
				x := r.Response
				out.Completion = engine.Completion{Text: x.Text, FinishReason: x.FinishReason, Model: x.Model,
					SystemFingerprint: x.SystemFingerprint, ID: x.ID, PromptTokens: x.Usage.PromptTokens, CompletionTokens: x.Usage.CompletionTokens}
			}
			return fn(out)
		})
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
