package seeddata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadPath(t *testing.T, dir, name string) (*Dataset, error) {
	t.Helper()
	return Load(context.Background(), Source{Path: name}, Options{Dir: dir})
}

func mustLoadPath(t *testing.T, dir, name string) *Dataset {
	t.Helper()
	ds, err := loadPath(t, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestJSONL(t *testing.T) {
	dir := t.TempDir()
	content := "\ufeff" + `{"config":"gsm8k","instruction":"What is 2+2?","response":"4 [RESULT] 4 [/RESULT]","idx":7}` + "\n\n" +
		`  {"instruction":"Name a prime.","response":"2","idx":8}  ` + "\r\n" +
		`{"instruction":"Only an instruction","idx":9}`
	write(t, dir, "seed/math.jsonl", content)
	ds := mustLoadPath(t, dir, "seed/math.jsonl")
	want := []Item{
		{ID: "7", Instruction: "What is 2+2?", Response: "4 [RESULT] 4 [/RESULT]"},
		{ID: "8", Instruction: "Name a prime.", Response: "2"},
		{ID: "9", Instruction: "Only an instruction"},
	}
	if !reflect.DeepEqual(ds.Items, want) {
		t.Errorf("items = %#v\nwant %#v", ds.Items, want)
	}
	if got := ds.Files; len(got) != 1 || got[0] != filepath.Join(dir, "seed/math.jsonl") {
		t.Errorf("files = %v", got)
	}
	if ds.Digest != sha([]byte(content)) {
		t.Errorf("digest = %s, want the file's sha256", ds.Digest)
	}
	if ds.Revision != "" {
		t.Errorf("revision = %q for a local file", ds.Revision)
	}
}

// record loads one JSONL line and returns its item.
func record1(t *testing.T, line string) (Item, error) {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "x.jsonl", line+"\n")
	ds, err := loadPath(t, dir, "x.jsonl")
	if err != nil {
		return Item{}, err
	}
	if len(ds.Items) != 1 {
		t.Fatalf("%d items", len(ds.Items))
	}
	return ds.Items[0], nil
}

func TestFieldVariants(t *testing.T) {
	tests := []struct {
		name, line, in, out string
	}{
		{"agorabench", `{"instruction":"I","response":"R","config":"x"}`, "I", "R"},
		{"agorabench wins over messages", `{"instruction":"I","response":"R","messages":[{"role":"user","content":"M"}]}`, "I", "R"},
		{"blank instruction falls through", `{"instruction":"  ","messages":[{"role":"user","content":"M"},{"role":"assistant","content":"A"}]}`, "M", "A"},
		{"alpaca", `{"instruction":"Translate.","input":"bonjour","output":"hello"}`, "Translate.\n\nbonjour", "hello"},
		{"alpaca empty input", `{"instruction":"Say hi.","input":"","output":"hi"}`, "Say hi.", "hi"},
		{"messages", `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U1"},{"role":"assistant","content":"A1"},{"role":"user","content":"U2"},{"role":"assistant","content":"A2"}]}`, "U1", "A1"},
		{"messages content parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, "a\nb", ""},
		{"sharegpt", `{"conversations":[{"from":"human","value":"H"},{"from":"gpt","value":"G"}]}`, "H", "G"},
		{"lima strings", `{"conversations":["Q","A","Q2"]}`, "Q", "A"},
		{"prompt completion", `{"prompt":"P","completion":"C"}`, "P", "C"},
		{"prompt response", `{"prompt":"P","response":"R"}`, "P", "R"},
		{"question answer number", `{"question":"Q","answer":42}`, "Q", "42"},
		{"problem solution", `{"problem":"P","solution":"S","level":"Level 1"}`, "P", "S"},
		{"query response", `{"query":"Q","response":"R"}`, "Q", "R"},
		{"input output", `{"input":"I","output":"O"}`, "I", "O"},
		{"null response", `{"instruction":"I","response":null}`, "I", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := record1(t, tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if it.Instruction != tt.in || it.Response != tt.out {
				t.Errorf("got (%q, %q), want (%q, %q)", it.Instruction, it.Response, tt.in, tt.out)
			}
		})
	}
}

func TestRecordErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"bad json", "{\"instruction\":\"a\"}\n\n{\"instruction\": oops}\n", "x.jsonl line 3: invalid JSON"},
		{"not an object", "{\"instruction\":\"a\"}\n[1,2]\n", "x.jsonl line 2: not a JSON object"},
		{"two values", "{\"instruction\":\"a\"} {\"instruction\":\"b\"}\n", "line 1: more than one JSON value"},
		{"no instruction", "{\"instruction\":\"a\"}\n{\"text\":\"t\",\"label\":1}\n", "x.jsonl line 2: no instruction: looked for a non-empty instruction, messages"},
		{"fields listed", "{\"text\":\"t\",\"label\":1}\n", "the record has fields: label, text"},
		{"empty record", "{}\n", "the record has fields: none"},
		{"list instruction", "{\"instruction\":[\"a\"]}\n", "line 1: field instruction is a list, not text"},
		{"bad messages", "{\"messages\":\"hi\"}\n", "field messages is a string"},
		{"object id", "{\"id\":{\"a\":1},\"instruction\":\"a\"}\n", "field id is an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "x.jsonl", tt.content)
			_, err := loadPath(t, dir, "x.jsonl")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"idx", `{"idx":3,"instruction":"a"}` + "\n" + `{"idx":1,"instruction":"b"}`, []string{"3", "1"}},
		{"string id", `{"id":"q-1","instruction":"a"}` + "\n" + `{"id":"q-2","instruction":"b"}`, []string{"q-1", "q-2"}},
		{"idx before id", `{"idx":5,"id":"x","instruction":"a"}`, []string{"5"}},
		{"position", `{"instruction":"a"}` + "\n\n" + `{"instruction":"b"}`, []string{"0", "1"}},
		{"duplicates fall back to positions", `{"idx":0,"instruction":"a"}` + "\n" + `{"idx":0,"instruction":"b"}`, []string{"0", "1"}},
		{"partial ids fall back to positions", `{"idx":1,"instruction":"a"}` + "\n" + `{"instruction":"b"}`, []string{"0", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "x.jsonl", tt.content)
			ds := mustLoadPath(t, dir, "x.jsonl")
			var got []string
			for _, it := range ds.Items {
				got = append(got, it.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.json", `[
  {"instruction": "one", "response": "1"},
  {"question": "two", "answer": "2", "id": "b"}
]`)
	ds := mustLoadPath(t, dir, "a.json")
	want := []Item{{ID: "0", Instruction: "one", Response: "1"}, {ID: "1", Instruction: "two", Response: "2"}}
	if !reflect.DeepEqual(ds.Items, want) {
		t.Errorf("items = %#v", ds.Items)
	}

	write(t, dir, "empty.json", " [ ] ")
	if ds := mustLoadPath(t, dir, "empty.json"); len(ds.Items) != 0 {
		t.Errorf("empty array: %d items", len(ds.Items))
	}

	// JSON Lines in a .json file, as many Hub datasets have.
	write(t, dir, "lines.json", `{"instruction":"a"}`+"\n"+`{"instruction":"b"}`+"\n")
	if ds := mustLoadPath(t, dir, "lines.json"); len(ds.Items) != 2 {
		t.Errorf("lines.json: %d items", len(ds.Items))
	}

	write(t, dir, "bad.json", "[\n  {\"instruction\": \"a\"},\n\n  {\"response\": \"b\"}\n]")
	if _, err := loadPath(t, dir, "bad.json"); err == nil || !strings.Contains(err.Error(), "bad.json line 4 (item 1): no instruction") {
		t.Errorf("err = %v", err)
	}
	write(t, dir, "num.json", "[{\"instruction\": \"a\"}, 3]")
	if _, err := loadPath(t, dir, "num.json"); err == nil || !strings.Contains(err.Error(), "line 1 (item 1): not a JSON object") {
		t.Errorf("err = %v", err)
	}
	write(t, dir, "trunc.json", "[{\"instruction\": \"a\"},\n{\"instruction\": ")
	if _, err := loadPath(t, dir, "trunc.json"); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("err = %v", err)
	}
	write(t, dir, "str.json", `"hello"`)
	if _, err := loadPath(t, dir, "str.json"); err == nil || !strings.Contains(err.Error(), "want a JSON array of objects") {
		t.Errorf("err = %v", err)
	}
}

// Rows as AgoraBench's released parquet files have them.
type agoraRow struct {
	Config      string `parquet:"config"`
	Instruction string `parquet:"instruction"`
	Response    string `parquet:"response"`
	Idx         int64  `parquet:"idx"`
}

// A file with only some of the known columns, optional values, and a chat
// column.
type message struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type chatRow struct {
	Source   *string   `parquet:"source,optional"`
	Question *string   `parquet:"question,optional"`
	Answer   *string   `parquet:"answer,optional"`
	Messages []message `parquet:"messages,list"`
}

func parquetBytes[T any](t *testing.T, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ptr(s string) *string { return &s }

func TestParquet(t *testing.T) {
	dir := t.TempDir()
	data := parquetBytes(t, []agoraRow{
		{Config: "gsm8k", Instruction: "q0", Response: "r0", Idx: 10},
		{Config: "math", Instruction: "q1", Response: "r1", Idx: 11},
	})
	write(t, dir, "a.parquet", string(data))
	ds := mustLoadPath(t, dir, "a.parquet")
	want := []Item{{ID: "10", Instruction: "q0", Response: "r0"}, {ID: "11", Instruction: "q1", Response: "r1"}}
	if !reflect.DeepEqual(ds.Items, want) {
		t.Errorf("items = %#v", ds.Items)
	}
	if ds.Digest != sha(data) {
		t.Errorf("digest = %s", ds.Digest)
	}

	data = parquetBytes(t, []chatRow{
		{Source: ptr("s"), Question: ptr("Q?"), Answer: ptr("A.")},
		{Messages: []message{{"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}}},
		{Question: ptr("only a question")},
	})
	write(t, dir, "b.parquet", string(data))
	ds = mustLoadPath(t, dir, "b.parquet")
	want = []Item{
		{ID: "0", Instruction: "Q?", Response: "A."},
		{ID: "1", Instruction: "hi", Response: "hello"},
		{ID: "2", Instruction: "only a question"},
	}
	if !reflect.DeepEqual(ds.Items, want) {
		t.Errorf("items = %#v", ds.Items)
	}

	data = parquetBytes(t, []chatRow{{Question: ptr("ok")}, {Question: ptr("ok")}, {Source: ptr("no instruction")}})
	write(t, dir, "c.parquet", string(data))
	if _, err := loadPath(t, dir, "c.parquet"); err == nil || !strings.Contains(err.Error(), "c.parquet row 3: no instruction") {
		t.Errorf("err = %v", err)
	}

	write(t, dir, "junk.parquet", "not parquet at all")
	if _, err := loadPath(t, dir, "junk.parquet"); err == nil || !strings.Contains(err.Error(), "junk.parquet: read parquet") {
		t.Errorf("err = %v", err)
	}
}

func TestParquetManyRows(t *testing.T) {
	rows := make([]agoraRow, 1000)
	for i := range rows {
		rows[i] = agoraRow{Instruction: "q", Response: "r", Idx: int64(i)}
	}
	dir := t.TempDir()
	write(t, dir, "big.parquet", string(parquetBytes(t, rows)))
	ds := mustLoadPath(t, dir, "big.parquet")
	if len(ds.Items) != 1000 || ds.Items[999].ID != "999" {
		t.Fatalf("%d items, last %+v", len(ds.Items), ds.Items[len(ds.Items)-1])
	}
}

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.jsonl", `{"instruction":"a"}`+"\n")
	d1 := mustLoadPath(t, dir, "a.jsonl").Digest
	d2 := mustLoadPath(t, dir, filepath.Join(dir, "a.jsonl")).Digest
	if d1 != d2 || !strings.HasPrefix(d1, "sha256:") || len(d1) != len("sha256:")+64 {
		t.Fatalf("digests %s, %s", d1, d2)
	}
	write(t, dir, "a.jsonl", `{"instruction":"b"}`+"\n")
	if d3 := mustLoadPath(t, dir, "a.jsonl").Digest; d3 == d1 {
		t.Errorf("digest did not change with the content")
	}
}

func TestSourceErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Load(ctx, Source{}, Options{}); err == nil || !strings.Contains(err.Error(), "neither hf nor path") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(ctx, Source{HF: "a/b", Path: "x.jsonl"}, Options{}); err == nil || !strings.Contains(err.Error(), "both hf and path") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(ctx, Source{Path: "x.csv"}, Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "unsupported format") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(ctx, Source{Path: "missing.jsonl"}, Options{Dir: dir}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Load(cctx, Source{Path: "missing.jsonl"}, Options{Dir: dir}); err != context.Canceled {
		t.Errorf("err = %v", err)
	}
}
