// Package plan holds the execution plan agora compiles from a spec: the
// Plan type, its stable, versioned JSON form (`agora plan --json`, the
// `-out` file) and its rendering for people. A plan is data; it runs
// nothing.
package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// FormatVersion is the version of the plan document. It changes when a
// field changes meaning or is removed; new fields may be added within a
// version.
const FormatVersion = "1"

// Step kinds.
const (
	KindGenerate = "generate"
	KindTrain    = "train"
	KindEvaluate = "evaluate"
	KindScore    = "score"
	// KindSolve: a generator answers a benchmark itself, for the
	// report's problem-solving analysis.
	KindSolve = "solve"
	// Intrinsic metrics of a generate step's data (docs/metrics.md).
	KindJudge      = "judge"
	KindDiversity  = "diversity"
	KindPerplexity = "perplexity"
	KindReward     = "reward"
)

// Kinds lists the step kinds in the order the stages run.
var Kinds = []string{KindGenerate, KindJudge, KindDiversity, KindPerplexity, KindReward, KindTrain, KindEvaluate, KindScore, KindSolve}

// Actions.
const (
	// ActionCreate: the step has not completed and will run.
	ActionCreate = "create"
	// ActionNoop: the state records the step as completed.
	ActionNoop = "noop"
)

// Plan is a compiled, costed experiment.
type Plan struct {
	FormatVersion string `json:"format_version"`
	// Experiment is the spec's name.
	Experiment string `json:"experiment,omitempty"`
	// Spec identifies the file the plan was compiled from; apply refuses a
	// plan whose spec changed since.
	Spec SpecRef `json:"spec"`
	// StateSerial is the state's serial when the plan was made; apply
	// refuses the plan when the state has changed since.
	StateSerial int64    `json:"state_serial"`
	Steps       []Step   `json:"steps"`
	Totals      Totals   `json:"totals"`
	Budgets     []Budget `json:"budgets"`
	Warnings    []string `json:"warnings,omitempty"`
	Assume      Assumed  `json:"assumptions"`
	Counts      Counts   `json:"counts"`
	// Time is the estimated wall-clock of the steps to run.
	Time Time `json:"time"`
}

// Time is a plan's estimated wall-clock in seconds (package eta;
// docs/estimates.md, "Time"): every generator at once at its own limits,
// every ready job at once on the hardware it asks for.
type Time struct {
	// Generation is the slowest generator's API work; Generators each
	// one's, and Slowest names the slowest.
	Generation float64            `json:"generation_s"`
	Generators map[string]float64 `json:"generators_s,omitempty"`
	Slowest    string             `json:"slowest_generator,omitempty"`
	// Jobs is the longest chain of jobs (train, evaluate, reward), from
	// their GPU-hours over the GPUs each asks for.
	Jobs float64 `json:"jobs_s"`
	// Total is the longest path through the plan: the whole apply.
	Total float64 `json:"total_s"`
}

// SpecRef names a spec file and its content digest.
type SpecRef struct {
	File   string `json:"file"`
	Digest string `json:"digest"`
}

// Step is one node of the plan's DAG.
type Step struct {
	// ID is the content address of the step's inputs: the same inputs give
	// the same ID on any machine.
	ID string `json:"id"`
	// Address is a readable name, unique within the plan.
	Address   string   `json:"address"`
	Kind      string   `json:"kind"`
	Needs     []string `json:"needs"`
	Generator string   `json:"generator,omitempty"`
	Setting   string   `json:"setting,omitempty"`
	Instances int      `json:"instances,omitempty"`
	Variant   string   `json:"variant,omitempty"`
	Seed      *int     `json:"seed,omitempty"`
	// Model is what an evaluate step evaluates: "base", "reference" or
	// "student".
	Model     string   `json:"model,omitempty"`
	Benchmark string   `json:"benchmark,omitempty"`
	Executor  string   `json:"executor"`
	Action    string   `json:"action"`
	Estimate  Estimate `json:"estimate"`
	// Inputs are the values the ID is computed from, in canonical JSON.
	Inputs json.RawMessage `json:"inputs"`
}

// Estimate is a step's expected cost.
type Estimate struct {
	USD          float64 `json:"usd"`
	WorstUSD     float64 `json:"worst_usd"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	GPUHours     float64 `json:"gpu_hours"`
	// Requests is the expected number of API requests, retries included.
	Requests int64 `json:"requests,omitempty"`
	// Tokenizer says how prompt tokens were counted: a tiktoken encoding
	// name or "heuristic".
	Tokenizer string `json:"tokenizer,omitempty"`
	// Batches is the number of provider-side batches a generate step in
	// batch mode sends at least (its requests over max_requests), and
	// BatchWindow the completion window it asks for: the step's expected
	// latency (docs/batch.md).
	Batches     int64  `json:"batches,omitempty"`
	BatchWindow string `json:"batch_window,omitempty"`
}

// Add accumulates o into e.
func (e *Estimate) Add(o Estimate) {
	e.USD += o.USD
	e.WorstUSD += o.WorstUSD
	e.InputTokens += o.InputTokens
	e.OutputTokens += o.OutputTokens
	e.GPUHours += o.GPUHours
	e.Requests += o.Requests
}

// Totals sum the estimates of the steps that will run (noop steps cost
// nothing).
type Totals struct {
	USD          float64                   `json:"usd"`
	WorstUSD     float64                   `json:"worst_usd"`
	GPUHours     float64                   `json:"gpu_hours"`
	InputTokens  int64                     `json:"input_tokens"`
	OutputTokens int64                     `json:"output_tokens"`
	ByGenerator  map[string]GeneratorTotal `json:"by_generator"`
	// Shared is the cost not owned by one generator: base and reference
	// evaluations.
	Shared Estimate `json:"shared"`
}

// GeneratorTotal is what one generator's cells cost: generation and the
// training, evaluation and judging of its students.
type GeneratorTotal struct {
	Instances    int     `json:"instances"`
	USD          float64 `json:"usd"`
	WorstUSD     float64 `json:"worst_usd"`
	GPUHours     float64 `json:"gpu_hours"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
}

// Budget is one limit from the spec against the plan's estimate.
type Budget struct {
	Name string `json:"name"`
	// Unit is "usd" or "gpu_hours".
	Unit     string  `json:"unit"`
	Limit    float64 `json:"limit"`
	Estimate float64 `json:"estimate"`
	// Basis says which estimate is compared: "expected" or "worst_case".
	Basis string `json:"basis"`
	OK    bool   `json:"ok"`
	// Over is how much the estimate exceeds the limit (0 when OK).
	Over float64 `json:"over,omitempty"`
	// Source is where the spec sets the budget, "file:line:col".
	Source string `json:"source,omitempty"`
	// Top are the largest contributors, biggest first.
	Top []Contributor `json:"top,omitempty"`
}

// Contributor is a generator or step and its share of a budget.
type Contributor struct {
	Name   string  `json:"name"`
	Amount float64 `json:"amount"`
}

// Assumed records the model behind the estimates, so a reader can redo
// them by hand (docs/estimates.md).
type Assumed struct {
	TrainUtilization  float64 `json:"train_utilization"`
	TrainPeakTFLOPS   float64 `json:"train_peak_tflops"`
	TrainOverheadH    float64 `json:"train_overhead_hours"`
	EvalThroughput    float64 `json:"eval_throughput_tokens_per_s"`
	EvalOverheadH     float64 `json:"eval_overhead_hours"`
	ServerOverheadH   float64 `json:"server_overhead_hours"`
	StudentParamsBill float64 `json:"student_params_billion"`
}

// Counts are the number of steps per kind and action.
type Counts struct {
	Create map[string]int `json:"create"`
	Noop   map[string]int `json:"noop"`
}

// ToRun is the number of steps with action create.
func (p *Plan) ToRun() int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == ActionCreate {
			n++
		}
	}
	return n
}

// BudgetsOK reports whether every budget holds.
func (p *Plan) BudgetsOK() bool {
	for _, b := range p.Budgets {
		if !b.OK {
			return false
		}
	}
	return true
}

// WriteJSON writes the plan document, indented, with a final newline.
func (p *Plan) WriteJSON(w io.Writer) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Save writes the plan to path atomically: a crash leaves the old file or
// the new one, never half of one.
func (p *Plan) Save(path string) error {
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

// Read loads a saved plan and checks its format version.
func Read(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var probe struct {
		FormatVersion *string `json:"format_version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a plan file: %v", path, err)
	}
	if probe.FormatVersion == nil {
		return nil, fmt.Errorf("%s: not a plan file: no format_version", path)
	}
	if *probe.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: plan format version %q is not supported (this agora reads version %q)", path, *probe.FormatVersion, FormatVersion)
	}
	var p Plan
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: not a plan file: %v", path, err)
	}
	// WriteJSON indents the inputs with the rest of the document; compact
	// them back to the canonical bytes the step IDs hash.
	for i := range p.Steps {
		if in := p.Steps[i].Inputs; len(in) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, in); err != nil {
				return nil, fmt.Errorf("%s: step %s: inputs: %v", path, p.Steps[i].Address, err)
			}
			p.Steps[i].Inputs = buf.Bytes()
		}
	}
	return &p, nil
}
