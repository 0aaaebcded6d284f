package cli_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/agorabench/agora/plugins/anthropic/anthropictest"
	"github.com/agorabench/agora/plugins/plugintest"
)

// Plugin binaries are built once per test binary into pluginCache and
// copied into the scripts' directories.
var (
	pluginMu    sync.Mutex
	pluginCache string
	pluginBuilt = map[string]bool{}
)

func removePluginCache() {
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if pluginCache != "" {
		os.RemoveAll(pluginCache)
		pluginCache, pluginBuilt = "", map[string]bool{}
	}
	pySDK.Remove()
}

// cmdBuildPlugin implements "buildplugin DIR NAME...", which puts the
// real binaries of the named plugins (plugins/plugintest.Packages) in DIR
// as agora-provider-NAME.
func cmdBuildPlugin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: buildplugin DIR NAME...")
	}
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if pluginCache == "" {
		d, err := os.MkdirTemp("", "agora-script-plugins-")
		ts.Check(err)
		pluginCache = d
	}
	var missing []string
	for _, n := range args[1:] {
		if !pluginBuilt[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		if err := plugintest.BuildTo(pluginCache, missing...); err != nil {
			ts.Fatalf("buildplugin: %v", err)
		}
		for _, n := range missing {
			pluginBuilt[n] = true
		}
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	for _, n := range args[1:] {
		b, err := os.ReadFile(filepath.Join(pluginCache, "agora-provider-"+n))
		ts.Check(err)
		ts.Check(os.WriteFile(filepath.Join(dir, "agora-provider-"+n), b, 0o755))
	}
}

// The Python SDK, built and installed once per test binary for "pyplugin".
var (
	pySDK    plugintest.PythonSDK
	pySDKErr error
	pySDKSet bool
)

// cmdPyPlugin implements "pyplugin DIR", which puts the Python SDK's test
// plugin (plugins/plugintest/python/agora-provider-pyfake) in DIR, run by
// the pinned tools environment ($AGORA_TOOLS_VENV) with the SDK's wheel
// installed beside it. Scripts using it begin with "[!pysdk] skip": the
// condition pysdk holds when $AGORA_TOOLS_VENV is set, and is an error
// under CI=true when it is not.
func cmdPyPlugin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pyplugin DIR")
	}
	venv := os.Getenv("AGORA_TOOLS_VENV")
	if venv == "" {
		ts.Fatalf("pyplugin: AGORA_TOOLS_VENV is not set (guard the script with [!pysdk] skip)")
	}
	pluginMu.Lock()
	if !pySDKSet {
		pySDK, pySDKErr = plugintest.InstallPythonSDK(venv)
		pySDKSet = true
	}
	pluginMu.Unlock()
	if pySDKErr != nil {
		ts.Fatalf("pyplugin: %v", pySDKErr)
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	ts.Check(pySDK.Install(filepath.Join("..", "plugins", "plugintest", "python", "agora-provider-pyfake"), dir))
}

// condPySDK is the script condition pysdk.
func condPySDK() (bool, error) {
	if os.Getenv("AGORA_TOOLS_VENV") != "" {
		return true, nil
	}
	if os.Getenv("CI") == "true" {
		return false, errors.New("CI=true and AGORA_TOOLS_VENV is not set (scripts/test.sh builds it with scripts/python-tools.sh)")
	}
	return false, nil
}

// cmdStubAnthropic implements "stubanthropic", which starts the Anthropic
// Messages API stand-in for the rest of the script and sets
// $ANTHROPIC_BASE_URL and $ANTHROPIC_API_KEY for the plugin. Its model
// answers every request with a valid math response.
func cmdStubAnthropic(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 0 {
		ts.Fatalf("usage: stubanthropic")
	}
	srv := anthropictest.New(anthropictest.Options{
		Models: []string{anthropictest.DefaultModel, "claude-haiku-4-5"},
		Responder: func(system string, texts []string) string {
			if strings.TrimSpace(system+strings.Join(texts, "")) == "" {
				return ""
			}
			return "Adding the numbers step by step gives 7.\n[RESULT] 7 [/RESULT]\n[END]"
		},
	})
	ts.Defer(srv.Close)
	ts.Setenv("ANTHROPIC_BASE_URL", srv.URL())
	ts.Setenv("ANTHROPIC_API_KEY", srv.APIKey())
}
