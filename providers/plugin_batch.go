package providers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agorabench/agora/engine"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/spec"
)

// pluginBatchProvider is a plugin generator in batch mode: the engine's
// BatchProvider over the plugin's batch calls (protocol version 2), which
// take a batch's requests with its submission, and the synchronous client
// for what the engine sends one by one (sync_after).
type pluginBatchProvider struct {
	pluginProvider
	g   *spec.Generator
	cfg engine.BatchConfig
}

var (
	_ engine.BatchProvider = pluginBatchProvider{}
	_ engine.InlineBatcher = pluginBatchProvider{}
)

func newPluginBatchProvider(c *host.Client, g *spec.Generator, t Tuning) (pluginBatchProvider, error) {
	if err := c.BatchSupport(); err != nil {
		return pluginBatchProvider{}, fmt.Errorf("generator %s: %w", g.Name, err)
	}
	cfg := batchConfig(g.Provider.Batch, t, "plugin:"+g.Provider.Plugin+" "+g.Model)
	// The plugin's own bounds on a batch (the plan bounded the spec's by
	// them already; a plugin rebuilt since may have lowered them).
	if l := c.BatchLimits(); l.MaxRequests > 0 && cfg.MaxRequests > l.MaxRequests {
		cfg.MaxRequests = l.MaxRequests
	}
	if l := c.BatchLimits(); l.MaxBytes > 0 && cfg.MaxBytes > l.MaxBytes {
		cfg.MaxBytes = l.MaxBytes
	}
	return pluginBatchProvider{pluginProvider: pluginProvider{c}, g: g, cfg: cfg}, nil
}

func (p pluginBatchProvider) BatchConfig() engine.BatchConfig { return p.cfg }

// batchLine is one request of a plugin batch as the engine counts and
// keeps it: its size approximates the request's size at the provider.
type batchLine struct {
	ID       string         `json:"custom_id"`
	Messages []host.Message `json:"messages"`
	Sampling *spec.Sampling `json:"sampling,omitempty"`
}

func (p pluginBatchProvider) BatchLine(id string, msgs []engine.Message, s *spec.Sampling) ([]byte, error) {
	l := batchLine{ID: id, Messages: make([]host.Message, len(msgs)), Sampling: s}
	for i, m := range msgs {
		l.Messages[i] = host.Message{Role: m.Role, Content: m.Content}
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("generator %s: encode batch request: %w", p.g.Name, err)
	}
	return append(b, '\n'), nil
}

// SubmitBatch sends the requests of jsonl (its BatchLines) as batch key.
func (p pluginBatchProvider) SubmitBatch(ctx context.Context, key string, jsonl []byte) (engine.BatchInfo, error) {
	var items []host.BatchItem
	sc := bufio.NewScanner(bytes.NewReader(jsonl))
	sc.Buffer(nil, len(jsonl)+1)
	for sc.Scan() {
		var l batchLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return engine.BatchInfo{}, fmt.Errorf("generator %s: batch %s: read request %d: %w", p.g.Name, key, len(items)+1, err)
		}
		items = append(items, host.BatchItem{CustomID: l.ID, Messages: l.Messages, Sampling: l.Sampling})
	}
	if err := sc.Err(); err != nil {
		return engine.BatchInfo{}, fmt.Errorf("generator %s: batch %s: %w", p.g.Name, key, err)
	}
	st, err := p.c.SubmitBatch(ctx, key, p.cfg.Window, items)
	return pluginInfo(st), err
}

func (p pluginBatchProvider) FindBatch(ctx context.Context, key string, count int, since time.Time, known ...string) (engine.BatchInfo, bool, error) {
	st, found, why, err := p.c.FindBatch(ctx, key, count, since, known...)
	switch {
	case err != nil:
		return engine.BatchInfo{}, false, err
	case found == host.Unknown:
		return engine.BatchInfo{}, false, &engine.UndeterminedError{Why: why}
	}
	return pluginInfo(st), found == host.Present, nil
}

func (p pluginBatchProvider) GetBatch(ctx context.Context, id string) (engine.BatchInfo, error) {
	st, err := p.c.GetBatch(ctx, id)
	return pluginInfo(st), err
}

func (p pluginBatchProvider) CancelBatch(ctx context.Context, id string) (engine.BatchInfo, error) {
	st, err := p.c.CancelBatch(ctx, id)
	return pluginInfo(st), err
}

// BatchResults reads an ended batch's results from the plugin (nothing
// is kept in dir: a rerun asks the plugin again).
func (p pluginBatchProvider) BatchResults(ctx context.Context, b engine.BatchInfo, _ string, fn func(engine.BatchResult) error) error {
	return p.c.BatchResults(ctx, b.ID, func(r host.BatchResult) error {
		out := engine.BatchResult{ID: r.CustomID, Err: r.Err, Retryable: r.Retryable}
		if r.Err == nil {
			x := r.Response
			out.Completion = engine.Completion{Text: x.Text, FinishReason: x.FinishReason, Model: x.Model,
				SystemFingerprint: x.SystemFingerprint, ID: x.ID, PromptTokens: x.PromptTokens, CompletionTokens: x.CompletionTokens}
		}
		return fn(out)
	})
}

func pluginInfo(s host.BatchStatus) engine.BatchInfo {
	return engine.BatchInfo{ID: s.ID, Status: s.Status, Total: s.Total, Completed: s.Completed, Failed: s.Failed,
		Message: s.Message, Ended: s.Ended}
}
