package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/eta"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// statusRunningNoApply is how status shows a step the state has as
// running while no apply holds the lock: the apply that ran it was killed
// (the next apply records it as interrupted).
const statusRunningNoApply = "running (no live apply)"

// stepStatus is one step in agora status -json.
type stepStatus struct {
	Address string `json:"address"`
	ID      string `json:"id"`
	// Superseded marks a step recorded under an earlier spec: the current
	// plan has another step at its address.
	Superseded      bool    `json:"superseded,omitempty"`
	Kind            string  `json:"kind"`
	Status          string  `json:"status"`
	Reason          string  `json:"reason,omitempty"`
	Output          string  `json:"output,omitempty"`
	Target          int     `json:"target"`
	Accepted        int     `json:"accepted"`
	Rejected        int     `json:"rejected"`
	InputTokens     int64   `json:"input_tokens"`
	OutputTokens    int64   `json:"output_tokens"`
	CostUSD         float64 `json:"cost_usd"`
	RejectedCostUSD float64 `json:"rejected_cost_usd"`
}

// jobStatus is one job in agora status -json.
type jobStatus struct {
	Step       string  `json:"step"`
	Executor   string  `json:"executor"`
	ID         string  `json:"id"`
	Attempt    int     `json:"attempt"`
	State      string  `json:"state"`
	Runs       int     `json:"runs"`
	ElapsedSec float64 `json:"elapsed_seconds"`
	GPUHours   float64 `json:"gpu_hours"`
	Log        string  `json:"log,omitempty"`
}

// batchStatus is one provider-side batch in agora status -json.
type batchStatus struct {
	Step      string `json:"step"`
	Key       string `json:"key"`
	ID        string `json:"id,omitempty"`
	File      string `json:"input_file,omitempty"`
	State     string `json:"state"`
	Requests  int    `json:"requests"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	// ReservedUSD is the worst case of its requests at the batch price.
	ReservedUSD float64 `json:"reserved_usd"`
	// Recorded: every line's result is in the state.
	Recorded bool `json:"recorded"`
	// NotInPlan: not recorded, and its step is not in the spec's plan
	// any more: only an apply of the spec it was made with collects it.
	NotInPlan bool   `json:"not_in_plan,omitempty"`
	Message   string `json:"message,omitempty"`
}

// statusReport is agora status -json.
type statusReport struct {
	Steps          []stepStatus  `json:"steps"`
	Jobs           []jobStatus   `json:"jobs"`
	Batches        []batchStatus `json:"batches,omitempty"`
	SpentUSD       float64       `json:"spent_usd"`
	BudgetUSD      float64       `json:"budget_usd,omitempty"`
	GPUHours       float64       `json:"gpu_hours"`
	BudgetGPUHours float64       `json:"budget_gpu_hours,omitempty"`
	// LiveApply is true while an apply holds the state's lock.
	LiveApply bool `json:"live_apply"`
	// ETASeconds estimates the wall-clock the steps not done still take
	// (package eta); absent when nothing is left or the spec does not
	// compile.
	ETASeconds float64 `json:"eta_s,omitempty"`
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "status [SPEC] [-json]", stderr)
	asJSON := fs.Bool("json", false, "print the steps, jobs and totals as JSON")
	specPath, code, ok := specArg(fs, args, stderr)
	if !ok {
		return code
	}
	exp, store, err := openState(ctx, specPath)
	if err != nil {
		var ds spec.Diagnostics
		if errors.As(err, &ds) {
			printLoadError(stderr, specPath, err)
		} else {
			fmt.Fprintf(stderr, "agora status: %v\n", err)
		}
		return ExitError
	}
	defer store.Close()
	rep, steps, err := readStatus(ctx, exp, store)
	if err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return ExitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "agora status: %v\n", err)
			return ExitError
		}
		return ExitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATUS\tDONE\tACCEPTED\tREJECTED\tTOKENS IN/OUT\tCOST\tREJECTED COST\tREASON")
	for _, s := range rep.Steps {
		if s.Superseded {
			s.Address += supersededMark
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s/%s\t%s\t%s\t%s\n", s.Address, statusWord(s.Status), min(s.Accepted, s.Target), s.Target,
			s.Accepted, s.Rejected, plan.Count(s.InputTokens), plan.Count(s.OutputTokens), plan.Dollars(s.CostUSD), plan.Dollars(s.RejectedCostUSD), oneLine(s.Reason))
	}
	tw.Flush()
	// Every reason in full (its first line: a job's names its log).
	first := true
	for _, s := range rep.Steps {
		if s.Reason == "" || len(firstLine(s.Reason)) <= 80 && !strings.Contains(s.Reason, "\n") {
			continue
		}
		if first {
			fmt.Fprintln(stdout, "\nReasons in full:")
			first = false
		}
		fmt.Fprintf(stdout, "  %s %s: %s\n", s.Address, statusWord(s.Status), firstLine(s.Reason))
	}
	if len(rep.Jobs) > 0 {
		fmt.Fprintln(stdout, "\nJobs")
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tEXECUTOR\tJOB\tATTEMPT\tSTATE\tRUNS\tELAPSED\tGPU-HOURS\tLOG")
		for _, j := range rep.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%.4f\t%s\n", j.Step, j.Executor, j.ID, j.Attempt, j.State, j.Runs,
				elapsedWord(j.ElapsedSec), j.GPUHours, j.Log)
		}
		tw.Flush()
	}
	if len(rep.Batches) > 0 {
		fmt.Fprintln(stdout, "\nBatches")
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tBATCH\tSTATE\tREQUESTS\tCOMPLETED\tFAILED\tRESERVED\tRESULTS")
		for _, b := range rep.Batches {
			id := b.ID
			switch {
			case id == "" && b.State == state.BatchSubmitting:
				id = "(submitted, no answer seen) " + b.Key
			case id == "":
				id = "(not created) " + b.Key
			}
			results := "recorded"
			switch {
			case b.NotInPlan:
				results = "to collect: step not in this spec's plan"
			case !b.Recorded:
				results = "to collect"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", b.Step, id, b.State, b.Requests, b.Completed, b.Failed, plan.Dollars(b.ReservedUSD), results)
		}
		tw.Flush()
	}
	if err := printMetrics(ctx, stdout, store, steps); err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "\n%d step%s recorded, %s spent", len(rep.Steps), plural(len(rep.Steps)), plan.Dollars(rep.SpentUSD))
	if rep.BudgetUSD > 0 {
		fmt.Fprintf(stdout, " of %s (budgets.usd)", plan.Dollars(rep.BudgetUSD))
	}
	if len(rep.Jobs) > 0 || rep.BudgetGPUHours > 0 {
		fmt.Fprintf(stdout, ", %.4f GPU-hours used", rep.GPUHours)
		if rep.BudgetGPUHours > 0 {
			fmt.Fprintf(stdout, " of %g (budgets.gpu_hours)", rep.BudgetGPUHours)
		}
	}
	fmt.Fprintln(stdout, ".")
	if rep.ETASeconds > 0 {
		fmt.Fprintf(stdout, "Estimated time left: %s (the longest path of the steps not done; docs/estimates.md#time).\n", plan.Duration(rep.ETASeconds))
	}
	if !rep.LiveApply {
		for _, s := range rep.Steps {
			if s.Status == statusRunningNoApply {
				fmt.Fprintln(stdout, "No apply is running: the steps shown running were left so by one that was killed; the next agora apply records them as interrupted and resumes them.")
				break
			}
		}
	}
	return ExitOK
}

// readStatus gathers what agora status shows.
func readStatus(ctx context.Context, exp *spec.Experiment, store *state.Store) (*statusReport, []state.StepState, error) {
	dir := stateDir(exp)
	_, locked, live, err := state.Holder(dir)
	if err != nil {
		return nil, nil, err
	}
	steps, err := store.Steps(ctx)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := store.AllJobs(ctx)
	if err != nil {
		return nil, nil, err
	}
	rep := &statusReport{Steps: []stepStatus{}, Jobs: []jobStatus{}, LiveApply: locked && live,
		BudgetUSD: exp.Budgets.USD, BudgetGPUHours: exp.Budgets.GPUHours}
	// The spec's plan, compiled once for what status compares with it:
	// superseded steps, batches not in it, the ETA. nil when the spec does
	// not compile (those parts are then left out).
	p, err := compiler.Compile(ctx, exp, compiler.Options{Recorded: store})
	if err != nil {
		p = nil
	}
	current := map[string]bool{}
	if p != nil {
		for _, s := range p.Steps {
			current[s.ID] = true
		}
	}
	superseded := supersededSteps(steps, current)
	address := map[string]string{}
	for i, s := range steps {
		if superseded[s.ID] {
			// Shown apart from the current step at the same address,
			// with its metrics.
			steps[i].Address += supersededMark
		}
		address[s.ID] = s.Address
		st := s.Status
		if st == state.StatusRunning && !rep.LiveApply {
			st = statusRunningNoApply
		}
		rep.SpentUSD += s.CostUSD
		rep.Steps = append(rep.Steps, stepStatus{Address: strings.TrimSuffix(s.Address, supersededMark), ID: s.ID, Superseded: superseded[s.ID],
			Kind: s.Kind, Status: st, Reason: s.Error, Output: s.Output,
			Target: s.Target, Accepted: s.Accepted, Rejected: s.Rejected, InputTokens: s.InputTokens, OutputTokens: s.OutputTokens,
			CostUSD: s.CostUSD, RejectedCostUSD: s.RejectedCostUSD})
	}
	for _, j := range jobs {
		a := address[j.StepID]
		if id, ok := strings.CutSuffix(j.StepID, "/serve"); ok && address[id] != "" {
			a = address[id] + " (its model's server)"
		}
		if a == "" {
			a = j.StepID
		}
		rep.GPUHours += j.GPUHours
		rep.Jobs = append(rep.Jobs, jobStatus{Step: a, Executor: j.Executor, ID: j.JobID, Attempt: j.Attempt, State: j.Status, Runs: j.Runs,
			ElapsedSec: j.Elapsed.Seconds(), GPUHours: j.GPUHours, Log: jobLog(dir, j)})
	}
	batches, err := store.Batches(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range batches {
		a := address[b.StepID]
		if a == "" {
			a = b.StepID
		}
		file := b.FileID
		if file == state.InlineFile {
			file = "" // a plugin's batch has no input file
		}
		rep.Batches = append(rep.Batches, batchStatus{Step: a, Key: b.Key, ID: b.BatchID, File: file, State: b.Status,
			Requests: len(b.Lines), Completed: b.Completed, Failed: b.Failed, ReservedUSD: b.ReservedUSD, Recorded: b.Done, Message: b.Message,
			NotInPlan: !b.Done && len(current) > 0 && !current[b.StepID]})
	}
	rep.ETASeconds = statusETA(exp, p, steps, jobs)
	return rep, steps, nil
}

// statusETA estimates the wall-clock the steps of the spec's plan that
// are not done still take (package eta): a generate or solve step has the
// share of its instances not accepted left, a job running the share of
// its estimate not elapsed. 0 without a plan (the spec does not compile).
func statusETA(exp *spec.Experiment, p *plan.Plan, steps []state.StepState, jobs []state.Job) float64 {
	if p == nil {
		return 0
	}
	byID := map[string]plan.Step{}
	left := map[string]float64{}
	for _, s := range p.Steps {
		byID[s.ID] = s
		if s.Action == plan.ActionNoop {
			left[s.ID] = 0
		}
	}
	for _, s := range steps {
		switch {
		case s.Status == state.StatusDone:
			left[s.ID] = 0
		case s.Target > 0:
			left[s.ID] = 1 - float64(min(s.Accepted, s.Target))/float64(s.Target)
		}
	}
	for _, j := range jobs {
		s, ok := byID[j.StepID]
		if !ok || !state.IsActiveJob(j.Status) {
			continue
		}
		est := eta.JobSeconds(s.Estimate.GPUHours, eta.JobGPUs(exp, s))
		elapsed := max(j.Elapsed, time.Since(j.SubmittedAt)).Seconds()
		if est > 0 {
			left[s.ID] = max(0, 1-elapsed/est)
		}
	}
	return eta.PlanLeft(exp, p, left).Total
}

// supersededMark follows the address of a superseded step in status.
const supersededMark = " (superseded: an earlier spec)"

// supersededSteps are the recorded steps that share their address with
// another recorded step and are not in the spec's current plan (a changed
// judge, generator or setting made a new step at the same address); nil
// when the plan cannot be compiled.
func supersededSteps(steps []state.StepState, current map[string]bool) map[string]bool {
	n := map[string]int{}
	for _, s := range steps {
		n[s.Address]++
	}
	dup := false
	for _, c := range n {
		dup = dup || c > 1
	}
	if !dup || len(current) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, s := range steps {
		if n[s.Address] > 1 && !current[s.ID] {
			out[s.ID] = true
		}
	}
	return out
}

// jobLog is where a job's output is: a train, evaluate, solve or reward
// job's in its step's run directory (.agora/runs/<step>/slurm-<id>.out);
// a server's under .agora/servers, not known here.
func jobLog(dir string, j state.Job) string {
	if strings.HasPrefix(j.Executor, "server:") {
		return ""
	}
	return slurm.LogPath(filepath.Join(dir, "runs", j.StepID), j.JobID)
}

// statusWord is how agora status writes a step status.
func statusWord(s string) string {
	if s == state.StatusNotRun {
		return "not run"
	}
	return s
}

func elapsedWord(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return time.Duration(sec * float64(time.Second)).Round(time.Second).String()
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// oneLine is a reason in the status table: its first 80 characters, on
// one line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
