package seeddata

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// record is one decoded seed record before IDs are assigned.
type record struct {
	id          string
	instruction string
	response    string
}

// checkEvery is how many records are decoded between context checks.
const checkEvery = 1024

// decode reads every record of one data file. name is how errors name the
// file.
func decode(ctx context.Context, name string, f format, data []byte) ([]record, error) {
	switch f {
	case formatJSONL:
		return decodeJSONL(ctx, name, data)
	case formatJSON:
		return decodeJSON(ctx, name, data)
	default:
		return decodeParquet(ctx, name, data)
	}
}

// decodeJSONL reads one JSON object a line; blank lines are skipped.
func decodeJSONL(ctx context.Context, name string, data []byte) ([]record, error) {
	var recs []record
	r := bufio.NewReader(bytes.NewReader(data))
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			if line == 1 {
				b = bytes.TrimPrefix(b, []byte("\ufeff"))
			}
			if b = bytes.TrimSpace(b); len(b) > 0 {
				m, derr := decodeObject(b)
				if derr != nil {
					return nil, fmt.Errorf("seed file %s line %d: %w", name, line, derr)
				}
				rec, rerr := toRecord(m)
				if rerr != nil {
					return nil, fmt.Errorf("seed file %s line %d: %w", name, line, rerr)
				}
				recs = append(recs, rec)
				if len(recs)%checkEvery == 0 {
					if err := ctx.Err(); err != nil {
						return nil, err
					}
				}
			}
		}
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("seed file %s: %w", name, err)
		}
	}
}

// decodeObject decodes one JSON object, keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	if b[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	return m, nil
}

// decodeJSON reads a JSON array of objects. A .json file whose first value
// is an object is read as JSON Lines, as the Hub's own loaders do.
func decodeJSON(ctx context.Context, name string, data []byte) ([]record, error) {
	body := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	if len(body) > 0 && body[0] == '{' {
		return decodeJSONL(ctx, name, data)
	}
	if len(body) == 0 || body[0] != '[' {
		return nil, fmt.Errorf("seed file %s: want a JSON array of objects", name)
	}
	off := int64(len(data) - len(body))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("seed file %s: invalid JSON: %w", name, err)
	}
	var recs []record
	for i := 0; dec.More(); i++ {
		at := func() string {
			return fmt.Sprintf("seed file %s line %d (item %d)", name, lineAt(data, off+dec.InputOffset()), i)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: invalid JSON: %w", at(), err)
		}
		// The decoder's offset is now after the item; point at its start.
		start := off + dec.InputOffset() - int64(len(raw))
		where := fmt.Sprintf("seed file %s line %d (item %d)", name, lineAt(data, start), i)
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("%s: not a JSON object", where)
		}
		m, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		rec, err := toRecord(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		recs = append(recs, rec)
		if len(recs)%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("seed file %s: invalid JSON: %w", name, err)
	}
	return recs, nil
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	off = max(0, min(off, int64(len(data))))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// parquetBatch is how many rows are read at a time.
const parquetBatch = 256

// decodeParquet reads every row of a Parquet file generically, so that a
// file with any subset of the known columns (and any others) works.
func decodeParquet(ctx context.Context, name string, data []byte) (recs []record, err error) {
	defer func() {
		// parquet-go panics on some malformed files.
		if p := recover(); p != nil {
			recs, err = nil, fmt.Errorf("seed file %s: read parquet: %v", name, p)
		}
	}()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("seed file %s: read parquet: %w", name, err)
	}
	r := parquet.NewGenericReader[map[string]any](f, f.Schema())
	defer r.Close()
	recs = make([]record, 0, min(max(f.NumRows(), 0), 1<<16))
	rows := make([]map[string]any, parquetBatch)
	for row := 1; ; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range rows {
			rows[i] = make(map[string]any)
		}
		n, rerr := r.Read(rows)
		for _, m := range rows[:n] {
			rec, err := toRecord(m)
			if err != nil {
				return nil, fmt.Errorf("seed file %s row %d: %w", name, row, err)
			}
			recs = append(recs, rec)
			row++
		}
		if rerr == io.EOF {
			return recs, nil
		}
		if rerr != nil {
			return nil, fmt.Errorf("seed file %s row %d: read parquet: %w", name, row, rerr)
		}
		if n == 0 {
			return nil, fmt.Errorf("seed file %s row %d: read parquet: no progress", name, row)
		}
	}
}

// pairs are the instruction/response field pairs tried after AgoraBench's
// own instruction/response and chat messages, in order.
var pairs = [][2]string{
	{"prompt", "completion"},
	{"question", "answer"},
	{"problem", "solution"},
	{"query", "response"},
	{"input", "output"},
}

// lookedFor names the fields an instruction is taken from, for errors.
const lookedFor = "instruction, messages, conversations, prompt, question, problem, query, input"

// toRecord picks a record's instruction, response and id out of its
// fields.
func toRecord(m map[string]any) (record, error) {
	var rec record
	var err error
	if rec.id, err = idOf(m); err != nil {
		return rec, err
	}

	// AgoraBench's fields; an Alpaca-style input is part of the task.
	if s, ok, err := field(m, "instruction"); err != nil {
		return rec, err
	} else if ok {
		if in, ok, _ := field(m, "input"); ok {
			s += "\n\n" + in
		}
		rec.instruction = s
		rec.response, err = firstField(m, "response", "output")
		return rec, err
	}

	// Chat formats: OpenAI-style messages, ShareGPT conversations.
	for _, key := range []string{"messages", "conversations"} {
		if v, ok := m[key]; ok && v != nil {
			in, out, err := fromChat(key, v)
			if err != nil {
				return rec, err
			}
			if in != "" {
				rec.instruction, rec.response = in, out
				return rec, nil
			}
		}
	}

	for _, p := range pairs {
		if s, ok, err := field(m, p[0]); err != nil {
			return rec, err
		} else if ok {
			rec.instruction = s
			rec.response, err = firstField(m, p[1], "response")
			return rec, err
		}
	}

	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	have := "none"
	if len(keys) > 0 {
		have = strings.Join(keys, ", ")
	}
	return rec, fmt.Errorf("no instruction: looked for a non-empty %s; the record has fields: %s", lookedFor, have)
}

// idOf is the record's idx or id field as text; empty when it has none.
func idOf(m map[string]any) (string, error) {
	for _, key := range []string{"idx", "id"} {
		v, ok := m[key]
		if !ok || v == nil {
			continue
		}
		s, ok := scalarText(v)
		if !ok {
			return "", fmt.Errorf("field %s is %s, not a string or number", key, kindOf(v))
		}
		if s = strings.TrimSpace(s); s != "" {
			return s, nil
		}
	}
	return "", nil
}

// field is m[key] as text. ok is false when the field is absent, null or
// blank; it is an error when the field holds a list or an object.
func field(m map[string]any, key string) (s string, ok bool, err error) {
	v, present := m[key]
	if !present || v == nil {
		return "", false, nil
	}
	s, ok = scalarText(v)
	if !ok {
		return "", false, fmt.Errorf("field %s is %s, not text", key, kindOf(v))
	}
	return s, strings.TrimSpace(s) != "", nil
}

// firstField is the first of keys that holds text; empty when none does.
func firstField(m map[string]any, keys ...string) (string, error) {
	for _, k := range keys {
		s, ok, err := field(m, k)
		if err != nil || ok {
			return s, err
		}
	}
	return "", nil
}

// scalarText renders a string, byte string, number or json.Number as text.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case json.Number:
		return v.String(), true
	case int:
		return strconv.Itoa(v), true
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v), true
	case float32:
		return formatFloat(float64(v), 32), true
	case float64:
		return formatFloat(v, 64), true
	}
	return "", false
}

func formatFloat(f float64, bits int) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("a %T", v)
}

// fromChat takes the first user turn as the instruction and the first
// assistant turn after it as the response. It reads OpenAI-style
// {role, content} turns, ShareGPT {from, value} turns, and plain lists of
// strings that alternate user and assistant (as LIMA's conversations).
func fromChat(key string, v any) (instruction, response string, err error) {
	turns, ok := v.([]any)
	if !ok {
		return "", "", fmt.Errorf("field %s is %s, not a list of turns", key, kindOf(v))
	}
	for i, t := range turns {
		var role, content string
		switch t := t.(type) {
		case nil:
			continue
		case string:
			role, content = "user", t
			if i%2 == 1 {
				role = "assistant"
			}
		case map[string]any:
			role = strings.ToLower(textOr(t["role"], textOr(t["from"], "")))
			c := t["content"]
			if c == nil {
				c = t["value"]
			}
			if content, err = turnText(c); err != nil {
				return "", "", fmt.Errorf("field %s turn %d: %w", key, i, err)
			}
		default:
			return "", "", fmt.Errorf("field %s turn %d is %s, not an object", key, i, kindOf(t))
		}
		switch role {
		case "user", "human":
			if instruction == "" {
				instruction = content
			}
		case "assistant", "gpt", "model", "bot":
			if instruction != "" && response == "" {
				response = content
			}
		}
		if instruction != "" && response != "" {
			break
		}
	}
	if strings.TrimSpace(instruction) == "" {
		instruction = ""
	}
	return instruction, response, nil
}

// turnText is a turn's content: a string, or a list of parts whose text
// parts are joined by newlines.
func turnText(c any) (string, error) {
	switch c := c.(type) {
	case nil:
		return "", nil
	case []any:
		var texts []string
		for _, p := range c {
			switch p := p.(type) {
			case string:
				texts = append(texts, p)
			case map[string]any:
				if s, ok := scalarText(p["text"]); ok {
					texts = append(texts, s)
				}
			}
		}
		return strings.Join(texts, "\n"), nil
	}
	if s, ok := scalarText(c); ok {
		return s, nil
	}
	return "", fmt.Errorf("content is %s, not text", kindOf(c))
}

func textOr(v any, def string) string {
	if s, ok := scalarText(v); ok {
		return s
	}
	return def
}
