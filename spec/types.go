package spec

import (
	"bytes"
	"encoding/json"
	"time"
)

// Experiment is a validated spec, with every default and built-in applied.
type Experiment struct {
	Name       string                `json:"name,omitempty"`
	Generators map[string]*Generator `json:"generators"`
	Settings   map[string]*Setting   `json:"settings"`
	Grid       Grid                  `json:"grid"`
	Student    Student               `json:"student"`
	Evaluation Evaluation            `json:"evaluation"`
	Budgets    Budgets               `json:"budgets"`
	Metrics    *Metrics              `json:"metrics,omitempty"`
	// ProblemSolving, when set, asks for solve steps (problemsolving.go).
	ProblemSolving *ProblemSolving `json:"problem_solving,omitempty"`
	// Offline, when set, runs the jobs from a staged cache (docs/offline.md).
	Offline *Offline `json:"offline,omitempty"`

	// Source describes the file the experiment was loaded from.
	Source Source `json:"-"`
}

// Source identifies a spec file and its content.
type Source struct {
	// File is the path as the user gave it.
	File string
	// Dir is the directory relative paths in the spec resolve against.
	Dir string
	// Digest is "sha256:" and the hex digest of the file's bytes.
	Digest string

	positions map[string]string
	// locate is the position of the deepest prefix of a path present in
	// the user's file (Locate).
	locate func(labels ...string) string
}

// Locate returns "file:line:col" of the field at the path given by its
// labels (e.g. "generators", "gpt-4o", "provider"), or of its deepest
// ancestor the file sets; the file name when none.
func (s Source) Locate(labels ...string) string {
	if s.locate != nil {
		if p := s.locate(labels...); p != "" {
			return p
		}
	}
	return s.File
}

// Position returns "file:line:col" of the field at the CUE path (e.g.
// budgets.usd) when the loader recorded it, else the file name.
func (s Source) Position(path string) string {
	if p, ok := s.positions[path]; ok {
		return p
	}
	return s.File
}

// Generator is a language model used as a data generator.
type Generator struct {
	Name     string   `json:"-"`
	Provider Provider `json:"provider"`
	Model    string   `json:"model"`
	Price    *Price   `json:"price,omitempty"`
	Limits   Limits   `json:"limits"`
	Sampling Sampling `json:"sampling"`
}

// Provider says how a generator is reached; exactly one of OpenAI, VLLM
// and Plugin is set.
type Provider struct {
	OpenAI *OpenAI `json:"openai,omitempty"`
	VLLM   *VLLM   `json:"vllm,omitempty"`
	Plugin string  `json:"plugin,omitempty"`
	SHA256 string  `json:"sha256,omitempty"`
	// Batch is a plugin generator's batch mode (an OpenAI-compatible
	// one's is OpenAI.Batch).
	Batch Batch `json:"batch"`
}

// BatchMode is the generator's batch mode: openai.batch for an
// OpenAI-compatible generator, provider.batch for a plugin one; off for
// the rest (vllm.batch is offline inference, not a provider's batches).
func (g *Generator) BatchMode() Batch {
	switch {
	case g.Provider.OpenAI != nil:
		return g.Provider.OpenAI.Batch
	case g.Provider.Plugin != "":
		return g.Provider.Batch
	}
	return Batch{}
}

// Kind names the provider: "openai", "vllm" or "plugin:NAME".
func (p Provider) Kind() string {
	switch {
	case p.OpenAI != nil:
		return "openai"
	case p.VLLM != nil:
		return "vllm"
	case p.Plugin != "":
		return "plugin:" + p.Plugin
	}
	return ""
}

// OpenAI is an OpenAI-compatible HTTP endpoint.
type OpenAI struct {
	BaseURL   string `json:"base_url"`
	APIKeyEnv string `json:"api_key_env"`
	Batch     Batch  `json:"batch"`
}

// Batch is an OpenAI-compatible generator's batch mode: `batch: true`, or
// a block of settings (docs/batch.md). The zero value is off.
type Batch struct {
	On bool `json:"-"`
	// Window is the completion window asked of the provider ("24h").
	Window string `json:"window,omitempty"`
	// MaxRequests and MaxBytes bound one batch's input file.
	MaxRequests int   `json:"max_requests,omitempty"`
	MaxBytes    int64 `json:"max_bytes,omitempty"`
	// MaxEnqueuedTokens bounds the prompt tokens of the generator's
	// batches in flight at once; 0: no bound.
	MaxEnqueuedTokens int64 `json:"max_enqueued_tokens,omitempty"`
	// Poll is the time between two looks at a batch in flight.
	Poll string `json:"poll,omitempty"`
	// SyncAfter, when set, sends requests that failed or expired in a
	// batch synchronously once the step has waited this long.
	SyncAfter string `json:"sync_after,omitempty"`
}

// The OpenAI Batch API's limits per batch (openai-go's BatchNewParams: up
// to 50,000 requests and 200 MB per input file) and its completion window.
const (
	BatchMaxRequests = 50000
	BatchMaxBytes    = 200000000
	// BatchMaxRequestsAny and BatchMaxBytesAny bound a plugin's batch in
	// the spec (Anthropic's Message Batches: 100,000 requests, 256 MB);
	// the plugin's own limits bound it further when it starts.
	BatchMaxRequestsAny = 100000
	BatchMaxBytesAny    = 256000000
	BatchWindow         = "24h"
	BatchPoll           = "30s"
)

// UnmarshalJSON reads `true`, `false` or a block (which means on).
func (b *Batch) UnmarshalJSON(data []byte) error {
	switch string(bytes.TrimSpace(data)) {
	case "true":
		*b = Batch{On: true}
	case "false", "null":
		*b = Batch{}
	default:
		type plain Batch
		var p plain
		if err := json.Unmarshal(data, &p); err != nil {
			return err
		}
		*b = Batch(p)
		b.On = true
	}
	b.withDefaults()
	return nil
}

// MarshalJSON writes false when off, else the block with its defaults.
func (b Batch) MarshalJSON() ([]byte, error) {
	if !b.On {
		return []byte("false"), nil
	}
	type plain Batch
	return json.Marshal(plain(b))
}

func (b *Batch) withDefaults() {
	if !b.On {
		return
	}
	if b.Window == "" {
		b.Window = BatchWindow
	}
	if b.MaxRequests <= 0 {
		b.MaxRequests = BatchMaxRequests
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = BatchMaxBytes
	}
	if b.Poll == "" {
		b.Poll = BatchPoll
	}
}

// WindowDuration is the completion window as a duration (24 hours when
// it cannot be read).
func (b Batch) WindowDuration() time.Duration {
	if d, err := time.ParseDuration(b.Window); err == nil && d > 0 {
		return d
	}
	return 24 * time.Hour
}

// PollInterval is Poll as a duration (30 s when it cannot be read).
func (b Batch) PollInterval() time.Duration {
	if d, err := time.ParseDuration(b.Poll); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// SyncAfterDuration is SyncAfter as a duration; 0 when unset.
func (b Batch) SyncAfterDuration() time.Duration {
	d, _ := time.ParseDuration(b.SyncAfter)
	return max(d, 0)
}

// VLLM is a model served locally by vLLM.
type VLLM struct {
	Path                 string   `json:"path,omitempty"`
	TensorParallel       int      `json:"tensor_parallel"`
	GPUs                 int      `json:"gpus"`
	Replicas             int      `json:"replicas"`
	MaxModelLen          int      `json:"max_model_len,omitempty"`
	GPUMemoryUtilization float64  `json:"gpu_memory_utilization,omitempty"`
	DType                string   `json:"dtype"`
	Seed                 *int     `json:"seed,omitempty"`
	ExtraArgs            []string `json:"extra_args,omitempty"`
	Executor             string   `json:"executor"`
	ThroughputTokensPerS float64  `json:"throughput_tokens_per_s"`
	StartTimeout         string   `json:"start_timeout"`
	TimeLimit            string   `json:"time_limit"`
	Slurm                *Slurm   `json:"slurm,omitempty"`
	Batch                bool     `json:"batch"`
}

// VLLMConcurrencyPerReplica is the default limits.concurrency of a vllm
// generator, per replica: vLLM's default max_num_seqs, so that every
// server's continuous batching stays full (docs/vllm.md).
const VLLMConcurrencyPerReplica = 256

// VLLMBatchConcurrency is the default limits.concurrency of a vllm
// generator in batch mode: the requests collected into one run, so that
// every slot of a step of up to this many instances goes into the first.
const VLLMBatchConcurrency = 100000

// StartWait is the start timeout as a duration (20 minutes when unset).
func (v VLLM) StartWait() time.Duration {
	if d, err := time.ParseDuration(v.StartTimeout); err == nil && d > 0 {
		return d
	}
	return 20 * time.Minute
}

// Price is dollars per one million tokens.
type Price struct {
	Input         float64 `json:"input"`
	Output        float64 `json:"output"`
	BatchDiscount float64 `json:"batch_discount,omitempty"`
}

// Limits are a provider's rate limits.
type Limits struct {
	RPM         int `json:"rpm,omitempty"`
	TPM         int `json:"tpm,omitempty"`
	Concurrency int `json:"concurrency,omitempty"`
}

// Sampling holds the decoding parameters sent with every request.
type Sampling struct {
	Temperature *float64       `json:"temperature,omitempty"`
	TopP        *float64       `json:"top_p,omitempty"`
	MaxTokens   int            `json:"max_tokens"`
	Stop        []string       `json:"stop,omitempty"`
	Seed        *int           `json:"seed,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// Domains, methods and prompt variants.
const (
	DomainMath         = "math"
	DomainCode         = "code"
	DomainInstruction  = "instruction_following"
	MethodInstance     = "instance_generation"
	MethodResponse     = "response_generation"
	MethodQuality      = "quality_enhancement"
	VariantFreeForm    = "free-form"
	VariantJSON        = "json"
	DefaultInstances   = 10000
	DefaultAcceptance  = 0.9
	ExecutorLocal      = "local"
	ExecutorSlurm      = "slurm"
	TrainerTRL         = "trl"
	TrainerAxolotl     = "axolotl"
	TrainerCommand     = "command"
	BudgetExpected     = "expected"
	BudgetWorstCase    = "worst_case"
	HarnessLMEval      = "lm-eval"
	HarnessEvalPlus    = "evalplus"
	HarnessAlpacaEval  = "alpaca_eval"
	HarnessArenaHard   = "arena-hard-auto"
	HarnessCommand     = "command"
	defaultSeedRev     = "main"
	defaultSeedSplit   = "train"
	defaultJudgeInput  = 1000
	defaultJudgeOutput = 200
)

// Setting is one data-generation task: a domain, a method and seed data.
type Setting struct {
	Name       string       `json:"-"`
	Builtin    bool         `json:"-"`
	Domain     string       `json:"domain,omitempty"`
	Method     string       `json:"method,omitempty"`
	SeedData   SeedData     `json:"seed_data"`
	Instances  int          `json:"instances,omitempty"`
	Prompt     Prompt       `json:"prompt"`
	Benchmarks []string     `json:"benchmarks,omitempty"`
	Estimate   ItemEstimate `json:"estimate"`
}

// SeedData is where a setting's seed items come from: a Hugging Face
// dataset or a local file.
type SeedData struct {
	HF       string `json:"hf,omitempty"`
	Revision string `json:"revision,omitempty"`
	Split    string `json:"split,omitempty"`
	Path     string `json:"path,omitempty"`
	Size     int    `json:"size,omitempty"`

	// Digest is the local file's "sha256:…" digest, filled in by Load.
	Digest string `json:"-"`
}

// Ref is a stable reference to the seed data: the dataset id at its
// revision, or the local file's digest.
func (s SeedData) Ref() string {
	if s.Path != "" {
		return "file:" + s.Digest
	}
	return "hf:" + s.HF + "@" + s.Revision + "#" + s.Split
}

// Prompt selects the meta-prompt.
type Prompt struct {
	// Builtin names the built-in meta-prompt as "domain.method"; the
	// setting's own domain and method when empty.
	Builtin string `json:"builtin,omitempty"`
	Variant string `json:"variant,omitempty"`
	File    string `json:"file,omitempty"`

	// System is the system message sent before the meta-prompt; none
	// when empty.
	System string `json:"system,omitempty"`
	// Stop are stop sequences added to the generator's sampling.stop.
	Stop []string `json:"stop,omitempty"`
	// Languages are the programming languages of multi-language code
	// instance generation; Fixing makes half of its tasks fixing tasks.
	Languages []string `json:"languages,omitempty"`
	Fixing    bool     `json:"fixing,omitempty"`
	// Topics and Openings replace agora's topics and opening phrases.
	Topics   []string `json:"topics,omitempty"`
	Openings []string `json:"openings,omitempty"`

	// Text is the content of File, read by Load.
	Text string `json:"-"`
}

// ItemEstimate are the per-request token assumptions behind estimates.
type ItemEstimate struct {
	InputTokens  int     `json:"input_tokens,omitempty"`
	OutputTokens int     `json:"output_tokens,omitempty"`
	Acceptance   float64 `json:"acceptance,omitempty"`
}

// Grid selects the cells of the experiment.
type Grid struct {
	Generators []string `json:"generators,omitempty"`
	Settings   []string `json:"settings,omitempty"`
	Instances  []int    `json:"instances,omitempty"`
	Variants   []string `json:"variants,omitempty"`
	Seeds      []int    `json:"seeds,omitempty"`
	Exclude    []Cell   `json:"exclude,omitempty"`
	Include    []Cell   `json:"include,omitempty"`
	// MaxSteps bounds the plan's steps (DefaultMaxSteps when zero).
	MaxSteps int `json:"max_steps,omitempty"`
}

// Cell is a pattern over grid cells; a zero field matches anything.
type Cell struct {
	Generator string `json:"generator,omitempty"`
	Setting   string `json:"setting,omitempty"`
	Instances int    `json:"instances,omitempty"`
	Variant   string `json:"variant,omitempty"`
	Seed      *int   `json:"seed,omitempty"`
}

// Student is the model trained on each generated data set.
type Student struct {
	Base            string          `json:"base"`
	Reference       string          `json:"reference"`
	ParamsBillion   float64         `json:"params_billion"`
	Trainer         string          `json:"trainer"`
	Command         string          `json:"command,omitempty"`
	Hyperparameters Hyperparameters `json:"hyperparameters"`
	Hardware        Hardware        `json:"hardware"`
	Executor        string          `json:"executor"`
	Slurm           *Slurm          `json:"slurm,omitempty"`
}

// Hyperparameters of supervised fine-tuning; the defaults are the paper's.
type Hyperparameters struct {
	Epochs                    int            `json:"epochs"`
	MaxSeqLength              int            `json:"max_seq_length"`
	LearningRate              float64        `json:"learning_rate"`
	PerDeviceBatchSize        int            `json:"per_device_batch_size"`
	GradientAccumulationSteps int            `json:"gradient_accumulation_steps"`
	Seed                      int            `json:"seed"`
	DType                     string         `json:"dtype"`
	LRScheduler               string         `json:"lr_scheduler"`
	WarmupRatio               float64        `json:"warmup_ratio"`
	Extra                     map[string]any `json:"extra,omitempty"`
}

// Hardware is what one training job runs on.
type Hardware struct {
	GPU         string  `json:"gpu"`
	GPUsPerNode int     `json:"gpus_per_node"`
	Nodes       int     `json:"nodes"`
	TimeLimit   string  `json:"time_limit"`
	CPUsPerTask int     `json:"cpus_per_task,omitempty"`
	Mem         string  `json:"mem,omitempty"`
	PeakTFLOPS  float64 `json:"peak_tflops,omitempty"`
	Utilization float64 `json:"utilization"`
}

// GPUs is the total number of GPUs of one job.
func (h Hardware) GPUs() int { return h.GPUsPerNode * h.Nodes }

// Slurm holds scheduler options.
type Slurm struct {
	Partition  string   `json:"partition,omitempty"`
	Account    string   `json:"account,omitempty"`
	QOS        string   `json:"qos,omitempty"`
	Directives []string `json:"directives,omitempty"`
	Container  string   `json:"container,omitempty"`
	Modules    []string `json:"modules,omitempty"`
	// MaxJobs caps agora's jobs queued or running at once in the
	// partition (0: none; every ready job is submitted).
	MaxJobs int `json:"max_jobs,omitempty"`
}

// Evaluation says how models are evaluated.
type Evaluation struct {
	Executor             string  `json:"executor"`
	Slurm                *Slurm  `json:"slurm,omitempty"`
	GPUs                 int     `json:"gpus"`
	ThroughputTokensPerS float64 `json:"throughput_tokens_per_s"`
	// LMEvalBackend is lm-eval's model backend for GSM8K and MATH:
	// "vllm" (the default) or "hf" (transformers, for machines without
	// vLLM).
	LMEvalBackend string                `json:"lm_eval_backend,omitempty"`
	Benchmarks    map[string]*Benchmark `json:"benchmarks,omitempty"`
}

// Benchmark is one evaluation benchmark and the harness that runs it.
type Benchmark struct {
	Name         string `json:"-"`
	Harness      string `json:"harness,omitempty"`
	Command      string `json:"command,omitempty"`
	Items        int    `json:"items,omitempty"`
	OutputTokens int    `json:"output_tokens,omitempty"`
	// PromptTokens is the expected prompt of one problem, for the
	// estimate of a solve step.
	PromptTokens int    `json:"prompt_tokens,omitempty"`
	Judge        *Judge `json:"judge,omitempty"`
}

// Judge is the LLM judge of a benchmark scored by a model.
type Judge struct {
	Model        string `json:"model"`
	BaseURL      string `json:"base_url"`
	APIKeyEnv    string `json:"api_key_env"`
	Price        Price  `json:"price"`
	InputTokens  int    `json:"input_tokens,omitempty"`
	OutputTokens int    `json:"output_tokens,omitempty"`
}

// Budgets cap what a plan may spend.
type Budgets struct {
	USD          float64                `json:"usd,omitempty"`
	GPUHours     float64                `json:"gpu_hours,omitempty"`
	PerGenerator map[string]*BudgetPair `json:"per_generator,omitempty"`
	Check        string                 `json:"check"`
}

// BudgetPair caps one generator.
type BudgetPair struct {
	USD      float64 `json:"usd,omitempty"`
	GPUHours float64 `json:"gpu_hours,omitempty"`
}
