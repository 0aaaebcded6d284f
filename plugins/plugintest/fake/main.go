// Command fake is a test provider plugin: it echoes the last message of
// model fake-1, and misbehaves on request, by the last message's content:
//
//	PANIC       panics (crashing the plugin)
//	PANIC-ONCE  panics unless the file $FAKE_PANIC_MARK exists, creating it
//	HANG        never answers
//	RATELIMIT   is rate limited once per $FAKE_STATE file, asking for 50ms
//	PERMANENT   fails permanently
//	SLOW        answers after 200ms
//	PRINT       prints a line to stdout and one to stderr
//	LEAK        fails with an error, a log line and a stderr line carrying
//	            $FAKE_SECRET (as a provider echoing its key would)
//	LEAKPANIC   panics with $FAKE_SECRET in the message
//	NEGUSAGE    reports -100000000 input tokens
//	ZEROUSAGE   reports no tokens for its (non-empty) completion
//	HUGEUSAGE   reports 1e12 output tokens
//	HUGEBODY    answers with a 16 MiB completion, whatever max_tokens
//
// It embeds a text as [bytes, words], counts tokens as ceil(bytes/2)
// (unlike agora's offline heuristic) and logs each request at info level.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agorabench/agora/plugins/sdk"
)

type fake struct{}

func (fake) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{Name: "fake", Models: []sdk.Model{
		{ID: "fake-1", InputPrice: 1, OutputPrice: 2, RPM: 6000, Concurrency: 4},
		{ID: "fake-2"},
	}}, nil
}

func (fake) Complete(ctx context.Context, req sdk.Request) (sdk.Completion, error) {
	last := req.Messages[len(req.Messages)-1].Content
	sdk.Log.Info("completing", "model", req.Model, "messages", len(req.Messages))
	if strings.Contains(last, "PRINT") {
		fmt.Println("printed to stdout")
		fmt.Fprintln(os.Stderr, "printed to stderr")
	}
	secret := os.Getenv("FAKE_SECRET")
	switch {
	case strings.Contains(last, "LEAKPANIC"):
		panic("fake: upstream rejected key " + secret)
	case strings.Contains(last, "LEAK"):
		sdk.Log.Error("upstream rejected the key", "key", secret)
		fmt.Fprintln(os.Stderr, "debug: using key "+secret)
		return sdk.Completion{}, errors.New("fake: upstream said: invalid key " + secret)
	case strings.Contains(last, "HUGEBODY"):
		return sdk.Completion{Text: strings.Repeat("a", 16<<20), FinishReason: "stop", Model: req.Model,
			Usage: sdk.Usage{InputTokens: 10, OutputTokens: 4 << 20}}, nil
	case strings.Contains(last, "PANIC-ONCE"):
		mark := os.Getenv("FAKE_PANIC_MARK")
		if _, err := os.Stat(mark); err != nil {
			os.WriteFile(mark, nil, 0o644)
			panic("fake: PANIC-ONCE requested")
		}
	case strings.Contains(last, "PANIC"):
		panic("fake: PANIC requested")
	case strings.Contains(last, "HANG"):
		<-ctx.Done()
		return sdk.Completion{}, ctx.Err()
	case strings.Contains(last, "RATELIMIT"):
		mark := os.Getenv("FAKE_STATE")
		if _, err := os.Stat(mark); err != nil {
			os.WriteFile(mark, nil, 0o644)
			return sdk.Completion{}, &sdk.Error{Message: "slow down", RateLimited: true, RetryAfter: 50 * time.Millisecond, Status: 429}
		}
	case strings.Contains(last, "PERMANENT"):
		return sdk.Completion{}, errors.New("fake: this request can never succeed")
	case strings.Contains(last, "SLOW"):
		time.Sleep(200 * time.Millisecond)
	}
	text := "echo: " + last
	finish := "stop"
	if m := req.Sampling.MaxTokens; m > 0 && (len(text)+3)/4 > m {
		text, finish = text[:m*4], "length"
	}
	in := 0
	for _, m := range req.Messages {
		in += (len(m.Content) + 3) / 4
	}
	usage := sdk.Usage{InputTokens: in, OutputTokens: (len(text) + 3) / 4}
	switch {
	case strings.Contains(last, "NEGUSAGE"):
		usage.InputTokens = -100000000
	case strings.Contains(last, "ZEROUSAGE"):
		usage = sdk.Usage{}
	case strings.Contains(last, "HUGEUSAGE"):
		usage.OutputTokens = 1e12
	}
	return sdk.Completion{Text: text, FinishReason: finish, Model: req.Model + "-20250101", ID: "fake-id", Usage: usage}, nil
}

func (fake) CountTokens(_ context.Context, _ string, msgs []sdk.Message) (int, error) {
	n := 0
	for _, m := range msgs {
		n += (len(m.Content) + 1) / 2
	}
	return n, nil
}

// Embed returns [bytes, words] for each input; an input PERMANENT or
// RATELIMIT misbehaves as in Complete.
func (fake) Embed(_ context.Context, _ string, inputs []string) ([][]float32, sdk.Usage, error) {
	for _, s := range inputs {
		switch s {
		case "PERMANENT":
			return nil, sdk.Usage{}, errors.New("fake: cannot embed this")
		case "RATELIMIT":
			if mark := os.Getenv("FAKE_STATE"); !exists(mark) {
				os.WriteFile(mark, nil, 0o644)
				return nil, sdk.Usage{}, &sdk.Error{Message: "slow down", RateLimited: true}
			}
		}
	}
	out := make([][]float32, len(inputs))
	n := 0
	for i, s := range inputs {
		out[i] = []float32{float32(len(s)), float32(len(strings.Fields(s)))}
		n += (len(s) + 3) / 4
	}
	return out, sdk.Usage{InputTokens: n}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func main() { sdk.Serve(fake{}) }
