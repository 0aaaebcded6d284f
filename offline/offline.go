// Package offline runs a plan's jobs on compute nodes without internet
// (docs/offline.md): it lists the hub artefacts the steps to run will read
// (the base, reference and reward models, the models vLLM serves, the
// benchmarks' data), checks that a cache directory on shared storage holds
// each of them in the layout the tools read offline, stages what is
// missing from the hub (Stage, for `agora stage`), and gives the
// environment that points the jobs' tools at the cache with the hubs'
// offline switches set (Env).
//
// The cache is an HF_HOME: models and hub repositories in the hub's cache
// layout under hub/ (what transformers, vLLM and huggingface_hub read
// with HF_HUB_OFFLINE=1), data sets as the datasets library prepared them
// under datasets/ (what load_dataset reads with HF_DATASETS_OFFLINE=1: it
// cannot read raw hub files offline), and single files under files/
// (evalplus' problem sets, named to evalplus by HUMANEVAL_OVERRIDE_PATH
// and MBPP_OVERRIDE_PATH).
package offline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// Kinds of artefact.
const (
	// Model is a model repository on the hub (or a directory).
	Model = "model"
	// Repo is a data set repository on the hub whose files a tool reads
	// with hf_hub_download (alpaca_eval's length-controlled win rate).
	Repo = "dataset repository"
	// Dataset is a hub data set a tool reads with datasets.load_dataset
	// (lm-eval's tasks), one configuration of it.
	Dataset = "dataset"
	// File is a single file from a URL (evalplus' problem sets).
	File = "file"
)

// Artefact is one thing a job reads from the cache.
type Artefact struct {
	Kind string
	// ID is the hub id (OWNER/NAME) of a Model, Repo or Dataset, or the
	// file name of a File. A Model whose ID is a directory path is not
	// staged, only checked.
	ID string
	// Config is a Dataset's configuration ("" for the default one).
	Config string
	// Files, for a Repo, are the files the tool reads (the whole
	// repository when empty).
	Files []string
	// URL is where a File comes from; Env names the variable that gives
	// its path to the tool.
	URL, Env string
	// For says what needs it: "student.base", "benchmark gsm8k", ….
	For []string
}

// String is the artefact as messages show it.
func (a Artefact) String() string {
	s := a.Kind + " " + a.ID
	if a.Config != "" {
		s += " (" + a.Config + ")"
	}
	if len(a.Files) > 0 {
		s += " (" + strings.Join(a.Files, ", ") + ")"
	}
	return s
}

// Local reports whether a Model is a directory rather than a hub id.
func (a Artefact) Local() bool {
	return a.Kind == Model && isPath(a.ID)
}

// isPath: an absolute or explicitly relative path, or anything that is
// not OWNER/NAME.
func isPath(id string) bool {
	return filepath.IsAbs(id) || strings.HasPrefix(id, "./") || strings.HasPrefix(id, "../") || !hubID.MatchString(id)
}

var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// The benchmarks' data, as the pinned harnesses read it (toolchain/): the
// lm-eval tasks' dataset_path and dataset_name, alpaca_eval's hub
// repository, evalplus' release files. arena-hard-auto reads its own
// checkout ($ARENA_HARD_DIR), which is on shared storage already.
const (
	evalplusHumanEval = "HumanEvalPlus-v0.1.10.jsonl"
	evalplusMBPP      = "MbppPlus-v0.2.0.jsonl"
)

// minervaSubjects are the configurations of EleutherAI/hendrycks_math
// that lm-eval's minerva_math group reads.
var minervaSubjects = []string{"algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory", "prealgebra", "precalculus"}

// benchmarkData is what benchmark name's harness reads, when the
// benchmark runs on the harness agora builds in for it (a command of your
// own reads data agora does not know).
func benchmarkData(exp *spec.Experiment, name string) []Artefact {
	want := map[string]string{"gsm8k": spec.HarnessLMEval, "math": spec.HarnessLMEval, "humaneval": spec.HarnessEvalPlus,
		"mbpp": spec.HarnessEvalPlus, "alpacaeval2": spec.HarnessAlpacaEval}[name]
	if b := exp.Evaluation.Benchmarks[name]; b == nil || b.Harness != want {
		return nil
	}
	switch name {
	case "gsm8k":
		return []Artefact{{Kind: Dataset, ID: "openai/gsm8k", Config: "main"}}
	case "math":
		var out []Artefact
		for _, s := range minervaSubjects {
			out = append(out, Artefact{Kind: Dataset, ID: "EleutherAI/hendrycks_math", Config: s})
		}
		return out
	case "humaneval":
		return []Artefact{{Kind: File, ID: evalplusHumanEval, Env: "HUMANEVAL_OVERRIDE_PATH",
			URL: "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz"}}
	case "mbpp":
		return []Artefact{{Kind: File, ID: evalplusMBPP, Env: "MBPP_OVERRIDE_PATH",
			URL: "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"}}
	case "alpacaeval2":
		// agora's answering script reads the instructions (config
		// alpaca_eval), alpaca_eval the reference outputs
		// (alpaca_eval_gpt4_baseline) with load_dataset, and the
		// length-controlled win rate two files with hf_hub_download.
		return []Artefact{
			{Kind: Dataset, ID: "tatsu-lab/alpaca_eval", Config: "alpaca_eval"},
			{Kind: Dataset, ID: "tatsu-lab/alpaca_eval", Config: "alpaca_eval_gpt4_baseline"},
			{Kind: Repo, ID: "tatsu-lab/alpaca_eval", Files: []string{"df_gamed.csv", "instruction_difficulty.csv"}},
		}
	}
	return nil
}

// Needs lists the artefacts the plan's steps still to run read on the
// compute nodes, each once, with what needs it, in a stable order.
func Needs(exp *spec.Experiment, p *plan.Plan) []Artefact {
	byKey := map[string]*Artefact{}
	var order []string
	add := func(a Artefact, why string) {
		if a.ID == "" {
			return
		}
		k := a.Kind + "\x00" + a.ID + "\x00" + a.Config
		if have, ok := byKey[k]; ok {
			for _, w := range have.For {
				if w == why {
					return
				}
			}
			have.For = append(have.For, why)
			return
		}
		a.For = []string{why}
		byKey[k] = &a
		order = append(order, k)
	}
	served := func(g *spec.Generator, why string) {
		if g != nil && g.Provider.VLLM != nil {
			add(Artefact{Kind: Model, ID: g.Model}, why)
		}
	}
	for _, s := range p.Steps {
		if s.Action == plan.ActionNoop {
			continue
		}
		switch s.Kind {
		case plan.KindGenerate:
			served(exp.Generators[s.Generator], "generators."+s.Generator)
		case plan.KindTrain:
			add(Artefact{Kind: Model, ID: exp.Student.Base}, "student.base")
		case plan.KindEvaluate:
			switch s.Model {
			case "base":
				add(Artefact{Kind: Model, ID: exp.Student.Base}, "student.base")
			case "reference":
				add(Artefact{Kind: Model, ID: exp.Student.Reference}, "student.reference")
			}
			for _, a := range benchmarkData(exp, s.Benchmark) {
				add(a, "benchmark "+s.Benchmark)
			}
		case plan.KindSolve:
			served(exp.Generators[s.Generator], "generators."+s.Generator)
			for _, a := range benchmarkData(exp, s.Benchmark) {
				add(a, "benchmark "+s.Benchmark)
			}
		case plan.KindJudge:
			var in struct {
				Suffix string `json:"suffix"`
			}
			_ = json.Unmarshal(s.Inputs, &in)
			if j := exp.Metrics.JudgeBySuffix(in.Suffix); j != nil {
				served(j.Gen, "metrics.judge"+in.Suffix)
			}
		case plan.KindDiversity:
			if m := exp.Metrics; m != nil && m.Diversity != nil {
				served(m.Diversity.Gen, "metrics.diversity")
			}
		case plan.KindPerplexity:
			if m := exp.Metrics; m != nil && m.Perplexity != nil {
				served(m.Perplexity.Gen, "metrics.perplexity")
			}
		case plan.KindReward:
			if m := exp.Metrics; m != nil && m.Reward != nil {
				add(Artefact{Kind: Model, ID: m.Reward.Model}, "metrics.reward")
			}
		}
	}
	out := make([]Artefact, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return kindRank(out[i].Kind) < kindRank(out[j].Kind) })
	return out
}

func kindRank(k string) int {
	switch k {
	case Model:
		return 0
	case Dataset:
		return 1
	case Repo:
		return 2
	}
	return 3
}

// The cache's parts, under its root (an HF_HOME).
const (
	hubDir      = "hub"
	datasetsDir = "datasets"
	filesDir    = "files"
)

// Env is the environment of a job that reads the cache at dir: HF_HOME and
// the caches under it, the hubs' offline switches, and evalplus' override
// paths.
func Env(dir string) map[string]string {
	return map[string]string{
		"HF_HOME":                  dir,
		"HF_HUB_CACHE":             filepath.Join(dir, hubDir),
		"HF_DATASETS_CACHE":        filepath.Join(dir, datasetsDir),
		"HF_HUB_OFFLINE":           "1",
		"HF_DATASETS_OFFLINE":      "1",
		"TRANSFORMERS_OFFLINE":     "1",
		"HF_HUB_DISABLE_TELEMETRY": "1",
		"HUMANEVAL_OVERRIDE_PATH":  filepath.Join(dir, filesDir, evalplusHumanEval),
		"MBPP_OVERRIDE_PATH":       filepath.Join(dir, filesDir, evalplusMBPP),
	}
}

// repoDir is a hub repository's directory in the hub cache.
func repoDir(dir, kind, id string) string {
	prefix := "models--"
	if kind != Model {
		prefix = "datasets--"
	}
	return filepath.Join(dir, hubDir, prefix+strings.ReplaceAll(id, "/", "--"))
}

// datasetDir is where the datasets library keeps a prepared hub data set
// (its CachedDatasetModuleFactory: OWNER___snake_name/CONFIG/VERSION/HASH).
func datasetDir(dir, id string) string {
	parts := strings.Split(id, "/")
	parts[len(parts)-1] = snakeCase(parts[len(parts)-1])
	return filepath.Join(dir, datasetsDir, strings.Join(parts, "___"))
}

var (
	upperUpper = regexp.MustCompile(`([A-Z]+)([A-Z][a-z])`)
	lowerUpper = regexp.MustCompile(`([a-z\d])([A-Z])`)
)

// snakeCase is the datasets library's camelcase_to_snakecase.
func snakeCase(s string) string {
	s = upperUpper.ReplaceAllString(s, "${1}_${2}")
	s = lowerUpper.ReplaceAllString(s, "${1}_${2}")
	return strings.ToLower(s)
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
