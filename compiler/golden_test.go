package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agorabench/agora/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden compares the plan of the repository's agora.cue, as
// `agora plan -json` writes it, with testdata/agora.plan.json byte for
// byte. After an intended change to the spec, the cost model or the plan
// format, regenerate it and review the diff:
//
//	go test ./compiler -run TestGolden -update
func TestGolden(t *testing.T) {
	p := compile(t, loadAgora(t), Options{})
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "agora.plan.json")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./compiler -run TestGolden -update)", err)
	}
	if bytes.Equal(buf.Bytes(), want) {
		return
	}
	got := strings.Split(buf.String(), "\n")
	exp := strings.Split(string(want), "\n")
	for i := 0; i < len(got) || i < len(exp); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(exp) {
			w = exp[i]
		}
		if g != w {
			t.Fatalf("plan of ../agora.cue differs from %s at line %d:\n got: %s\nwant: %s\n(if the change is intended: go test ./compiler -run TestGolden -update)", golden, i+1, g, w)
		}
	}
	t.Fatalf("plan of ../agora.cue differs from %s", golden)
}

// TestSavedPlanIDs: a plan written to disk and read back still carries its
// content addresses: every step's ID is the hash of its inputs.
func TestSavedPlanIDs(t *testing.T) {
	p := compile(t, loadAgora(t), Options{})
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := plan.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("plan read back differs from the plan saved")
	}
	for _, s := range back.Steps {
		sum := sha256.Sum256(s.Inputs)
		if id := hex.EncodeToString(sum[:16]); id != s.ID {
			t.Errorf("%s: id %s, but its inputs hash to %s", s.Address, s.ID, id)
		}
	}
}
