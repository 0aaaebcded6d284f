package engine_test

import (
	"context"
	"slices"
	"testing"

	"github.com/agorabench/agora/executors/api/apitest"
	"github.com/agorabench/agora/spec"
)

// A setting's system message and stop sequences reach the OpenAI-compatible
// endpoint with every request: the system message first, the stop
// sequences added to the generator's own.
func TestSystemMessageAndStop(t *testing.T) {
	f := newFixture(t, fixtureOpts{instances: 12, concurrency: 4, extra: `
generators: g: sampling: stop: ["###"]
settings: s: prompt: {system: "You are a data generator.", stop: ["[END]", "###"]}
`})
	res, _ := f.apply(context.Background(), nil)
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	served := f.srv.Served()
	if len(served) < 12 {
		t.Fatalf("%d responses served, want at least 12", len(served))
	}
	for _, s := range served {
		if len(s.Messages) != 2 || s.Messages[0] != (apitest.Message{Role: "system", Content: "You are a data generator."}) || s.Messages[1].Role != "user" {
			t.Fatalf("messages %+v: want the system message, then the meta-prompt", s.Messages)
		}
	}
	last, _ := f.srv.LastRequest()
	if !slices.Equal(last.Stop, []string{"###", "[END]"}) {
		t.Errorf("stop %q, want the generator's then the setting's, each once", last.Stop)
	}
}

// The same through the provider's batch API: every line of every batch
// carries the system message and the stop sequences.
func TestBatchSystemMessageAndStop(t *testing.T) {
	f := batchFixture(t, fixtureOpts{instances: 10, concurrency: 4, extra: `
settings: s: prompt: {system: "You are a data generator.", stop: ["[END]"]}
`}, spec.Batch{MaxRequests: 6})
	res, _ := f.applyBatch(context.Background(), nil)
	if res.Err() != nil || len(res.Done) != 1 {
		t.Fatalf("apply: %+v %v", res, res.Err())
	}
	if bst := f.srv.BatchStats(); bst.Served < 10 || bst.Batches < 2 {
		t.Fatalf("batch stats %+v: want every request in batches", bst)
	}
	served := f.srv.Served()
	if len(served) < 10 {
		t.Fatalf("%d responses logged, want every one", len(served))
	}
	for _, s := range served {
		if len(s.Messages) != 2 || s.Messages[0] != (apitest.Message{Role: "system", Content: "You are a data generator."}) {
			t.Fatalf("messages %+v: want the system message first", s.Messages)
		}
	}
	if last, _ := f.srv.LastRequest(); !slices.Equal(last.Stop, []string{"[END]"}) {
		t.Errorf("stop %q, want the setting's", last.Stop)
	}
}
