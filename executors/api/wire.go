package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/spec"
)

// The chat-completion body is encoded here and sent, and the response read
// back, through openai-go's client (Client.Post: base URL, key, headers,
// status and error handling all openai-go's), but not through its typed
// ChatCompletionNewParams and ChatCompletion: their reflective encoders
// cost about 22µs and 28µs and 110 allocations a request, against about
// 2µs and 7µs here (BenchmarkEncodeDecode), and at the thousands of
// requests a second a run is benchmarked at, that is a fifth of the CPU.
// Everything a request carries but its messages is fixed per generator, so
// it is encoded once, in New.

// wireMessage is a chat message on the wire.
type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// wireResponse is the part of a chat completion agora reads.
type wireResponse struct {
	ID                string `json:"id"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// encodePrefix encodes a request body's fixed fields — the model, the
// sampling parameters, the extras (which override a field of the same
// name) — as `{"model":…,…` without the closing brace. withMessages is
// false when an extra supplies "messages" itself.
func encodePrefix(model string, s spec.Sampling) (prefix []byte, withMessages bool, err error) {
	fields := map[string]any{"model": model}
	if s.Temperature != nil {
		fields["temperature"] = *s.Temperature
	}
	if s.TopP != nil {
		fields["top_p"] = *s.TopP
	}
	if s.MaxTokens > 0 {
		fields["max_tokens"] = s.MaxTokens
	}
	if len(s.Stop) > 0 {
		fields["stop"] = s.Stop
	}
	if s.Seed != nil {
		fields["seed"] = *s.Seed
	}
	if _, ok := s.Extra["max_completion_tokens"]; ok {
		delete(fields, "max_tokens")
	}
	for k, v := range s.Extra {
		fields[k] = v
	}
	_, supplied := fields["messages"]
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "model" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := fields["model"]; ok {
		keys = append([]string{"model"}, keys...)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encodeTo(&b, k); err != nil {
			return nil, false, err
		}
		b.WriteByte(':')
		if err := encodeTo(&b, fields[k]); err != nil {
			return nil, false, fmt.Errorf("sampling.extra.%s: %v", k, err)
		}
	}
	return b.Bytes(), !supplied, nil
}

// encodeTo appends v's JSON, without escaping HTML characters (a prompt is
// sent as written) and without the encoder's newline.
func encodeTo(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1)
	return nil
}

// encodeBody is the whole body of one request.
func (c *Client) encodeBody(msgs []Message) ([]byte, error) {
	if !c.withMessages {
		return append(append([]byte(nil), c.prefix...), '}'), nil
	}
	n := len(c.prefix) + 16
	wire := make([]wireMessage, len(msgs))
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			return nil, fmt.Errorf("message %d has role %q: want system, developer, user or assistant", i, m.Role)
		}
		wire[i] = wireMessage(m)
		n += len(m.Role) + len(m.Content) + 32
	}
	var b bytes.Buffer
	b.Grow(n)
	b.Write(c.prefix)
	b.WriteString(`,"messages":`)
	if err := encodeTo(&b, wire); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeResponse reads a 2xx body. A body that carries an error object is
// that error (errorIn200); one that is not a chat completion with at least
// one choice is malformed; one whose usage is not a plausible count of
// tokens is invalid: a permanent failure, since the response may have been
// billed and cannot be retried, nor settled on numbers that are not a bill.
func (c *Client) decodeResponse(raw []byte) (Response, *failure) {
	var out wireResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return Response{}, &failure{cause: retry.Malformed, status: http.StatusOK,
			msg: c.redact("malformed response body: " + err.Error())}
	}
	if len(out.Choices) == 0 {
		if e := bytes.TrimSpace(out.Error); len(e) > 0 && !bytes.Equal(e, []byte("null")) {
			return Response{}, c.errorIn200(e)
		}
		return Response{}, &failure{cause: retry.Malformed, status: http.StatusOK,
			msg: "malformed response body: no choices"}
	}
	ch := out.Choices[0]
	res := Response{
		FinishReason:      ch.FinishReason,
		Model:             out.Model,
		SystemFingerprint: out.SystemFingerprint,
		ID:                out.ID,
	}
	if ch.Message.Content != nil {
		res.Text = *ch.Message.Content
	}
	if res.Model == "" {
		res.Model = c.cfg.Model
	}
	if out.Usage != nil {
		p, cpl, err := out.Usage.counts()
		if err != nil {
			return Response{}, c.invalidUsage(err)
		}
		res.Usage = Usage{PromptTokens: p, CompletionTokens: cpl}
	} else {
		res.UsageEstimated = true
		res.Usage.CompletionTokens = (len(res.Text) + 3) / 4
	}
	return res, nil
}

// invalidUsage is the permanent failure of a response whose usage is not a
// plausible bill.
func (c *Client) invalidUsage(err error) *failure {
	return &failure{permanent: true, status: http.StatusOK, code: "invalid_usage",
		msg: c.redact(fmt.Sprintf("%s answered with invalid usage (%v): the response is not settled and not used", c.shown, err))}
}
