package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/spec"
)

// A plugin built before the batch calls speaks version 1: agora still
// completes through it, and says why it cannot take batches; a plugin of
// version 2 without batches says so too.
func TestOldPluginKeepsCompleting(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	c, err := h.Client(ctx, host.Config{Generator: "g", Plugin: "old", Model: "old-1", Sampling: spec.Sampling{MaxTokens: 50},
		Retry: retry.Config{AttemptTimeout: 2 * time.Second, MaxRetries: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Plugin().Version(); v != 1 {
		t.Fatalf("negotiated version %d, want 1", v)
	}
	r, err := c.Complete(ctx, user("hello"))
	if err != nil || !strings.Contains(r.Text, "[RESULT] 7 [/RESULT]") {
		t.Fatalf("complete: %+v, %v", r, err)
	}
	err = c.BatchSupport()
	if err == nil || !strings.Contains(err.Error(), "speaks provider protocol version 1, which has no batch calls") {
		t.Errorf("batch support of a version-1 plugin: %v", err)
	}
	if _, err := c.SubmitBatch(ctx, "k", "24h", []host.BatchItem{{CustomID: "s0-a1", Messages: user("x")}}); err == nil {
		t.Error("a version-1 plugin took a batch")
	}

	f, err := h.Client(ctx, fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Plugin().Version(); v != 2 {
		t.Fatalf("negotiated version %d with the fake plugin, want 2", v)
	}
	if err := f.BatchSupport(); err == nil || !strings.Contains(err.Error(), "takes no batches") {
		t.Errorf("batch support of a plugin without batches: %v", err)
	}
	_, err = f.GetBatch(ctx, "b1")
	if err == nil || !strings.Contains(err.Error(), "takes no batches") {
		t.Errorf("get batch through a plugin without batches: %v", err)
	}
}
