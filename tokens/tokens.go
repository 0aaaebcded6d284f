// Package tokens counts prompt tokens for plan estimates: with the model's
// real BPE (tiktoken's encodings, embedded, no network) where one is
// known, and with a documented heuristic otherwise.
//
// Loading a BPE table takes about a quarter of a second, more than the
// whole of `agora plan` may take; so the counts of agora's built-in
// meta-prompts are precomputed (precomputed.go, checked against the real
// tokenizer by TestPrecomputed) and the table is loaded only for texts
// outside it, such as a user's own template.
package tokens

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"

	tiktoken "github.com/pkoukk/tiktoken-go"
	loader "github.com/pkoukk/tiktoken-go-loader"
)

// Heuristic is the method name of the fallback count.
const Heuristic = "heuristic"

// BytesPerToken is the fallback's assumption: English prose and code
// average about four bytes a token under the BPE vocabularies of current
// models (docs/estimates.md).
const BytesPerToken = 4

// Encoding returns the tiktoken encoding of an OpenAI model id, or "" when
// agora knows no offline tokenizer for the model.
func Encoding(model string) string {
	m := strings.ToLower(model)
	if i := strings.LastIndex(m, "/"); i >= 0 {
		m = m[i+1:]
	}
	switch {
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "gpt-4.1"), strings.HasPrefix(m, "gpt-4.5"),
		strings.HasPrefix(m, "gpt-5"), strings.HasPrefix(m, "o1"), strings.HasPrefix(m, "o3"), strings.HasPrefix(m, "o4"),
		strings.HasPrefix(m, "chatgpt-4o"):
		return "o200k_base"
	case strings.HasPrefix(m, "gpt-4"), strings.HasPrefix(m, "gpt-3.5"):
		return "cl100k_base"
	}
	return ""
}

// Counter counts tokens. The zero value is ready; it is safe for
// concurrent use.
type Counter struct {
	// External, when set, is asked first: a provider's own count (a
	// plugin's token counting, for agora plan -plugin-tokens), with its
	// method name; ok false falls back to the offline count. It must be
	// safe for concurrent use.
	External func(model, text string) (n int, method string, ok bool)

	mu   sync.Mutex
	encs map[string]*tiktoken.Tiktoken
}

// Count returns the number of tokens of text under model's tokenizer and
// the method used: an encoding name or Heuristic.
func (c *Counter) Count(model, text string) (int, string) {
	if c.External != nil {
		if n, method, ok := c.External(model, text); ok {
			return n, method
		}
	}
	enc := Encoding(model)
	if enc == "" {
		return HeuristicCount(text), Heuristic
	}
	if n, ok := precomputed[key(enc, text)]; ok {
		return n, enc
	}
	t, err := c.encoding(enc)
	if err != nil {
		return HeuristicCount(text), Heuristic
	}
	return len(t.Encode(text, nil, nil)), enc
}

// HeuristicCount is ceil(bytes / BytesPerToken).
func HeuristicCount(text string) int {
	return (len(text) + BytesPerToken - 1) / BytesPerToken
}

func (c *Counter) encoding(name string) (*tiktoken.Tiktoken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.encs[name]; ok {
		return t, nil
	}
	bpeOnce.Do(func() { tiktoken.SetBpeLoader(loader.NewOfflineLoader()) })
	t, err := tiktoken.GetEncoding(name)
	if err != nil {
		return nil, err
	}
	if c.encs == nil {
		c.encs = map[string]*tiktoken.Tiktoken{}
	}
	c.encs[name] = t
	return t, nil
}

var bpeOnce sync.Once

func key(enc, text string) string {
	sum := sha256.Sum256([]byte(text))
	return enc + ":" + hex.EncodeToString(sum[:])
}
