package metrics

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// PerplexityPrefix is the text before a response when it is scored: the
// instruction and a blank line. The base model scores the response's
// tokens given this prefix; the prefix's own tokens are not counted.
func PerplexityPrefix(instruction string) string { return instruction + "\n\n" }

// Logprobs are the echoed prompt tokens of a completion made with echo
// and logprobs, as /v1/completions returns them: each token's text, its
// log-probability (nil for the first token, which has no context) and its
// offset in the prompt, counted in characters (Unicode code points, as
// vLLM and OpenAI count them), not bytes. Tokens generated after the
// prompt may follow.
type Logprobs struct {
	Tokens        []string
	TokenLogprobs []*float64
	TextOffset    []int
}

// ItemNLL is the negative log-likelihood of a response under the model.
type ItemNLL struct {
	// Sum is −Σ log p over the response's tokens; Tokens their number.
	Sum    float64
	Tokens int
}

// Perplexity is exp(Sum / Tokens).
func (n ItemNLL) Perplexity() float64 { return math.Exp(n.Sum / float64(n.Tokens)) }

// ResponseNLL sums the log-probabilities of the response's tokens: those
// whose offset is at or after the prefix's length and before the prompt's
// end (prompt = prefix + response). A token that straddles the boundary
// (starts inside the prefix) belongs to the prefix.
func ResponseNLL(lp Logprobs, prefix, response string) (ItemNLL, error) {
	if len(lp.TokenLogprobs) != len(lp.TextOffset) {
		return ItemNLL{}, fmt.Errorf("logprobs: %d token_logprobs but %d text_offset", len(lp.TokenLogprobs), len(lp.TextOffset))
	}
	start := utf8.RuneCountInString(prefix)
	end := start + utf8.RuneCountInString(response)
	var out ItemNLL
	for i, off := range lp.TextOffset {
		if off < start || off >= end {
			continue
		}
		p := lp.TokenLogprobs[i]
		if p == nil {
			return ItemNLL{}, fmt.Errorf("logprobs: response token %d (offset %d) has no log-probability", i, off)
		}
		if math.IsNaN(*p) || *p > 0 {
			return ItemNLL{}, fmt.Errorf("logprobs: response token %d has log-probability %v", i, *p)
		}
		out.Sum -= *p
		out.Tokens++
	}
	if out.Tokens == 0 {
		return ItemNLL{}, fmt.Errorf("logprobs: the response has no tokens of its own (was the prompt echoed?)")
	}
	return out, nil
}

// PerplexityResult aggregates the items of a data set.
type PerplexityResult struct {
	// Items summarizes the per-item perplexities; its mean is the metric.
	Items Summary `json:"items"`
	// Corpus is the token-weighted perplexity exp(ΣSum / ΣTokens).
	Corpus float64 `json:"corpus"`
	Tokens int     `json:"tokens"`
}

// AggregatePerplexity summarizes items' NLLs.
func AggregatePerplexity(items []ItemNLL) (PerplexityResult, error) {
	if len(items) == 0 {
		return PerplexityResult{}, fmt.Errorf("no items scored")
	}
	ppl := make([]float64, len(items))
	var sum float64
	var toks int
	for i, it := range items {
		ppl[i] = it.Perplexity()
		sum += it.Sum
		toks += it.Tokens
	}
	s, err := Summarize(ppl)
	if err != nil {
		return PerplexityResult{}, err
	}
	return PerplexityResult{Items: s, Corpus: math.Exp(sum / float64(toks)), Tokens: toks}, nil
}
