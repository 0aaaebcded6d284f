package providers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agorabench/agora/spec"
)

// A setting's system message and stop sequences go through a plugin: the
// real Anthropic plugin sends them as the Messages API's system and
// stop_sequences.
func TestPluginSystemMessageAndStop(t *testing.T) {
	r := newPluginRun(t, 6)
	path := filepath.Join(r.dir, "agora.cue")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, []byte("settings: s: prompt: {system: \"You are a data generator.\", stop: [\"[END]\"]}\n")...)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if r.exp, err = spec.Load(path); err != nil {
		t.Fatal(err)
	}
	res, _ := r.apply(nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	last, ok := r.srv.Last()
	if !ok {
		t.Fatal("no request reached the stand-in")
	}
	var system string
	var stop []string
	if err := json.Unmarshal(last.Body["system"], &system); err != nil || system != "You are a data generator." {
		t.Errorf("system %s (%v), want the setting's", last.Body["system"], err)
	}
	if err := json.Unmarshal(last.Body["stop_sequences"], &stop); err != nil || !slices.Equal(stop, []string{"[END]"}) {
		t.Errorf("stop_sequences %s (%v), want [\"[END]\"]", last.Body["stop_sequences"], err)
	}
}
