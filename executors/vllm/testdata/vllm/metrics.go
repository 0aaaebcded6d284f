package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// completions scores a prompt as vLLM's /v1/completions does with echo
// and logprobs: the prompt's tokens, here runs of spaces and runs of
// non-spaces, each with log-probability −0.1 × its length in characters
// (the first one without), their character offsets, and one generated
// token. It is the convention of apitest's DefaultTokenize, so tests know
// every value.
func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Prompt   string `json:"prompt"`
		Echo     bool   `json:"echo"`
		Logprobs *int   `json:"logprobs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Prompt == "" || !req.Echo || req.Logprobs == nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"object": "error", "message": "bad request: want a prompt with echo and logprobs", "type": "BadRequestError", "code": 400}`)
		return
	}
	if req.Model != s.name {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"object": "error", "message": "The model %s does not exist.", "type": "NotFoundError", "code": 404}`, req.Model)
		return
	}
	var tokens []string
	start := 0
	for i, c := range req.Prompt {
		if i > start {
			prev, _ := utf8.DecodeLastRuneInString(req.Prompt[:i])
			if unicode.IsSpace(prev) != unicode.IsSpace(c) {
				tokens = append(tokens, req.Prompt[start:i])
				start = i
			}
		}
	}
	tokens = append(tokens, req.Prompt[start:], " the")
	logprobs := make([]*float64, len(tokens))
	offsets := make([]int, len(tokens))
	off := 0
	for i, t := range tokens {
		if i > 0 {
			v := -0.1 * float64(utf8.RuneCountInString(t))
			if i == len(tokens)-1 {
				v = -2
			}
			logprobs[i] = &v
		}
		offsets[i] = off
		off += utf8.RuneCountInString(t)
	}
	s.served.Add(1)
	writeJSON(w, map[string]any{
		"id": fmt.Sprintf("cmpl-%d", s.port), "object": "text_completion", "model": s.name,
		"choices": []any{map[string]any{"index": 0, "text": " the", "finish_reason": "length",
			"logprobs": map[string]any{"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets}}},
		"usage": map[string]any{"prompt_tokens": len(tokens) - 1, "completion_tokens": 1, "total_tokens": len(tokens)},
	})
}

// embeddings returns eight components drawn from each input's FNV-1a
// hash (apitest's DefaultEmbedding).
func (s *server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Input) == 0 || req.Model != s.name {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"object": "error", "message": "bad request", "type": "BadRequestError", "code": 400}`)
		return
	}
	var data []any
	tokens := 0
	for i, text := range req.Input {
		v := make([]float32, 8)
		for j := range v {
			h := fnv.New64a()
			h.Write([]byte{byte(j)})
			h.Write([]byte(text))
			v[j] = float32(h.Sum64()%2000)/1000 - 1
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": v})
		tokens += (len(text) + 3) / 4
	}
	s.served.Add(1)
	writeJSON(w, map[string]any{"object": "list", "model": s.name, "data": data,
		"usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}
