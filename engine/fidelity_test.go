package engine_test

import (
	"context"
	"slices"
	"testing"

	"github.com/agorabench/agora/executors/api/apitest"
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
