package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agorabench/agora/plugins/anthropic"
	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/sdk"
)

var ctx = context.Background()

func userItem(id, text string) sdk.BatchItem {
	return sdk.BatchItem{CustomID: id, Request: sdk.Request{Model: anthropictest.DefaultModel,
		Messages: []sdk.Message{{Role: "user", Content: text}}, Sampling: sdk.Sampling{MaxTokens: 100}}}
}

func submission(key string, items ...sdk.BatchItem) sdk.BatchSubmission {
	return sdk.BatchSubmission{Key: key, Model: anthropictest.DefaultModel, Window: "24h", Items: items}
}

// collect reads a batch's results by custom id.
func collect(t *testing.T, p *anthropic.Provider, id string) map[string]sdk.BatchResult {
	t.Helper()
	out := map[string]sdk.BatchResult{}
	if err := p.BatchResults(ctx, id, func(r sdk.BatchResult) error {
		if _, dup := out[r.CustomID]; dup {
			t.Errorf("result %s twice", r.CustomID)
		}
		out[r.CustomID] = r
		return nil
	}); err != nil {
		t.Fatalf("results of %s: %v", id, err)
	}
	return out
}

// TestSubmitBatchParams: each request's params are what Complete sends,
// and its custom_id carries the batch's key.
func TestSubmitBatchParams(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{})
	defer s.Close()
	p := provider(s)
	if l := p.BatchLimits(); l != (sdk.BatchLimits{MaxRequests: 100000, MaxBytes: 256000000}) {
		t.Errorf("limits %+v", l)
	}
	temp := 0.5
	req := sdk.Request{Model: anthropictest.DefaultModel,
		Messages: []sdk.Message{{Role: "system", Content: "sys"}, {Role: "developer", Content: "dev"}, {Role: "user", Content: "hi"}},
		Sampling: sdk.Sampling{Temperature: &temp, MaxTokens: 50, Stop: []string{"END"}, Extra: map[string]json.RawMessage{"top_k": json.RawMessage("5")}}}
	if _, err := p.Complete(ctx, req); err != nil {
		t.Fatal(err)
	}
	sync, _ := s.Last()
	noModel := req
	noModel.Model = "" // the batch's model stands in
	st, err := p.SubmitBatch(ctx, submission("Run_7-a", sdk.BatchItem{CustomID: "g-0-1", Request: req}, sdk.BatchItem{CustomID: "g-0-2", Request: noModel}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.ID, "msgbatch_") || st.Status != "in_progress" || st.Ended || st.Total != 2 || st.Completed != 0 || st.Failed != 0 {
		t.Errorf("status %+v", st)
	}
	b, _ := s.LastBatch()
	if b.Header.Get("anthropic-version") != anthropic.Version || b.Header.Get("anthropic-beta") != "" || b.Header.Get("content-type") != "application/json" {
		t.Errorf("headers %v", b.Header)
	}
	if len(b.Requests) != 2 || b.Requests[0].CustomID != "Run_7-a_g-0-1" || b.Requests[1].CustomID != "Run_7-a_g-0-2" {
		t.Fatalf("requests %+v", b.Requests)
	}
	for _, r := range b.Requests {
		if !reflect.DeepEqual(r.Params, sync.Body) {
			t.Errorf("params of %s:\n%v\nComplete sends\n%v", r.CustomID, r.Params, sync.Body)
		}
	}
	// Describe prices batches at half.
	d, err := p.Describe(ctx)
	if err != nil || len(d.Models) == 0 || d.Models[0].BatchDiscount != 0.5 {
		t.Errorf("describe %+v %v", d, err)
	}
}

// TestBatchRoundTrip: submit, poll, read each kind of result, and the
// cost of the results is the server's tally at the batch price.
func TestBatchRoundTrip(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{BatchPolls: 2, LineOutcome: func(id string) anthropictest.Outcome {
		switch {
		case strings.HasSuffix(id, "_exp"):
			return anthropictest.Expired
		case strings.HasSuffix(id, "_bad"):
			return anthropictest.Invalid
		case strings.HasSuffix(id, "_srv"):
			return anthropictest.ServerError
		case strings.HasSuffix(id, "_ovl"):
			return anthropictest.Overloaded
		}
		return ""
	}})
	defer s.Close()
	p := provider(s)
	long := userItem("long", strings.Repeat("word ", 100))
	long.Request.Sampling.MaxTokens = 10
	noModel := userItem("nomodel", "x")
	noModel.Request.Model = "claude-none"
	st, err := p.SubmitBatch(ctx, submission("k1", userItem("a", "hello"), userItem("exp", "x"), userItem("bad", "x"),
		userItem("srv", "x"), userItem("ovl", "x"), long, noModel))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.GetBatch(ctx, st.ID)
	if err != nil || got.Ended || got.Status != "in_progress" || got.Total != 7 {
		t.Fatalf("first poll %+v %v", got, err)
	}
	// (Its own retrieve is the second poll.)
	if err := p.BatchResults(ctx, st.ID, func(sdk.BatchResult) error { return nil }); !isRetryable(err) || !strings.Contains(err.Error(), "is in_progress") {
		t.Errorf("results before the end: %v", err)
	}
	got, err = p.GetBatch(ctx, st.ID)
	if err != nil || !got.Ended || got.Status != "ended" || got.Total != 7 || got.Completed != 2 || got.Failed != 5 {
		t.Fatalf("ended %+v %v", got, err)
	}
	r := collect(t, p, st.ID)
	if len(r) != 7 {
		t.Fatalf("%d results: %v", len(r), r)
	}
	a := r["a"]
	if a.Err != nil || a.Completion.Text != "echo: hello" || a.Completion.FinishReason != "stop" || a.Completion.Model != anthropictest.ReportedModel ||
		!strings.HasPrefix(a.Completion.ID, "msg_") || a.Completion.Usage != (sdk.Usage{InputTokens: anthropictest.Tokens("hello") + 3, OutputTokens: anthropictest.Tokens("echo: hello")}) {
		t.Errorf("succeeded %+v", a)
	}
	if l := r["long"]; l.Err != nil || l.Completion.FinishReason != "length" || l.Completion.Usage.OutputTokens != 10 {
		t.Errorf("truncated %+v", l)
	}
	for id, want := range map[string]struct {
		retry bool
		code  string
	}{
		"exp": {true, "expired"}, "bad": {false, "invalid_request_error"}, "srv": {true, "api_error"},
		"ovl": {true, "overloaded_error"}, "nomodel": {false, "not_found_error"},
	} {
		e := r[id].Err
		if e == nil || e.Retryable != want.retry || e.Code != want.code || e.RateLimited {
			t.Errorf("%s: %+v, want retryable %v code %s", id, e, want.retry, want.code)
		}
	}
	if e := r["bad"].Err; e.Status != 400 || e.Message != "errored: invalid_request_error: injected invalid request" {
		t.Errorf("errored message %+v", e)
	}
	// Cost: what the results report is what the server billed.
	var in, out int
	for _, res := range r {
		in += res.Completion.Usage.InputTokens
		out += res.Completion.Usage.OutputTokens
	}
	tl := s.BatchTally()
	if tl.Batches != 1 || tl.Requests != 7 || tl.Succeeded != 2 || tl.InputTokens != int64(in) || tl.OutputTokens != int64(out) {
		t.Errorf("tally %+v; results billed %d in, %d out", tl, in, out)
	}
}

func isRetryable(err error) bool {
	var e *sdk.Error
	return errors.As(err, &e) && e.Retryable
}

// TestSubmitBatchFailures: a refusal is permanent and makes no batch;
// an overload, a server error, a dropped connection are retryable, and
// a lost answer's batch is found.
func TestSubmitBatchFailures(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{BatchPolls: 5})
	defer s.Close()
	p := provider(s)
	sub := submission("lost-1", userItem("a", "x"), userItem("b", "y"))
	s.EnqueueBatch(anthropictest.OpCreate, anthropictest.FaultBadRequest, anthropictest.FaultServerError, anthropictest.FaultOverloaded)
	var e *sdk.Error
	if _, err := p.SubmitBatch(ctx, sub); !errors.As(err, &e) || e.Retryable || e.Status != 400 {
		t.Errorf("400: %v", err)
	}
	if _, err := p.SubmitBatch(ctx, sub); !errors.As(err, &e) || !e.Retryable || e.Status != 500 {
		t.Errorf("500: %v", err)
	}
	if _, err := p.SubmitBatch(ctx, sub); !errors.As(err, &e) || !e.RateLimited || e.Status != 529 {
		t.Errorf("529: %v", err)
	}
	if n := s.BatchTally().Batches; n != 0 {
		t.Fatalf("%d batches made by refused creations", n)
	}
	// The answer is lost: retryable, and the batch exists.
	since := time.Now()
	s.EnqueueBatch(anthropictest.OpCreate, anthropictest.FaultLoseAnswer)
	if _, err := p.SubmitBatch(ctx, sub); !isRetryable(err) {
		t.Fatalf("lost answer: %v", err)
	}
	made := s.Batches()
	if len(made) != 1 {
		t.Fatalf("batches %v", made)
	}
	// In progress: the plugin cannot tell it is the one.
	_, found, why, err := p.FindBatch(ctx, "lost-1", 2, since)
	if err != nil || found != sdk.Unknown || why != "batch "+made[0].ID+" of 2 requests is still in progress; its results will say whether it is this one" {
		t.Errorf("in progress: %v %q %v", found, why, err)
	}
	s.EndBatches()
	st, found, _, err := p.FindBatch(ctx, "lost-1", 2, since)
	if err != nil || found != sdk.Present || st.ID != made[0].ID || !st.Ended || st.Total != 2 {
		t.Errorf("ended: %+v %v %v", st, found, err)
	}
	// Refusals the plugin makes itself.
	if _, err := p.SubmitBatch(ctx, submission("bad key!", userItem("a", "x"))); err == nil || isRetryable(err) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := p.SubmitBatch(ctx, submission("k")); err == nil || isRetryable(err) {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := p.SubmitBatch(ctx, submission("k", make([]sdk.BatchItem, 100_001)...)); err == nil || isRetryable(err) ||
		err.Error() != "a Message Batch holds 1 to 100000 requests, not 100001" {
		t.Errorf("too many: %v", err)
	}
	// No server: retryable.
	gone := &anthropic.Provider{BaseURL: "http://127.0.0.1:1", Key: "k", HTTP: &http.Client{}}
	if _, err := gone.SubmitBatch(ctx, sub); !isRetryable(err) {
		t.Errorf("unreachable: %v", err)
	}
	if n := s.BatchTally().Batches; n != 1 {
		t.Errorf("%d batches", n)
	}
}

// TestFindBatch: Present, Absent, and Unknown while a batch of the same
// size, someone else's, is in progress; paging and since.
func TestFindBatch(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := anthropictest.New(anthropictest.Options{BatchPolls: 1000, Now: func() time.Time { return now }})
	defer s.Close()
	p := provider(s)
	start := now
	mine, err := p.SubmitBatch(ctx, submission("mine", userItem("a", "x"), userItem("b", "y"), userItem("c", "z")))
	if err != nil {
		t.Fatal(err)
	}
	// 150 batches of others after it, so that it is on the second page.
	for i := range 150 {
		now = now.Add(time.Second)
		if _, err := p.SubmitBatch(ctx, submission(fmt.Sprintf("other%d", i), userItem("a", "x"))); err != nil {
			t.Fatal(err)
		}
	}
	// In progress, ours included: unknown, naming the newest candidate.
	_, found, why, err := p.FindBatch(ctx, "mine", 3, start)
	if err != nil || found != sdk.Unknown || !strings.Contains(why, mine.ID) {
		t.Errorf("in progress: %v %q %v", found, why, err)
	}
	// No batch of that size: absent at once.
	if _, found, _, err := p.FindBatch(ctx, "mine", 4, start); err != nil || found != sdk.Absent {
		t.Errorf("other size: %v %v", found, err)
	}
	s.EndBatches()
	st, found, _, err := p.FindBatch(ctx, "mine", 3, start)
	if err != nil || found != sdk.Present || st.ID != mine.ID || st.Completed != 3 {
		t.Errorf("ended: %+v %v %v", st, found, err)
	}
	// A key that made nothing: absent, though batches of its size exist.
	if _, found, _, err := p.FindBatch(ctx, "other", 1, start); err != nil || found != sdk.Absent {
		t.Errorf("a prefix of other keys: %v %v", found, err)
	}
	// since: 15 minutes of slack for the clocks, no more.
	if _, found, _, _ := p.FindBatch(ctx, "mine", 3, start.Add(10*time.Minute)); found != sdk.Present {
		t.Errorf("within the slack: %v", found)
	}
	if _, found, _, _ := p.FindBatch(ctx, "mine", 3, start.Add(20*time.Minute)); found != sdk.Absent {
		t.Errorf("made before since: %v", found)
	}
	// Someone else's batch of the same size still in progress: unknown,
	// until it ends and its results show it is not ours.
	now = now.Add(time.Hour)
	since := now
	other, err := p.SubmitBatch(ctx, submission("theirs", userItem("a", "x"), userItem("b", "x")))
	if err != nil {
		t.Fatal(err)
	}
	_, found, why, err = p.FindBatch(ctx, "lost", 2, since)
	if err != nil || found != sdk.Unknown || why != "batch "+other.ID+" of 2 requests is still in progress; its results will say whether it is this one" {
		t.Errorf("their batch in progress: %v %q %v", found, why, err)
	}
	// The same batch, but one agora knows (its own, under another key):
	// skipped, so the answer needs no wait.
	if _, found, _, err := p.FindBatch(ctx, "lost", 2, since, "msgbatch_unrelated", other.ID); err != nil || found != sdk.Absent {
		t.Errorf("agora's own batch in progress: %v %v, want absent", found, err)
	}
	if _, err := p.CancelBatch(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, found, why, _ = p.FindBatch(ctx, "lost", 2, since); found != sdk.Unknown || !strings.Contains(why, "still canceling") {
		t.Errorf("their batch canceling: %v %q", found, why)
	}
	s.EndBatches()
	if _, found, _, err = p.FindBatch(ctx, "lost", 2, since); err != nil || found != sdk.Absent {
		t.Errorf("their batch ended: %v %v", found, err)
	}
	// Another program's batch of that size, with custom_ids of its own
	// form: not ours, and no error.
	body := `{"requests":[{"custom_id":"Request-1","params":{}},{"custom_id":"x","params":{}}]}`
	req, _ := http.NewRequest("POST", s.URL()+"/v1/messages/batches", strings.NewReader(body))
	req.Header.Set("x-api-key", s.APIKey())
	req.Header.Set("anthropic-version", anthropic.Version)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("foreign batch: %v %v", res, err)
	}
	s.EndBatches()
	if _, found, _, err = p.FindBatch(ctx, "lost", 2, since); err != nil || found != sdk.Absent {
		t.Errorf("a foreign batch ended: %v %v", found, err)
	}
	// A list that cannot be read is an error, never Absent.
	s.EnqueueBatch(anthropictest.OpList, anthropictest.FaultServerError)
	if _, _, _, err := p.FindBatch(ctx, "lost", 2, since); !isRetryable(err) {
		t.Errorf("list failed: %v", err)
	}
	s.EnqueueBatch(anthropictest.OpResults, anthropictest.FaultServerError)
	if _, _, _, err := p.FindBatch(ctx, "lost", 2, since); !isRetryable(err) {
		t.Errorf("results failed: %v", err)
	}
}

// TestCancelBatch: canceling, then ended with what completed.
func TestCancelBatch(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{BatchPolls: 100, CancelCompletes: 1})
	defer s.Close()
	p := provider(s)
	st, err := p.SubmitBatch(ctx, submission("c", userItem("a", "x"), userItem("b", "y"), userItem("c", "z")))
	if err != nil {
		t.Fatal(err)
	}
	st, err = p.CancelBatch(ctx, st.ID)
	if err != nil || st.Status != "canceling" || st.Ended || st.Total != 3 {
		t.Fatalf("cancel %+v %v", st, err)
	}
	st, err = p.GetBatch(ctx, st.ID)
	if err != nil || !st.Ended || st.Completed != 1 || st.Failed != 2 {
		t.Fatalf("after cancel %+v %v", st, err)
	}
	r := collect(t, p, st.ID)
	if r["a"].Err != nil || r["b"].Err == nil || !r["b"].Err.Retryable || r["b"].Err.Code != "canceled" || r["c"].Err == nil {
		t.Errorf("results %+v", r)
	}
	if again, err := p.CancelBatch(ctx, st.ID); err != nil || !again.Ended {
		t.Errorf("cancel an ended batch: %+v %v", again, err)
	}
	if _, err := p.GetBatch(ctx, "msgbatch_none"); err == nil || isRetryable(err) {
		t.Errorf("unknown batch: %v", err)
	}
	if _, err := p.GetBatch(ctx, "../v1/models"); err == nil {
		t.Errorf("a path for an id")
	}
}

// TestResultsDownloadFaults: a 5xx or a cut-off download is retryable,
// and what came before the cut is delivered once.
func TestResultsDownloadFaults(t *testing.T) {
	s := anthropictest.New(anthropictest.Options{})
	defer s.Close()
	p := provider(s)
	items := make([]sdk.BatchItem, 40)
	for i := range items {
		items[i] = userItem(fmt.Sprintf("i%d", i), strings.Repeat("x", 200))
	}
	st, err := p.SubmitBatch(ctx, submission("dl", items...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetBatch(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	s.EnqueueBatch(anthropictest.OpResults, anthropictest.FaultServerError, anthropictest.FaultTruncated)
	if err := p.BatchResults(ctx, st.ID, func(sdk.BatchResult) error { return nil }); !isRetryable(err) {
		t.Errorf("500: %v", err)
	}
	n := 0
	err = p.BatchResults(ctx, st.ID, func(sdk.BatchResult) error { n++; return nil })
	if !isRetryable(err) || n == 0 || n >= 40 {
		t.Errorf("truncated: %d results, %v", n, err)
	}
	if r := collect(t, p, st.ID); len(r) != 40 {
		t.Errorf("%d results", len(r))
	}
	// fn's error stops the stream and comes back as it is.
	stop := errors.New("stop")
	if err := p.BatchResults(ctx, st.ID, func(sdk.BatchResult) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
}

// fakeAPI serves one ended batch of total requests whose results_url is
// resultsURL (relative to the server when it starts with /), and serves
// results with write.
func fakeAPI(t *testing.T, total int, resultsURL string, write func(w http.ResponseWriter)) (*httptest.Server, *anthropic.Provider) {
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("GET /v1/messages/batches/{id}", func(w http.ResponseWriter, r *http.Request) {
		u := resultsURL
		if strings.HasPrefix(u, "/") {
			u = srv.URL + u
		}
		json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "type": "message_batch", "processing_status": "ended",
			"request_counts": map[string]int{"succeeded": total}, "created_at": time.Now().Format(time.RFC3339), "results_url": u})
	})
	mux.HandleFunc("GET /results", func(w http.ResponseWriter, r *http.Request) { write(w) })
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &anthropic.Provider{BaseURL: srv.URL, Key: "sk-ant-secret-key-123", HTTP: &http.Client{}, MaxResultLine: 1000, MaxResultBytes: 10000}
}

func okLine(id string) string {
	return fmt.Sprintf(`{"custom_id":"k_%s","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","model":"m","content":[{"type":"text","text":"t"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}}}`+"\n", id)
}

// TestResultsURLHost: the key goes to the API's address only.
func TestResultsURLHost(t *testing.T) {
	var hits atomic.Int32
	var gotKey atomic.Value
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotKey.Store(r.Header.Get("x-api-key"))
		io.WriteString(w, okLine("a"))
	}))
	defer elsewhere.Close()
	for _, u := range []string{elsewhere.URL + "/results", strings.Replace(elsewhere.URL, "http:", "https:", 1) + "/results", "http://evil.example/results", "not a url\x00"} {
		_, p := fakeAPI(t, 1, u, func(w http.ResponseWriter) { io.WriteString(w, okLine("a")) })
		err := p.BatchResults(ctx, "msgbatch_1", func(sdk.BatchResult) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "refusing to send the API key there") || strings.Contains(err.Error(), p.Key) {
			t.Errorf("results_url %q: %v", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the other host was asked %d times (key %v)", hits.Load(), gotKey.Load())
	}
	// On the API's own address: read.
	_, p := fakeAPI(t, 1, "/results", func(w http.ResponseWriter) { io.WriteString(w, okLine("a")) })
	if r := collect(t, p, "msgbatch_1"); len(r) != 1 {
		t.Errorf("same host: %v", r)
	}
	// A cancel refused (this server has no cancel endpoint: 404) for a
	// batch that has ended is that batch.
	if st, err := p.CancelBatch(ctx, "msgbatch_1"); err != nil || !st.Ended || st.Completed != 1 {
		t.Errorf("cancel refused, batch ended: %+v %v", st, err)
	}
}

// TestHostileResults: the results are bounded and checked line by line.
func TestHostileResults(t *testing.T) {
	for name, tc := range map[string]struct {
		total int
		body  func(w http.ResponseWriter)
		want  string
	}{
		"long line":      {1, func(w http.ResponseWriter) { io.WriteString(w, strings.Repeat("x", 5000)+"\n") }, "results line 1 is longer than 1000 bytes"},
		"long last line": {1, func(w http.ResponseWriter) { io.WriteString(w, strings.Repeat("x", 1001)) }, "results line 1 is longer than 1000 bytes"},
		"endless": {1000, func(w http.ResponseWriter) {
			for i := 0; ; i++ {
				if _, err := io.WriteString(w, okLine(fmt.Sprint(i))); err != nil {
					return
				}
			}
		}, "the results are longer than 10000 bytes"},
		"more lines than requests": {2, func(w http.ResponseWriter) {
			io.WriteString(w, okLine("a")+okLine("b")+okLine("c"))
		}, "the results have more lines than the batch's 2 requests"},
		"twice":      {3, func(w http.ResponseWriter) { io.WriteString(w, okLine("a")+okLine("a")) }, "results line 2: custom_id k_a came twice"},
		"not json":   {1, func(w http.ResponseWriter) { io.WriteString(w, "{\"custom_id\":\n") }, "results line 1: not a result"},
		"foreign id": {1, func(w http.ResponseWriter) { io.WriteString(w, strings.Replace(okLine("a"), "k_a", "Upper.case", 1)) }, "is not one agora made"},
		"unknown type": {1, func(w http.ResponseWriter) {
			io.WriteString(w, `{"custom_id":"k_a","result":{"type":"pending"}}`+"\n")
		}, `result type "pending" is none of`},
		"two keys": {2, func(w http.ResponseWriter) {
			io.WriteString(w, okLine("a")+strings.Replace(okLine("b"), "k_b", "j_b", 1))
		}, "mix custom_ids of two batches"},
		"no message": {1, func(w http.ResponseWriter) {
			io.WriteString(w, `{"custom_id":"k_a","result":{"type":"succeeded"}}`+"\n")
		}, "succeeded without a message"},
	} {
		_, p := fakeAPI(t, tc.total, "/results", tc.body)
		err := p.BatchResults(ctx, "msgbatch_1", func(sdk.BatchResult) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) || isRetryable(err) {
			t.Errorf("%s: %v, want a permanent %q", name, err, tc.want)
		}
	}
	// Blank lines and a last line without a newline are fine.
	_, p := fakeAPI(t, 2, "/results", func(w http.ResponseWriter) {
		io.WriteString(w, "\n"+okLine("a")+"\n"+strings.TrimSuffix(okLine("b"), "\n"))
	})
	if r := collect(t, p, "msgbatch_1"); len(r) != 2 || r["a"].Completion.Text != "t" || r["b"].Completion.FinishReason != "stop" {
		t.Errorf("results %+v", r)
	}
}
