package spec

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBatchForms(t *testing.T) {
	exp := load(t, `
generators: {
	off: {provider: openai: {}, model: "gpt-4o-mini", price: {input: 1, output: 2}}
	on: {provider: openai: batch: true, model: "gpt-4o-mini", price: {input: 1, output: 2, batch_discount: 0.5}}
	block: {provider: openai: batch: {max_requests: 100, max_enqueued_tokens: 90000, poll: "2s", sync_after: "30h"}, model: "gpt-4o-mini", price: {input: 1, output: 2}}
}
settings: "math-ig": {}
`)
	for name, want := range map[string]Batch{
		"off":   {},
		"on":    {On: true, Window: "24h", MaxRequests: BatchMaxRequests, MaxBytes: BatchMaxBytes, Poll: "30s"},
		"block": {On: true, Window: "24h", MaxRequests: 100, MaxBytes: BatchMaxBytes, MaxEnqueuedTokens: 90000, Poll: "2s", SyncAfter: "30h"},
	} {
		if got := exp.Generators[name].Provider.OpenAI.Batch; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: batch = %+v, want %+v", name, got, want)
		}
	}
	b := exp.Generators["block"].Provider.OpenAI.Batch
	if b.PollInterval() != 2*time.Second || b.SyncAfterDuration() != 30*time.Hour || b.WindowDuration() != 24*time.Hour {
		t.Errorf("durations: %v %v %v", b.PollInterval(), b.SyncAfterDuration(), b.WindowDuration())
	}
	// The JSON form (plan -json, saved plans) reads back the same.
	for _, in := range []Batch{{}, exp.Generators["block"].Provider.OpenAI.Batch} {
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out Batch
		if err := json.Unmarshal(raw, &out); err != nil || !reflect.DeepEqual(in, out) {
			t.Errorf("%s read back as %+v (%v)", raw, out, err)
		}
	}
}

func TestBatchErrors(t *testing.T) {
	for src, want := range map[string]string{
		`batch: {max_requests: 60000}`:  "max_requests",
		`batch: {window: "1d"}`:         "window",
		`batch: {poll: "soon"}`:         `poll "soon" is not a positive duration`,
		`batch: {sync_after: "-1h"}`:    `sync_after "-1h" is not a positive duration`,
		`batch: {max_bytes: 300000000}`: "max_bytes 300000000 is not between 1024 and 200000000",
	} {
		ds := diagnose(t, `
generators: g: {provider: openai: {`+src+`}, model: "gpt-4o-mini", price: {input: 1, output: 2}}
settings: "math-ig": {}
`)
		if !strings.Contains(ds.Error(), want) {
			t.Errorf("%s: diagnostics\n%v\nwant %q", src, ds, want)
		}
	}
}
