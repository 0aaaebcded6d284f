package cli_test

import (
	"github.com/agorabench/agora/offline/offlinetest"
	"github.com/rogpeppe/go-internal/testscript"
)

// cmdStubHub implements "stubhub [model|dataset ID DIR]...", which starts
// the stand-in Hugging Face Hub (offline/offlinetest) serving each DIR of
// the script's work directory as repository ID, for the rest of the
// script, and points $HF_ENDPOINT at it.
func cmdStubHub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args)%3 != 0 {
		ts.Fatalf("usage: stubhub [model|dataset ID DIR]...")
	}
	hub := offlinetest.NewHub("")
	ts.Defer(hub.Close)
	for i := 0; i < len(args); i += 3 {
		switch args[i] {
		case "model":
			hub.AddModel(args[i+1], ts.MkAbs(args[i+2]))
		case "dataset":
			hub.AddDataset(args[i+1], ts.MkAbs(args[i+2]))
		default:
			ts.Fatalf("stubhub: %q is neither model nor dataset", args[i])
		}
	}
	ts.Setenv("HF_ENDPOINT", hub.URL())
}
