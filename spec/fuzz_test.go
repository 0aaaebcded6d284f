package spec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzFiles are the local files the fuzz specs may name, good and bad.
var fuzzFiles = map[string]string{
	"seed.jsonl":   "{\"instruction\": \"a\"}\n{\"instruction\": \"b\"}\n",
	"empty.jsonl":  "",
	"bad.jsonl":    "[1]\n",
	"seed.json":    `[{"a": 1}, {"a": 2}]`,
	"bad.json":     `{"a": 1}`,
	"seed.parquet": "PAR1",
	"p.tmpl":       "Answer.\n{{.Instruction}}\n",
	"unknown.tmpl": "{{.Nope}}",
	"broken.tmpl":  "{{",
	"empty.tmpl":   "",
}

// fuzzSeeds are specs that reach the loader's checks past CUE's own: each
// is appended to minimal.
var fuzzSeeds = []string{
	`grid: include: [{generator: "g"}]`,
	`grid: include: [{generator: "g", setting: "math-ig", instances: 3, variant: "json", seed: 1}]`,
	`grid: exclude: [{}]`,
	`grid: exclude: [{generator: "zz", setting: "yy"}]`,
	`grid: {generators: ["g", "g"], settings: ["math-ig", "nope"], instances: [1, 1], seeds: [1, 1], variants: ["json", "json"]}`,
	`evaluation: benchmarks: x: {}`,
	`evaluation: benchmarks: x: {harness: "command"}`,
	`evaluation: benchmarks: x: {harness: "alpaca_eval", items: 3}`,
	`evaluation: benchmarks: gsm8k: {harness: "command"}`,
	`evaluation: benchmarks: "bad name": {}`,
	`evaluation: benchmarks: alpacaeval2: judge: {model: "j", api_key_env: "sk-123", price: {input: 1, output: 1}}`,
	`budgets: {usd: 10, per_generator: h: usd: 1, check: "worst"}`,
	`budgets: per_generator: g: {}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "seed.jsonl", prompt: file: "p.tmpl"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "empty.jsonl"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "bad.jsonl"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "seed.json"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "bad.json"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "seed.parquet"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: {path: "seed.parquet", size: 3}}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "missing.txt"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "missing.jsonl"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: path: "dir.jsonl"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: {path: "seed.json", hf: "a/b"}}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: {path: "seed.json", revision: "x"}}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: hf: "a/b"}`,
	`settings: x: {domain: "math", method: "response_generation", seed_data: {hf: "a/b", size: 2}, benchmarks: []}`,
	`settings: x: {}`,
	`settings: "math-rg": {prompt: file: "unknown.tmpl"}`,
	`settings: "math-rg": {prompt: file: "broken.tmpl"}`,
	`settings: "math-rg": {prompt: file: "empty.tmpl"}`,
	`settings: "math-rg": {prompt: {file: "p.tmpl", variant: "json"}}`,
	`settings: "math-rg": {prompt: builtin: "nope.nope"}`,
	`settings: "math-rg": {prompt: builtin: "code.response_generation"}`,
	`settings: "math-rg": {seed_data: {revision: "v2", size: 5}}`,
	`settings: "math-rg": {seed_data: size: 0}`,
	`student: {trainer: "command", hardware: {gpu: "X1", time_limit: "1h"}}`,
	`student: command: "x"`,
	`student: hardware: {gpu: "nope", peak_tflops: 10}`,
	`student: hyperparameters: extra: {a: [1, 2]}`,
	`generators: g: provider: vllm: {tensor_parallel: 4, gpus: 2}`,
	`generators: g: provider: plugin: "x"`,
	`generators: g: provider: sha256: "` + strings.Repeat("a", 64) + `"`,
	`generators: g: provider: openai: base_url: "https://u:p@x.example/v1"`,
	`generators: h: {provider: {}, model: "m"}`,
	`generators: "-bad": {}`,
	`generators: g: sampling: extra: {a: [1, {b: null}]}`,
	`generators: g: sampling: stop: ["a", 1]`,
	`generators: g: model: "m" | "n"`,
	`name: "-x"`,
	`x: y: z`,
	`#X: 1`,
	`settings: "math-rg": instances: 92233720368547758070`,
	`generators: g: price: {input: 1e400, output: 1}`,
}

// FuzzLoad feeds arbitrary bytes to LoadBytes: it must never panic, and
// every problem must come back as a Diagnostic with a message, positioned
// in the file when the file has content.
//
//	go test ./spec -run '^$' -fuzz FuzzLoad -fuzztime 60s -fuzzminimizetime 5s
//
// (CUE is a large library, so new coverage comes often; minimizing each
// new input for the default 60 s leaves little time for fuzzing.)
//
// The seeds run as a plain test with `go test ./spec`: the repository's
// specs, each with one line removed, and specs that reach every check of
// the loader.
func FuzzLoad(f *testing.F) {
	for _, path := range []string{"../agora.cue", "../examples/quickstart/agora.cue"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		lines := strings.Split(string(b), "\n")
		for i := range lines {
			if strings.TrimSpace(lines[i]) == "" || strings.HasPrefix(strings.TrimSpace(lines[i]), "//") {
				continue
			}
			cut := append(append([]string{}, lines[:i]...), lines[i+1:]...)
			f.Add([]byte(strings.Join(cut, "\n")))
		}
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
		"a: b\nb: a\n",
		"generators: [string]: _|_\n",
		"package foo\n" + minimal,
		"import \"strings\"\n" + minimal + "name: strings.ToLower(\"X\")\n",
	} {
		f.Add([]byte(src))
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(minimal + s + "\n"))
	}
	dir := f.TempDir()
	for name, content := range fuzzFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.jsonl"), 0o755); err != nil {
		f.Fatal(err)
	}
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
