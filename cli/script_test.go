package cli_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/agorabench/agora/cli"
	"github.com/agorabench/agora/executors/api/apitest"
)

// TestMain lets the test binary act as the agora command: testscript
// copies it into a directory on the scripts' PATH under the name "agora",
// and runs cli.Main when it is invoked under that name.
//
// The tests apply specs whose training and evaluation steps they never
// mean to reach: the Python tools check is off (AGORA_SKIP_TOOLS_CHECK),
// except in the tests of that check, which unset it.
func TestMain(m *testing.M) {
	if _, set := os.LookupEnv("AGORA_SKIP_TOOLS_CHECK"); !set {
		os.Setenv("AGORA_SKIP_TOOLS_CHECK", "1")
	}
	testscript.Main(m, map[string]func(){
		"agora": func() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the scripts in testdata/script: each one pins a CLI
// behaviour or an error message, with the expected output in the same
// .txtar file (as cue-lang/cue does).
//
// Set AGORA_UPDATE_SCRIPTS=1 to rewrite the expected files of failing
// "cmp stdout FILE" and "cmp stderr FILE" lines in place with what agora
// printed, then review the diff:
//
//	AGORA_UPDATE_SCRIPTS=1 go test ./cli -run TestScripts
//
// Scripts see $REPO, the repository's root, to copy agora.cue or the
// examples from. Besides testscript's built-in commands they have
//
//	exitcode N PROGRAM [ARGS...]
//
// which runs PROGRAM like exec and fails unless it exits with status N
// (exec only tells zero from non-zero).
func TestScripts(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(removePluginCache)
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		UpdateScripts:       os.Getenv("AGORA_UPDATE_SCRIPTS") != "",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			env.Setenv("AGORA_SKIP_TOOLS_CHECK", "1")
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "pysdk" {
				return condPySDK()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			"stubapi":  cmdStubAPI,
			"stubhub":  cmdStubHub,  // stage_test.go
			"stubvllm": cmdStubVLLM, // vllm_test.go
			// plugins_test.go: real plugin binaries and the Anthropic stand-in.
			"buildplugin":   cmdBuildPlugin,
			"stubanthropic": cmdStubAnthropic,
			"pyplugin":      cmdPyPlugin, // the Python SDK's test plugin
		},
	})
}

// cmdStubAPI implements "stubapi", which starts an OpenAI-compatible
// stand-in server (executors/api/apitest) for the rest of the script and
// sets $API_URL, $API_KEY and $API_MODEL. Its model answers every request
// with a valid math response ("… [RESULT] 7 [/RESULT] [END]"), which suits
// math response-generation settings.
func cmdStubAPI(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 0 {
		ts.Fatalf("usage: stubapi")
	}
	srv := apitest.New(apitest.Options{
		Responder: func(apitest.ChatRequest) string {
			return "Adding the numbers step by step gives 7.\n[RESULT] 7 [/RESULT]\n[END]"
		},
	})
	ts.Defer(srv.Close)
	ts.Setenv("API_URL", srv.URL())
	ts.Setenv("API_KEY", srv.APIKey())
	ts.Setenv("API_MODEL", apitest.DefaultModel)
}

// cmdExitCode implements "exitcode N PROGRAM [ARGS...]".
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (name the status you expect)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}
