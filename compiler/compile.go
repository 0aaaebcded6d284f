// Package compiler turns a validated experiment into a plan: it expands
// the grid into generate, train, evaluate and score steps, gives each a
// content address, collapses identical steps, estimates tokens, dollars
// and GPU-hours, checks the budgets, and marks the steps the state already
// records as done. It runs nothing.
package compiler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/agorabench/agora/eta"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/tokens"
)

// Recorded is what the compiler needs of the state: which steps have
// completed. The engine's state store implements it.
type Recorded interface {
	Completed(ctx context.Context, ids []string) (map[string]bool, error)
}

// JudgeProgress, when the Recorded implements it, says how many of each
// judge step's judgements (an item under an aspect) already have a
// readable score, so that the plan of a judge step cut short estimates
// only what remains.
type JudgeProgress interface {
	JudgedItems(ctx context.Context, ids []string) (map[string]int, error)
}

// Options adjust compilation.
type Options struct {
	// Recorded, when set, turns completed steps into noops.
	Recorded Recorded
	// Tokens counts prompt tokens; nil uses a fresh counter.
	Tokens *tokens.Counter
}

// Compile builds the plan for exp. Budgets that the plan exceeds are
// reported in the plan (Budget.OK false), not as an error: the caller
// decides how to fail, and can still show the plan.
func Compile(ctx context.Context, exp *spec.Experiment, opts Options) (*plan.Plan, error) {
	c := &compiler{exp: exp, tok: opts.Tokens, byID: map[string]int{}, templates: map[string]*template{}}
	if c.tok == nil {
		c.tok = &tokens.Counter{}
	}
	if err := c.build(); err != nil {
		return nil, err
	}
	if opts.Recorded != nil {
		ids := make([]string, len(c.steps))
		for i, s := range c.steps {
			ids[i] = s.ID
		}
		done, err := opts.Recorded.Completed(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("read state: %w", err)
		}
		for i := range c.steps {
			if done[c.steps[i].ID] {
				c.steps[i].Action = plan.ActionNoop
			}
		}
		if jp, ok := opts.Recorded.(JudgeProgress); ok {
			if err := c.judgeRemaining(ctx, jp); err != nil {
				return nil, fmt.Errorf("read state: %w", err)
			}
		}
	}
	p := &plan.Plan{
		FormatVersion: plan.FormatVersion,
		Experiment:    exp.Name,
		Spec:          plan.SpecRef{File: exp.Source.File, Digest: exp.Source.Digest},
		Steps:         c.steps,
		Warnings:      c.warnings,
		Assume:        c.assumptions(),
	}
	c.totals(p)
	c.time(p)
	checkBudgets(exp, p)
	return p, nil
}

type compiler struct {
	exp       *spec.Experiment
	tok       *tokens.Counter
	steps     []plan.Step
	byID      map[string]int
	owner     map[string]string // step id -> generator that owns its cost
	warnings  []string
	templates map[string]*template
	err       error
}

// template is a meta-prompt with its digest and static text.
type template struct {
	digest string
	static string
}

func (c *compiler) build() error {
	c.owner = map[string]string{}
	cells := c.exp.Cells()
	if len(cells) == 0 {
		return fmt.Errorf("the grid selects no cells: check grid.exclude")
	}
	// Base and reference evaluations are shared by every student.
	sharedEval := map[string]string{} // "base/gsm8k" -> step id
	for _, cl := range cells {
		g := c.exp.Generators[cl.Generator]
		s := c.exp.Settings[cl.Setting]
		tpl, err := c.template(s, cl.Variant)
		if err != nil {
			return fmt.Errorf("setting %s: %w", cl.Setting, err)
		}
		gen := c.generateStep(g, s, cl, tpl)
		genID := c.add(gen, cl.Generator)
		c.metricSteps(s, cl, genID)
		train := c.trainStep(s, cl, genID)
		trainID := c.add(train, cl.Generator)
		var studentEvals, baseEvals, refEvals []string
		for _, bn := range s.Benchmarks {
			b := c.exp.Evaluation.Benchmarks[bn]
			for _, role := range []string{"base", "reference"} {
				key := role + "/" + bn
				if _, ok := sharedEval[key]; !ok {
					sharedEval[key] = c.add(c.evalStep(role, b, s, "", cl), "")
				}
			}
			baseEvals = append(baseEvals, sharedEval["base/"+bn])
			refEvals = append(refEvals, sharedEval["reference/"+bn])
			studentEvals = append(studentEvals, c.add(c.evalStep("student", b, s, trainID, cl), cl.Generator))
		}
		c.add(c.scoreStep(cl, studentEvals, baseEvals, refEvals), cl.Generator)
	}
	c.solveSteps()
	c.order()
	return c.err
}

func (c *compiler) template(s *spec.Setting, variant string) (*template, error) {
	key := s.Name + "\x00" + variant
	if t, ok := c.templates[key]; ok {
		return t, nil
	}
	t, err := spec.MetaPrompt(s, variant)
	if err != nil {
		return nil, fmt.Errorf("meta-prompt: %w", err)
	}
	// The system message goes with every request: its tokens count with
	// the template's static text.
	static := t.StaticText()
	if sys := s.Prompt.System; sys != "" {
		static = sys + "\n" + static
	}
	tt := &template{digest: t.Digest(), static: static}
	c.templates[key] = tt
	return tt, nil
}

// add inserts a step unless an identical one (same ID) exists, and returns
// its ID.
func (c *compiler) add(s plan.Step, owner string) string {
	sum := sha256.Sum256(s.Inputs)
	s.ID = hex.EncodeToString(sum[:16])
	if i, ok := c.byID[s.ID]; ok {
		prev := c.steps[i]
		if prev.Generator != s.Generator && s.Kind == plan.KindGenerate {
			c.warn(fmt.Sprintf("generators %q and %q are identical (same provider, model and sampling); their steps are shared", prev.Generator, s.Generator))
		}
		return s.ID
	}
	s.Action = plan.ActionCreate
	if s.Needs == nil {
		s.Needs = []string{}
	}
	c.byID[s.ID] = len(c.steps)
	c.steps = append(c.steps, s)
	c.owner[s.ID] = owner
	return s.ID
}

// order sorts steps by stage, keeping expansion order within a stage, and
// makes addresses unique.
func (c *compiler) order() {
	rank := map[string]int{}
	for i, k := range plan.Kinds {
		rank[k] = i
	}
	sort.SliceStable(c.steps, func(i, j int) bool { return rank[c.steps[i].Kind] < rank[c.steps[j].Kind] })
	seen := map[string]int{}
	for i := range c.steps {
		a := c.steps[i].Address
		seen[a]++
		if seen[a] > 1 {
			c.steps[i].Address = a + "#" + strconv.Itoa(seen[a])
		}
		c.byID[c.steps[i].ID] = i
	}
}

// canonical is the JSON the step ID hashes: struct fields in declaration
// order and map keys sorted, so equal inputs give equal bytes.
func (c *compiler) canonical(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("encode step inputs: %w", err)
	}
	return b
}

func intPtr(i int) *int { return &i }

// executorOf names the executor of a generator's requests.
func executorOf(g *spec.Generator) string {
	switch {
	case g.Provider.OpenAI != nil:
		return "api"
	case g.Provider.VLLM != nil:
		return "vllm"
	}
	return "plugin:" + g.Provider.Plugin
}

type generateInputs struct {
	Kind      string        `json:"kind"`
	Provider  string        `json:"provider"`
	Endpoint  string        `json:"endpoint,omitempty"`
	Model     string        `json:"model"`
	Sampling  spec.Sampling `json:"sampling"`
	Domain    string        `json:"domain"`
	Method    string        `json:"method"`
	Prompt    string        `json:"prompt"`
	SeedData  string        `json:"seed_data"`
	Instances int           `json:"instances"`
	Variant   string        `json:"variant"`
	Seed      int           `json:"seed"`
	// The setting's generation options, absent when unset so that the
	// steps of a spec without them keep their IDs.
	System    string   `json:"system,omitempty"`
	Stop      []string `json:"stop,omitempty"`
	Languages []string `json:"languages,omitempty"`
	Fixing    bool     `json:"fixing,omitempty"`
	Topics    []string `json:"topics,omitempty"`
	Openings  []string `json:"openings,omitempty"`
}

func (c *compiler) generateStep(g *spec.Generator, s *spec.Setting, cl cell, tpl *template) plan.Step {
	in := generateInputs{Kind: plan.KindGenerate, Provider: g.Provider.Kind(), Model: g.Model, Sampling: g.Sampling,
		Domain: s.Domain, Method: s.Method, Prompt: tpl.digest, SeedData: s.SeedData.Ref(),
		Instances: cl.Instances, Variant: cl.Variant, Seed: cl.Seed,
		System: s.Prompt.System, Stop: s.Prompt.Stop, Fixing: s.Prompt.Fixing, Topics: s.Prompt.Topics, Openings: s.Prompt.Openings}
	if s.Multilingual() {
		in.Languages = s.CodeLanguages()
	}
	switch {
	case g.Provider.OpenAI != nil:
		in.Endpoint = strings.TrimRight(g.Provider.OpenAI.BaseURL, "/")
	case g.Provider.VLLM != nil:
		in.Endpoint = "vllm:" + g.Provider.VLLM.Path + ":" + g.Provider.VLLM.DType
	}
	if s.Method != spec.MethodInstance && cl.Instances > s.SeedData.Size {
		c.warn(fmt.Sprintf("%s: %d instances from %d seed items: some seed items are used more than once", cl.Setting, cl.Instances, s.SeedData.Size))
	}
	return plan.Step{
		Address:   fmt.Sprintf("generate.%s.%s.n%d.%s.s%d", cl.Generator, cl.Setting, cl.Instances, cl.Variant, cl.Seed),
		Kind:      plan.KindGenerate,
		Generator: cl.Generator,
		Setting:   cl.Setting,
		Instances: cl.Instances,
		Variant:   cl.Variant,
		Seed:      intPtr(cl.Seed),
		Executor:  executorOf(g),
		Estimate:  c.estimateGenerate(g, s, cl, tpl),
		Inputs:    c.canonical(in),
	}
}

func (c *compiler) warn(w string) {
	for _, x := range c.warnings {
		if x == w {
			return
		}
	}
	c.warnings = append(c.warnings, w)
}

type trainInputs struct {
	Kind            string               `json:"kind"`
	Data            string               `json:"data"`
	SeedData        string               `json:"seed_data,omitempty"`
	Base            string               `json:"base"`
	Trainer         string               `json:"trainer"`
	Command         string               `json:"command,omitempty"`
	Hyperparameters spec.Hyperparameters `json:"hyperparameters"`
}

func (c *compiler) trainStep(s *spec.Setting, cl cell, genID string) plan.Step {
	st := c.exp.Student
	in := trainInputs{Kind: plan.KindTrain, Data: genID, Base: st.Base, Trainer: st.Trainer, Command: st.Command,
		Hyperparameters: st.Hyperparameters}
	if s.Method == spec.MethodInstance {
		in.SeedData = s.SeedData.Ref()
	}
	return plan.Step{
		Address:   fmt.Sprintf("train.%s.%s.n%d.%s.s%d", cl.Generator, cl.Setting, cl.Instances, cl.Variant, cl.Seed),
		Kind:      plan.KindTrain,
		Needs:     []string{genID},
		Generator: cl.Generator,
		Setting:   cl.Setting,
		Instances: cl.Instances,
		Variant:   cl.Variant,
		Seed:      intPtr(cl.Seed),
		Executor:  st.Executor,
		Estimate:  c.estimateTrain(s, cl),
		Inputs:    c.canonical(in),
	}
}

type evalInputs struct {
	Kind      string `json:"kind"`
	Model     string `json:"model"`
	Benchmark string `json:"benchmark"`
	Harness   string `json:"harness"`
	Command   string `json:"command,omitempty"`
	Items     int    `json:"items"`
	Judge     string `json:"judge,omitempty"`
	FewShot   bool   `json:"few_shot"`
}

// evalStep evaluates the base or reference model (trainID empty) or the
// student trained by trainID on benchmark b.
func (c *compiler) evalStep(role string, b *spec.Benchmark, s *spec.Setting, trainID string, cl cell) plan.Step {
	st := c.exp.Student
	in := evalInputs{Kind: plan.KindEvaluate, Benchmark: b.Name, Harness: b.Harness, Command: b.Command, Items: b.Items,
		FewShot: role == "base"}
	if b.Judge != nil {
		in.Judge = b.Judge.Model
	}
	step := plan.Step{Kind: plan.KindEvaluate, Model: role, Benchmark: b.Name, Executor: c.exp.Evaluation.Executor,
		Estimate: c.estimateEval(b), Needs: []string{}}
	switch role {
	case "base":
		in.Model = "base:" + st.Base
		step.Address = "evaluate.base." + b.Name
	case "reference":
		in.Model = "reference:" + st.Reference
		step.Address = "evaluate.reference." + b.Name
	default:
		in.Model = "student:" + trainID
		step.Address = fmt.Sprintf("evaluate.%s.%s.n%d.%s.s%d.%s", cl.Generator, cl.Setting, cl.Instances, cl.Variant, cl.Seed, b.Name)
		step.Needs = []string{trainID}
		step.Generator, step.Setting, step.Instances, step.Variant, step.Seed = cl.Generator, cl.Setting, cl.Instances, cl.Variant, intPtr(cl.Seed)
	}
	step.Inputs = c.canonical(in)
	return step
}

type scoreInputs struct {
	Kind      string   `json:"kind"`
	Student   []string `json:"student"`
	Base      []string `json:"base"`
	Reference []string `json:"reference"`
}

func (c *compiler) scoreStep(cl cell, student, base, ref []string) plan.Step {
	needs := append(append(append([]string{}, student...), base...), ref...)
	return plan.Step{
		Address:   fmt.Sprintf("score.%s.%s.n%d.%s.s%d", cl.Generator, cl.Setting, cl.Instances, cl.Variant, cl.Seed),
		Kind:      plan.KindScore,
		Needs:     needs,
		Generator: cl.Generator,
		Setting:   cl.Setting,
		Instances: cl.Instances,
		Variant:   cl.Variant,
		Seed:      intPtr(cl.Seed),
		Executor:  "local",
		Inputs:    c.canonical(scoreInputs{Kind: plan.KindScore, Student: student, Base: base, Reference: ref}),
	}
}

func (c *compiler) totals(p *plan.Plan) {
	t := plan.Totals{ByGenerator: map[string]plan.GeneratorTotal{}}
	p.Counts = plan.Counts{Create: map[string]int{}, Noop: map[string]int{}}
	for _, name := range sortedKeys(c.exp.Generators) {
		t.ByGenerator[name] = plan.GeneratorTotal{}
	}
	for _, s := range p.Steps {
		if s.Action == plan.ActionNoop {
			p.Counts.Noop[s.Kind]++
			continue
		}
		p.Counts.Create[s.Kind]++
		e := s.Estimate
		t.USD += e.USD
		t.WorstUSD += e.WorstUSD
		t.GPUHours += e.GPUHours
		t.InputTokens += e.InputTokens
		t.OutputTokens += e.OutputTokens
		owner := c.owner[s.ID]
		if owner == "" {
			t.Shared.Add(e)
			continue
		}
		gt := t.ByGenerator[owner]
		if s.Kind == plan.KindGenerate {
			gt.Instances += s.Instances
		}
		// Every step it owns, in tokens as in dollars (its metric steps'
		// judge and embedding tokens too), so the rows add up to the total.
		gt.InputTokens += e.InputTokens
		gt.OutputTokens += e.OutputTokens
		gt.USD += e.USD
		gt.WorstUSD += e.WorstUSD
		gt.GPUHours += e.GPUHours
		t.ByGenerator[owner] = gt
	}
	p.Totals = t
}

// time estimates the wall-clock of the steps to run (package eta).
func (c *compiler) time(p *plan.Plan) {
	done := map[string]bool{}
	for _, s := range p.Steps {
		if s.Action == plan.ActionNoop {
			done[s.ID] = true
		}
	}
	t := eta.Plan(c.exp, p, done)
	p.Time = plan.Time{Generation: t.Generation, Slowest: t.Slowest, Jobs: t.Jobs, Total: t.Total}
	if len(t.Generators) > 0 {
		p.Time.Generators = t.Generators
	}
}

// judgeRemaining scales the estimate of each judge step still to run by
// the share of its judgements without a readable score yet.
func (c *compiler) judgeRemaining(ctx context.Context, jp JudgeProgress) error {
	var ids []string
	for _, s := range c.steps {
		if s.Kind == plan.KindJudge && s.Action != plan.ActionNoop {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	judged, err := jp.JudgedItems(ctx, ids)
	if err != nil {
		return err
	}
	for i := range c.steps {
		s := &c.steps[i]
		n, total := judged[s.ID], s.Estimate.Requests
		if s.Kind != plan.KindJudge || n <= 0 || total <= 0 {
			continue
		}
		f := max(0, float64(total-int64(n))/float64(total))
		e := &s.Estimate
		e.USD *= f
		e.WorstUSD *= f
		e.GPUHours *= f
		e.InputTokens = int64(float64(e.InputTokens) * f)
		e.OutputTokens = int64(float64(e.OutputTokens) * f)
		e.Requests = max(0, total-int64(n))
	}
	return nil
}
