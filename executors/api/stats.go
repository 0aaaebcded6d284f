package api

import "github.com/agorabench/agora/executors/retry"

// Stats are a client's counters since New, for progress lines.
type Stats struct {
	retry.Stats
	// PromptTokens and CompletionTokens sum the usage of the responses
	// returned.
	PromptTokens     int64
	CompletionTokens int64
}

// Retries count failed attempts that were retried or ended in an outage,
// by cause.
type Retries = retry.Retries

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Stats: c.policy.Stats(), PromptTokens: c.promptTokens.Load(), CompletionTokens: c.completionTokens.Load()}
}
