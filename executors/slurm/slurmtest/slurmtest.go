// Package slurmtest is for tests that need the real Slurm started by
// scripts/slurm-up.sh: Require skips such a test when there is no usable
// Slurm on this machine, and fails it when CI=true, where the Slurm
// integration tests must run.
package slurmtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// check says why no Slurm can be used, or "".
var check = sync.OnceValue(func() string {
	if _, err := exec.LookPath("sinfo"); err != nil {
		return "sinfo is not in PATH"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sinfo", "--noheader", "--format=%T").CombinedOutput()
	if err != nil {
		return "sinfo failed: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	for _, s := range strings.Fields(string(out)) {
		switch strings.TrimSuffix(s, "*") {
		case "idle", "mixed", "allocated", "completing":
			if !strings.HasSuffix(s, "*") {
				return ""
			}
		}
	}
	return "no usable node (sinfo says " + strings.Join(strings.Fields(string(out)), ", ") + ")"
})

// Require skips t when this machine has no usable Slurm, saying why, or
// fails it when CI=true.
func Require(t testing.TB) {
	t.Helper()
	if why := check(); why != "" {
		msg := "no Slurm to test against: " + why + "; run scripts/slurm-up.sh (as root) first"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the Slurm integration tests must run)")
		}
		t.Skip(msg)
	}
}
