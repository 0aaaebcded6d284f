package offline_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agorabench/agora/offline"
	"github.com/agorabench/agora/offline/offlinetest"
	"github.com/agorabench/agora/toolchain/toolchaintest"
)

// loadOffline loads a model by hub id with transformers, in an
// environment whose only Hugging Face variables are offline.Env(dir).
const loadOffline = `
import sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
print("labels", model.config.num_labels, "template", bool(tok.chat_template))
`

// TestStagedModelLoadsOffline: a tiny reward model staged from the
// stand-in hub is loaded by its hub id by the real transformers with the
// hub's offline switches set and HF_HOME in the cache; a model that was
// not staged fails to load the same way, so nothing came from elsewhere.
func TestStagedModelLoadsOffline(t *testing.T) {
	py := toolchaintest.Python(t)
	hub := offlinetest.NewHub("")
	t.Cleanup(hub.Close)
	hub.AddModel("agora-test/tiny-rm", toolchaintest.TinyModel(t, toolchaintest.Reward))
	dir := t.TempDir()
	rm := offline.Artefact{Kind: offline.Model, ID: "agora-test/tiny-rm"}
	if err := offline.Stage(context.Background(), dir, "", []offline.Artefact{rm}, offline.Options{Endpoint: hub.URL()}); err != nil {
		t.Fatal(err)
	}
	run := func(id string) (string, error) {
		cmd := exec.Command(py, "-c", loadOffline, id)
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "HF_") && k != "TRANSFORMERS_OFFLINE" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for k, v := range offline.Env(dir) {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "HF_ENDPOINT="+hub.URL()) // were it online, it would ask the stand-in
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	n := len(hub.Requests())
	out, err := run("agora-test/tiny-rm")
	if err != nil || !strings.Contains(out, "labels 1 template True") {
		t.Fatalf("load the staged model offline: %v\n%s", err, out)
	}
	if len(hub.Requests()) != n {
		t.Errorf("transformers asked the hub: %v", hub.Requests()[n:])
	}
	hub.AddModel("agora-test/not-staged", toolchaintest.TinyModel(t, toolchaintest.Reward))
	if out, err := run("agora-test/not-staged"); err == nil || len(hub.Requests()) != n {
		t.Errorf("a model that was not staged loaded (%d requests):\n%s", len(hub.Requests())-n, out)
	}
}
