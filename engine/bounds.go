package engine

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/agorabench/agora/executors/retry"
)

// maxRejectedRaw bounds the raw text the state keeps of a response that
// is not used (rejected, or refused for its usage): the start of the text
// and a marker saying how long it was. An accepted response is kept whole
// (its size is bounded by the provider client's body cap).
const maxRejectedRaw = 64 << 10

// capRaw is the raw text to store of a response.
func capRaw(text string, accepted bool) string {
	if accepted || len(text) <= maxRejectedRaw {
		return text
	}
	cut := maxRejectedRaw
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + fmt.Sprintf("\n[agora: truncated, %d bytes in all]", len(text))
}

// sending is the context for a provider call: ctx, carrying as retry's
// stop signal the first interrupt and a settlement that crossed a budget,
// so that the call makes no new attempt (a retry included) once either
// came; an attempt in flight finishes and is recorded.
func (e *Engine) sending(ctx context.Context) context.Context {
	return retry.WithStop(ctx, e.noMoreSending())
}

// noMoreSending is closed at the first interrupt or budget crossing.
func (e *Engine) noMoreSending() <-chan struct{} {
	e.sendOnce.Do(func() {
		ch := make(chan struct{})
		e.noSend = ch
		var soft <-chan struct{}
		if e.soft != nil {
			soft = e.soft.Done()
		}
		go func() {
			select {
			case <-soft:
			case <-e.ledger.Crossed():
			}
			close(ch)
		}()
	})
	return e.noSend
}
