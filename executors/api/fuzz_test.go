package api

import (
	"strings"
	"testing"
)

// FuzzDecodeResponse: whatever a 2xx body holds, decoding never panics; a
// response it accepts has usage that is a plausible bill; a failure has a
// message, and neither carries the key.
func FuzzDecodeResponse(f *testing.F) {
	for _, seed := range []string{
		`{"id":"x","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`,
		`{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":-100000000,"completion_tokens":1}}`,
		`{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12.5}}`,
		`{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":1e12}}`,
		`{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":1e400}}`,
		`{"choices":[{"message":{"content":null}}]}`,
		`{"error":{"message":"Incorrect API key provided: sk-fuzz-secret-key","code":"invalid_api_key"}}`,
		`{"error":"overloaded"}`,
		`{"error":{"code":429}}`,
		`{"choices":[]}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	c := &Client{cfg: Config{Name: "gen", Model: "m", APIKeyEnv: "KEY"}, key: "sk-fuzz-secret-key", shown: "http://x/v1"}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, fl := c.decodeResponse(body)
		if fl != nil {
			if fl.msg == "" || strings.Contains(fl.msg, c.key) {
				t.Fatalf("failure message %q", fl.msg)
			}
			return
		}
		u := res.Usage
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.PromptTokens > MaxUsageTokens || u.CompletionTokens > MaxUsageTokens {
			t.Fatalf("accepted usage %+v", u)
		}
	})
}
