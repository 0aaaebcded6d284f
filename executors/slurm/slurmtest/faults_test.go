package slurmtest_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agorabench/agora/executors/slurm/slurmtest"
)

// nodeFault matches a test changing a node's state by itself, rather than
// through slurmtest.Faults: `scontrol update` in Go (exec.Command's
// arguments) or in a script, or a state=down/drain/fail argument.
var nodeFault = regexp.MustCompile(`(?i)"scontrol",\s*"update"|scontrol\s+update|(^|[^a-z])state=(down|drain|fail)`)

// TestNodeFaultsOnlyThroughFaults holds the rule of the package doc: no
// test in the module sets a node's state except through Faults, which
// confines the fault to the node where only that test's jobs run.
func TestNodeFaultsOnlyThroughFaults(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	here, _ := filepath.Abs(".")
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == here || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if !strings.HasSuffix(path, "_test.go") && !strings.Contains(filepath.ToSlash(rel), "/testdata/") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if nodeFault.MatchString(line) {
				t.Errorf("%s:%d sets a node's state itself; use slurmtest.Faults (see docs/slurm.md, Testing):\n\t%s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked %d test files under %s: the walk missed them", checked, root)
	}
}

// TestFaults takes the fault node, drains it and checks that the default
// partition's node is untouched; the cleanup resumes it.
func TestFaults(t *testing.T) {
	fault := slurmtest.Faults(t)
	if fault.Partition != slurmtest.FaultPartition || fault.Name == "" {
		t.Fatalf("fault node %+v", fault)
	}
	if err := fault.Drain("agora-slurmtest"); err != nil {
		t.Fatal(err)
	}
	if st := fault.State(); !strings.HasPrefix(st, "drain") {
		t.Errorf("after Drain the fault node is %q, want drained", st)
	}
	if err := fault.Resume(); err != nil {
		t.Fatal(err)
	}
	if st := fault.State(); strings.HasPrefix(st, "drain") {
		t.Errorf("after Resume the fault node is %q", st)
	}
	if err := fault.Resume(); err != nil {
		t.Errorf("resuming a node in service: %v", err)
	}
}
