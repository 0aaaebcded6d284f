// Package plugintest builds plugin binaries for tests, and holds the test
// plugins themselves: fake (an echo provider that panics, hangs or rate
// limits on request), future (a provider speaking protocol version 3), old
// (one speaking only version 1, from before the batch calls) and,
// in python/, pyfake (the same as fake, written with the Python SDK, which
// python.go builds and installs for the tests).
package plugintest

import (
	"errors"
	"fmt"
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
	"old":       "github.com/agorabench/agora/plugins/plugintest/old",
}

// Build builds the named plugins as dir/agora-provider-NAME and returns
// dir. It skips the test when no go command is at hand.
func Build(tb testing.TB, dir string, names ...string) string {
	tb.Helper()
	if _, err := goCommand(); err != nil {
		tb.Skip(err)
	}
	if err := BuildTo(dir, names...); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func goCommand() (string, error) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err == nil {
		return gobin, nil
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	return "", errors.New("no go command to build plugins with")
}

// BuildTo builds the named plugins as dir/agora-provider-NAME.
func BuildTo(dir string, names ...string) error {
	gobin, err := goCommand()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, n := range names {
		pkg, ok := Packages[n]
		if !ok {
			return fmt.Errorf("no test plugin %s", n)
		}
		args = append(args, pkg)
	}
	cmd := exec.Command(gobin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// go build names a binary after its package directory: rename the
	// test plugins to agora-provider-NAME.
	for _, n := range names {
		base := filepath.Base(Packages[n])
		if want := "agora-provider-" + n; base != want {
			if err := os.Rename(filepath.Join(dir, base), filepath.Join(dir, want)); err != nil {
				return err
			}
		}
	}
	return nil
}
