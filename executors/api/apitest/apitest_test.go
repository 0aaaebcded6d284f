package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, s *Server, key, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL()+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

const hello = `{"model":"test-model","messages":[{"role":"user","content":"hello there"}]}`

func TestAuthModelsAndErrors(t *testing.T) {
	s := New(Options{Models: []string{"m1", "test-model"}})
	defer s.Close()

	res, body, err := post(t, s, "wrong-key-123456789", hello)
	if err != nil || res.StatusCode != 401 || !strings.Contains(string(body), `"code":"invalid_api_key"`) || strings.Contains(string(body), "wrong-key-123456789") {
		t.Errorf("wrong key: %v %d %s", err, res.StatusCode, body)
	}
	res, body, _ = post(t, s, s.APIKey(), `{"model":"nope","messages":[{"role":"user","content":"x"}]}`)
	if res.StatusCode != 404 || !strings.Contains(string(body), `"code":"model_not_found"`) {
		t.Errorf("unknown model: %d %s", res.StatusCode, body)
	}
	res, body, _ = post(t, s, s.APIKey(), `{"model":`)
	if res.StatusCode != 400 {
		t.Errorf("broken body: %d %s", res.StatusCode, body)
	}

	req, _ := http.NewRequest("GET", s.URL()+"/models", nil)
	req.Header.Set("Authorization", "Bearer "+s.APIKey())
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	json.NewDecoder(r.Body).Decode(&list)
	r.Body.Close()
	if len(list.Data) != 2 || list.Data[0].ID != "m1" {
		t.Errorf("models %+v", list)
	}

	st := s.Stats()
	if st.Outcomes[OutcomeUnauthorized] != 1 || st.Outcomes[OutcomeNotFound] != 1 || st.Outcomes[OutcomeBadRequest] != 1 || st.Served != 0 || st.ModelRequests != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestResponseAndTally(t *testing.T) {
	s := New(Options{Responder: func(r ChatRequest) string { return strings.Repeat("ab", 10) }})
	defer s.Close()
	body := `{"model":"test-model","max_tokens":3,"messages":[{"role":"system","content":"abcd"},{"role":"user","content":[{"type":"text","text":"ef"},{"type":"text","text":"g"}]}]}`
	res, b, err := post(t, s, s.APIKey(), body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %d %s", err, res.StatusCode, b)
	}
	var out struct {
		ID, Model, SystemFingerprint string `json:"-"`
		Choices                      []struct {
			Message      Message `json:"message"`
			FinishReason string  `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	// 7 bytes of prompt → 2 tokens; the 20-byte answer is cut at
	// max_tokens 3 → 12 bytes, 3 tokens, finish "length".
	if out.Usage.Prompt != 2 || out.Usage.Completion != 3 || out.Choices[0].FinishReason != "length" || len(out.Choices[0].Message.Content) != 12 {
		t.Errorf("response %s", b)
	}
	if !strings.Contains(string(b), `"system_fingerprint":"fp_apitest"`) || !strings.Contains(string(b), `"id":"chatcmpl-apitest-1"`) {
		t.Errorf("response %s", b)
	}
	last, _ := s.LastRequest()
	if last.Messages[1].Content != "efg" || *last.MaxTokens != 3 {
		t.Errorf("last request %+v", last)
	}

	// A malformed body is tallied apart.
	s.Enqueue(FaultMalformed)
	res, b, _ = post(t, s, s.APIKey(), hello)
	if res.StatusCode != 200 || json.Valid(b) {
		t.Errorf("malformed: %d %s", res.StatusCode, b)
	}
	st := s.Stats()
	if st.Served != 1 || st.PromptTokens != 2 || st.CompletionTokens != 3 || st.UnservedPromptTokens != int64(Tokens("hello there")) || st.UnservedCompletionTokens != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultHeadersAndDrop(t *testing.T) {
	s := New(Options{Faults: Faults{RetryAfter: 1500 * time.Millisecond}})
	defer s.Close()
	s.Enqueue(FaultRateLimit, FaultServerError, FaultUnavailable, FaultDrop, FaultTruncated)
	res, _, _ := post(t, s, s.APIKey(), hello)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || res.Header.Get("retry-after-ms") != "1500" || res.Header.Get("x-ratelimit-reset-requests") != "1.5s" {
		t.Errorf("429: %d %v", res.StatusCode, res.Header)
	}
	for _, want := range []int{500, 503} {
		if res, _, _ := post(t, s, s.APIKey(), hello); res.StatusCode != want {
			t.Errorf("got %d, want %d", res.StatusCode, want)
		}
	}
	if _, _, err := post(t, s, s.APIKey(), hello); err == nil {
		t.Error("dropped connection returned no error")
	}
	_, b, _ := post(t, s, s.APIKey(), hello)
	if !strings.Contains(string(b), `"finish_reason":"length"`) {
		t.Errorf("truncated: %s", b)
	}

	d := New(Options{Faults: Faults{RetryAfter: 2 * time.Second, RetryAfterDate: true}})
	defer d.Close()
	d.Enqueue(FaultRateLimit)
	res, _, _ = post(t, d, d.APIKey(), hello)
	if at, err := http.ParseTime(res.Header.Get("Retry-After")); err != nil || time.Until(at) > 3*time.Second {
		t.Errorf("Retry-After date %q: %v", res.Header.Get("Retry-After"), err)
	}
}

func TestSeededFaultsRepeat(t *testing.T) {
	run := func() string {
		s := New(Options{Seed: 3, Faults: Faults{ServerError: 0.3, Unavailable: 0.3}})
		defer s.Close()
		var b strings.Builder
		for range 30 {
			res, _, _ := post(t, s, s.APIKey(), hello)
			b.WriteString(strconv.Itoa(res.StatusCode) + " ")
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b || !strings.Contains(a, "500") || !strings.Contains(a, "503") || !strings.Contains(a, "200") {
		t.Errorf("runs differ or lack a status:\n%s\n%s", a, b)
	}
}

func TestRateLimitModes(t *testing.T) {
	for _, sliding := range []bool{false, true} {
		s := New(Options{RateLimit: RateLimit{RPM: 3, Sliding: sliding}})
		var codes []int
		for range 4 {
			res, _, _ := post(t, s, s.APIKey(), hello)
			codes = append(codes, res.StatusCode)
			if res.StatusCode == 429 {
				ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
				if ra < 15 || ra > 60 || res.Header.Get("x-ratelimit-remaining-requests") != "0" {
					t.Errorf("sliding=%v: 429 headers %v", sliding, res.Header)
				}
			}
		}
		if codes[2] != 200 || codes[3] != 429 || s.Count(OutcomeRPMExceeded) != 1 {
			t.Errorf("sliding=%v: codes %v", sliding, codes)
		}
		s.Close()
	}
}

func TestHoldRelease(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Hold()
	done := make(chan int)
	for range 3 {
		go func() {
			res, _, err := post(t, s, s.APIKey(), hello)
			if err != nil {
				done <- 0
				return
			}
			done <- res.StatusCode
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.InFlight() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a held request returned")
	case <-time.After(20 * time.Millisecond):
	}
	s.Release()
	for range 3 {
		if code := <-done; code != 200 {
			t.Errorf("released request: %d", code)
		}
	}
	if st := s.Stats(); st.MaxInFlight != 3 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}
