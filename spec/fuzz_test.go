package spec

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to LoadBytes: it must never panic, and
// every problem must come back as a Diagnostic with a message, positioned
// in the file when the file has content.
//
//	go test ./spec -run '^$' -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	for _, path := range []string{"../agora.cue", "../examples/quickstart/agora.cue"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, src := range []string{
		minimal,
		"",
		"// only a comment\n",
		"[1, 2]",
		"42",
		"generators: {\n",
		"genrators: {}\nsettings: \"math-ig\": {}\n",
		"generators: g: {provider: openai: {}, model: 3}\nsettings: \"math-ig\": {}\n",
		"generators: g: {provider: {openai: {}, vllm: {}}, model: \"m\"}\nsettings: x: {}\n",
		"generators: \"bad name\": {provider: plugin: \"p\", model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {}\n",
		minimal + "settings: \"math-ig\": {seed_data: path: \"seed.jsonl\", prompt: file: \"p.tmpl\"}\n",
		minimal + "grid: {exclude: [{generator: \"h\"}], include: [{setting: \"math-ig\"}], instances: [5, 5]}\n",
		minimal + "budgets: {usd: 10, per_generator: h: usd: 1, check: \"worst\"}\n",
		minimal + "student: {trainer: \"command\", hardware: {gpu: \"X1\", time_limit: \"1h\"}}\n",
		minimal + "evaluation: benchmarks: {foo: {}, alpacaeval2: judge: {model: \"j\", api_key_env: \"sk-123\"}}\n",
		minimal + "x: y: z\n",
		minimal + "generators: g: sampling: extra: {a: [1, {b: null}]}\n",
		"a: b\nb: a\n",
		"generators: [string]: _|_\n",
	} {
		f.Add([]byte(src))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		exp, err := LoadBytes("agora.cue", src, dir)
		if err == nil {
			if exp == nil {
				t.Fatal("LoadBytes returned neither an experiment nor an error")
			}
			return
		}
		var ds Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("error %T is not Diagnostics: %v", err, err)
		}
		if len(ds) == 0 {
			t.Fatal("empty Diagnostics")
		}
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, d := range ds {
			if d.Msg == "" {
				t.Errorf("diagnostic without a message: %#v", d)
			}
			if d.File != "agora.cue" {
				t.Errorf("diagnostic in file %q, want agora.cue: %#v", d.File, d)
			}
			if d.Line < 0 || d.Line > lines || d.Col < 0 || (d.Line > 0) != (d.Col > 0) {
				t.Errorf("position %d:%d outside the file (%d lines): %#v", d.Line, d.Col, lines, d)
			}
			if d.Line == 0 && hasContent(src) {
				t.Errorf("diagnostic without a position in a non-empty file: %#v", d)
			}
		}
	})
}

// hasContent reports whether src has anything besides white space and
// comments, so that a diagnostic can point somewhere.
func hasContent(src []byte) bool {
	for _, line := range bytes.Split(src, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && !bytes.HasPrefix(line, []byte("//")) {
			return true
		}
	}
	return false
}
