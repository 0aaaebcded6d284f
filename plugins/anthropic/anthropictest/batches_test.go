package anthropictest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends one request with the API's headers; the status and the
// decoded JSON answer.
func call(t *testing.T, s *Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	req.Header.Set("x-api-key", s.APIKey())
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func item(id, text string) map[string]any {
	return map[string]any{"custom_id": id, "params": map[string]any{"model": DefaultModel, "max_tokens": 100,
		"messages": []map[string]string{{"role": "user", "content": text}}}}
}

func errType(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	t, _ := e["type"].(string)
	return t
}

func TestBatchCreateValidates(t *testing.T) {
	s := New(Options{MaxBatchRequests: 3, MaxBatchBytes: 2000})
	defer s.Close()
	for name, tc := range map[string]struct {
		body   any
		status int
		typ    string
	}{
		"no requests":     {map[string]any{}, 400, "invalid_request_error"},
		"empty":           {map[string]any{"requests": []any{}}, 400, "invalid_request_error"},
		"too many":        {map[string]any{"requests": []any{item("a", "x"), item("b", "x"), item("c", "x"), item("d", "x")}}, 400, "invalid_request_error"},
		"extra field":     {map[string]any{"requests": []any{item("a", "x")}, "metadata": map[string]string{}}, 400, "invalid_request_error"},
		"bad custom_id":   {map[string]any{"requests": []any{item("a.b", "x")}}, 400, "invalid_request_error"},
		"long custom_id":  {map[string]any{"requests": []any{item(strings.Repeat("a", 65), "x")}}, 400, "invalid_request_error"},
		"duplicate":       {map[string]any{"requests": []any{item("a", "x"), item("a", "y")}}, 400, "invalid_request_error"},
		"params not obj":  {map[string]any{"requests": []any{map[string]any{"custom_id": "a", "params": "x"}}}, 400, "invalid_request_error"},
		"too large":       {map[string]any{"requests": []any{item("a", strings.Repeat("x", 3000))}}, 413, "request_too_large"},
		"extra item key":  {map[string]any{"requests": []any{map[string]any{"custom_id": "a", "params": map[string]any{}, "x": 1}}}, 400, "invalid_request_error"},
		"good 64-char id": {map[string]any{"requests": []any{item(strings.Repeat("A_-9", 16), "x")}}, 200, ""},
	} {
		st, out := call(t, s, "POST", "/v1/messages/batches", tc.body)
		if st != tc.status || errType(out) != tc.typ {
			t.Errorf("%s: %d %v", name, st, out)
		}
	}
	if tl := s.BatchTally(); tl.Batches != 1 || tl.Requests != 1 {
		t.Errorf("tally %+v: only the good batch was made", tl)
	}
	// Without the key: 401.
	req, _ := http.NewRequest("GET", s.URL()+"/v1/messages/batches", nil)
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 401 {
		t.Errorf("no key: %v %v", res, err)
	}
}

func results(t *testing.T, s *Server, url string) map[string]map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("x-api-key", s.APIKey())
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("results: %v %v", res, err)
	}
	defer res.Body.Close()
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var line struct {
			CustomID string         `json:"custom_id"`
			Result   map[string]any `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out[line.CustomID] = line.Result
	}
	return out
}

func TestBatchLifecycle(t *testing.T) {
	s := New(Options{BatchPolls: 2, LineOutcome: func(id string) Outcome {
		if id == "k_exp" {
			return Expired
		}
		return ""
	}})
	defer s.Close()
	bad := item("k_bad", "x")
	bad["params"].(map[string]any)["max_tokens"] = 0
	st, b := call(t, s, "POST", "/v1/messages/batches", map[string]any{"requests": []any{item("k_a", "hello"), item("k_exp", "x"), bad, item("k_y", "y")}})
	if st != 200 || b["processing_status"] != "in_progress" || b["results_url"] != nil || b["type"] != "message_batch" ||
		!strings.HasPrefix(b["id"].(string), "msgbatch_") {
		t.Fatalf("create: %d %v", st, b)
	}
	id := b["id"].(string)
	for i := range 2 {
		_, b = call(t, s, "GET", "/v1/messages/batches/"+id, nil)
		if b["processing_status"] != "in_progress" || b["request_counts"].(map[string]any)["processing"] != 4.0 {
			t.Fatalf("poll %d: %v", i, b)
		}
	}
	st, out := call(t, s, "GET", "/v1/messages/batches/"+id+"/results", nil)
	if st != 400 {
		t.Errorf("results before the end: %d %v", st, out)
	}
	_, b = call(t, s, "GET", "/v1/messages/batches/"+id, nil)
	c := b["request_counts"].(map[string]any)
	if b["processing_status"] != "ended" || b["ended_at"] == nil || c["succeeded"] != 2.0 || c["errored"] != 1.0 || c["expired"] != 1.0 || c["processing"] != 0.0 {
		t.Fatalf("ended: %v", b)
	}
	url := b["results_url"].(string)
	if url != s.URL()+"/v1/messages/batches/"+id+"/results" {
		t.Errorf("results_url %s", url)
	}
	r := results(t, s, url)
	msg := r["k_a"]["message"].(map[string]any)
	if r["k_a"]["type"] != "succeeded" || msg["content"].([]any)[0].(map[string]any)["text"] != "echo: hello" || msg["model"] != ReportedModel ||
		r["k_exp"]["type"] != "expired" || r["k_bad"]["type"] != "errored" ||
		r["k_bad"]["error"].(map[string]any)["error"].(map[string]any)["type"] != "invalid_request_error" {
		t.Errorf("results %v", r)
	}
	tl := s.BatchTally()
	want := BatchTally{Batches: 1, Requests: 4, Succeeded: 2, Errored: 1, Expired: 1,
		InputTokens: int64(Tokens("hello") + 3 + Tokens("y") + 3), OutputTokens: int64(Tokens("echo: hello") + Tokens("echo: y"))}
	if tl != want {
		t.Errorf("tally %+v, want %+v", tl, want)
	}
	if st, _ := call(t, s, "GET", "/v1/messages/batches/msgbatch_nope", nil); st != 404 {
		t.Errorf("unknown batch: %d", st)
	}
}

func TestBatchListAndCancel(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := New(Options{BatchPolls: 100, CancelCompletes: 1, Now: func() time.Time { return now }})
	defer s.Close()
	var ids []string
	for i := range 5 {
		now = now.Add(time.Minute)
		_, b := call(t, s, "POST", "/v1/messages/batches", map[string]any{"requests": []any{item("a", "x"), item("b", fmt.Sprint(i))}})
		ids = append(ids, b["id"].(string))
	}
	var got []string
	after := ""
	for range 10 {
		q := "/v1/messages/batches?limit=2"
		if after != "" {
			q += "&after_id=" + after
		}
		_, p := call(t, s, "GET", q, nil)
		for _, d := range p["data"].([]any) {
			got = append(got, d.(map[string]any)["id"].(string))
		}
		if p["has_more"] != true {
			break
		}
		after = p["last_id"].(string)
	}
	if strings.Join(got, " ") != strings.Join([]string{ids[4], ids[3], ids[2], ids[1], ids[0]}, " ") {
		t.Errorf("list %v, want newest first of %v", got, ids)
	}
	_, p := call(t, s, "GET", "/v1/messages/batches?limit=2&before_id="+ids[1], nil)
	if d := p["data"].([]any); len(d) != 2 || d[0].(map[string]any)["id"] != ids[3] || p["has_more"] != true {
		t.Errorf("before_id page %v", p)
	}
	if st, _ := call(t, s, "GET", "/v1/messages/batches?limit=1001", nil); st != 400 {
		t.Errorf("limit 1001: %d", st)
	}
	_, b := call(t, s, "POST", "/v1/messages/batches/"+ids[0]+"/cancel", nil)
	if b["processing_status"] != "canceling" || b["cancel_initiated_at"] == nil {
		t.Fatalf("cancel: %v", b)
	}
	_, b = call(t, s, "GET", "/v1/messages/batches/"+ids[0], nil)
	if c := b["request_counts"].(map[string]any); b["processing_status"] != "ended" || c["succeeded"] != 1.0 || c["canceled"] != 1.0 {
		t.Fatalf("canceled batch: %v", b)
	}
	if r := results(t, s, b["results_url"].(string)); r["a"]["type"] != "succeeded" || r["b"]["type"] != "canceled" {
		t.Errorf("results %v", r)
	}
	// Cancelling an ended batch changes nothing.
	if _, b := call(t, s, "POST", "/v1/messages/batches/"+ids[0]+"/cancel", nil); b["processing_status"] != "ended" {
		t.Errorf("cancel after the end: %v", b)
	}
	// BatchDuration: ended by the clock.
	s.opts.BatchDuration = 10 * time.Minute
	now = now.Add(7 * time.Minute)
	_, p = call(t, s, "GET", "/v1/messages/batches?limit=5", nil)
	var st []string
	for _, d := range p["data"].([]any) {
		st = append(st, d.(map[string]any)["processing_status"].(string))
	}
	if strings.Join(st, " ") != "in_progress in_progress in_progress ended ended" {
		t.Errorf("statuses %v", st)
	}
}

func TestBatchFaults(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	body := map[string]any{"requests": []any{item("a", "x")}}
	s.EnqueueBatch(OpCreate, FaultServerError, FaultOverloaded, FaultLoseAnswer)
	if st, _ := call(t, s, "POST", "/v1/messages/batches", body); st != 500 {
		t.Errorf("500: %d", st)
	}
	if st, _ := call(t, s, "POST", "/v1/messages/batches", body); st != 529 {
		t.Errorf("529: %d", st)
	}
	if s.BatchTally().Batches != 0 {
		t.Errorf("a refused creation made a batch")
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.URL()+"/v1/messages/batches", bytes.NewReader(b))
	req.Header.Set("x-api-key", s.APIKey())
	req.Header.Set("anthropic-version", "2023-06-01")
	if res, err := http.DefaultClient.Do(req); err == nil {
		t.Fatalf("lost answer answered: %v", res.Status)
	}
	bs := s.Batches()
	if len(bs) != 1 || s.BatchTally().Batches != 1 {
		t.Fatalf("the lost answer's batch: %v", bs)
	}
	_, got := call(t, s, "GET", "/v1/messages/batches/"+bs[0].ID, nil)
	url := got["results_url"].(string)
	s.EnqueueBatch(OpResults, FaultServerError, FaultTruncated)
	if st, _ := call(t, s, "GET", "/v1/messages/batches/"+bs[0].ID+"/results", nil); st != 500 {
		t.Errorf("results 500: %d", st)
	}
	req, _ = http.NewRequest("GET", url, nil)
	req.Header.Set("x-api-key", s.APIKey())
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Errorf("a truncated download read to its end")
	}
	res.Body.Close()
	if r := results(t, s, url); r["a"]["type"] != "succeeded" {
		t.Errorf("after the faults: %v", r)
	}
	// FailLines: by count, in the batches' order.
	s.FailLines(ServerError, 1)
	s.FailLines(Overloaded, 1)
	_, got = call(t, s, "POST", "/v1/messages/batches", map[string]any{"requests": []any{item("p", "x"), item("q", "x"), item("r", "x")}})
	_, got = call(t, s, "GET", "/v1/messages/batches/"+got["id"].(string), nil)
	r := results(t, s, got["results_url"].(string))
	e := func(id string) any { return r[id]["error"].(map[string]any)["error"].(map[string]any)["type"] }
	if e("p") != "api_error" || e("q") != "overloaded_error" || r["r"]["type"] != "succeeded" {
		t.Errorf("FailLines: %v", r)
	}
}
