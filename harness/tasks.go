package harness

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// lmevalTasks are agora's own lm-evaluation-harness tasks: the group
// agora_math (MATH scored by math-verify on any answer form; see the
// package documentation) and its seven subjects.
//
//go:embed all:lmeval_tasks
var lmevalTasks embed.FS

// LMEvalTaskDir is the directory, inside an evaluation's or solve step's
// run directory, that agora writes its lm-eval tasks into (WriteLMEvalTasks)
// and names with --include_path.
const LMEvalTaskDir = "lm_eval_tasks"

// agoraTask reports whether an lm-eval task is one of agora's own, which
// lm-eval finds only through --include_path.
func agoraTask(task string) bool { return strings.HasPrefix(task, "agora_") }

// WriteLMEvalTasks writes agora's lm-eval task files into dir (created if
// needed), replacing older copies, for lm_eval --include_path dir.
func WriteLMEvalTasks(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lm-eval tasks: %w", err)
	}
	return fs.WalkDir(lmevalTasks, "lmeval_tasks", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := lmevalTasks.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, d.Name()), data, 0o644); err != nil {
			return fmt.Errorf("lm-eval tasks: %w", err)
		}
		return nil
	})
}
