// Package plugintest builds plugin binaries for tests, and holds the test
// plugins themselves: fake (an echo provider that panics, hangs or rate
// limits on request) and future (a provider speaking protocol version 2).
package plugintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Packages of the plugins, by name.
var Packages = map[string]string{
	"anthropic": "github.com/agorabench/agora/plugins/anthropic/cmd/agora-provider-anthropic",
	"fake":      "github.com/agorabench/agora/plugins/plugintest/fake",
	"future":    "github.com/agorabench/agora/plugins/plugintest/future",
}

// Build builds the named plugins as dir/agora-provider-NAME and returns
// dir. It skips the test when no go command is at hand.
func Build(tb testing.TB, dir string, names ...string) string {
	tb.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			tb.Skip("no go command to build plugins with")
		}
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, n := range names {
		pkg, ok := Packages[n]
		if !ok {
			tb.Fatalf("no test plugin %s", n)
		}
		args = append(args, pkg)
	}
	cmd := exec.Command(gobin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// go build names a binary after its package directory: rename the
	// test plugins to agora-provider-NAME.
	for _, n := range names {
		base := filepath.Base(Packages[n])
		if want := "agora-provider-" + n; base != want {
			if err := os.Rename(filepath.Join(dir, base), filepath.Join(dir, want)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return dir
}
