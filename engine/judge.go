package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agorabench/agora/executors/retry"
	"github.com/agorabench/agora/metrics"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// judgeInputs mirror the compiler's inputs of a judge step.
type judgeInputs struct {
	Domain   string   `json:"domain"`
	Aspects  []string `json:"aspects"`
	Sample   int      `json:"sample"`
	Seed     int      `json:"seed"`
	Attempts int      `json:"attempts"`
	Suffix   string   `json:"suffix"`
	System   string   `json:"system"`
}

type judgeRunner struct{ metricRunner }

// judgeDetail is the detail of a judge metric.
type judgeDetail struct {
	Model        string  `json:"model"`
	Distribution []int   `json:"distribution"`
	SD           float64 `json:"sd"`
	// Unreadable counts the aspect's judgements that could not be read
	// (each was asked again); GivenUp the items it left out after every
	// attempt. Both count every run of the step.
	Unreadable int `json:"unreadable"`
	GivenUp    int `json:"given_up"`
}

func (r judgeRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in judgeInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("judge inputs: %w", err)
	}
	j := e.exp.Metrics.JudgeBySuffix(in.Suffix)
	if j == nil || j.Gen == nil || j.Prompt == nil {
		return "", fmt.Errorf("the spec has no metrics.judge%s: plan again", in.Suffix)
	}
	g := j.Gen
	m, err := r.open(ctx, s, in.Sample, in.Seed, g)
	if err != nil {
		return "", err
	}
	defer m.release()
	ms, items, prov := m.ms, m.items, m.prov
	if err := r.begin(ctx, s, len(items)*len(in.Aspects)); err != nil {
		return "", err
	}
	type key struct {
		slot   int
		aspect string
	}
	prior, err := ms.Judgements(ctx, s.ID)
	if err != nil {
		return "", err
	}
	scores := map[key]int{}
	last := map[key]int{}          // the last attempt recorded, over every run
	unreadable := map[string]int{} // by aspect
	givenUp := map[string]int{}    // by aspect
	for _, j := range prior {
		k := key{j.Slot, j.Aspect}
		last[k] = max(last[k], j.Attempt)
		if j.Error == "" {
			scores[k] = j.Score
		} else {
			unreadable[j.Aspect]++
		}
	}
	// An item keeps its attempts across runs: one given up after all of
	// them stays given up, and one cut short by a stop gets only those
	// left.
	var todo []key
	for _, a := range in.Aspects {
		for _, it := range items {
			k := key{it.slot, a}
			if _, ok := scores[k]; ok {
				continue
			}
			if last[k] >= in.Attempts {
				givenUp[a]++
				continue
			}
			todo = append(todo, k)
		}
	}
	bySlot := map[int]metricItem{}
	for _, it := range items {
		bySlot[it.slot] = it
	}
	sp := e.prog.add(s.Address, len(items)*len(in.Aspects), len(items)*len(in.Aspects)-len(todo), s.Generator)
	defer e.prog.remove(sp)

	var (
		mu              sync.Mutex
		readable        = len(scores)
		unreadableStart int // unreadable judgements before the first readable one in this run
		lastWhy         string
	)
	err = r.parallel(ctx, len(todo), g.Limits.Concurrency, func(i int) error {
		k := todo[i]
		it := bySlot[k.slot]
		sys, prompt, err := j.Prompt.Messages(k.aspect, in.Domain, it.instruction, it.response)
		if err != nil {
			return err
		}
		msgs := judgeMessages(sys, prompt, in.System)
		mu.Lock()
		done := last[k]
		mu.Unlock()
		for n := done; n < in.Attempts; n++ {
			if e.stopped() || ctx.Err() != nil {
				return errStopped
			}
			reserved := worstCase(msgs, g)
			res, err := r.reserve(s, reserved)
			if err != nil {
				return err
			}
			c, err := prov.Complete(e.sending(ctx), msgs)
			if err != nil {
				res.Settle(0)
				if ctx.Err() != nil || errors.Is(err, retry.ErrStopped) {
					return errStopped
				}
				return err
			}
			v := judgeUsage(g, c, promptBound(g, msgs), g.Sampling.MaxTokens, reserved)
			cost := v.cost
			c.PromptTokens, c.CompletionTokens = v.in, v.out
			score, _, perr := metrics.ParseJudgement(c.Text)
			if v.reject != "" {
				perr = errors.New(v.reject)
			}
			mu.Lock()
			last[k]++
			attempt := last[k]
			mu.Unlock()
			rec := state.Judgement{StepID: s.ID, Slot: k.slot, Aspect: k.aspect, Attempt: attempt, Score: score, Raw: capRaw(c.Text, perr == nil),
				Model: c.Model, InputTokens: c.PromptTokens, OutputTokens: c.CompletionTokens, CostUSD: cost}
			if perr != nil {
				rec.Error = perr.Error()
			}
			if err := ms.RecordJudgement(context.WithoutCancel(ctx), rec); err != nil {
				res.Settle(cost)
				return err
			}
			if err := settle(res, v); err != nil {
				return err
			}
			sp.record(c.PromptTokens, c.CompletionTokens, cost, perr == nil)
			mu.Lock()
			if perr == nil {
				scores[k] = score
				readable++
				mu.Unlock()
				return nil
			}
			unreadable[k.aspect]++
			lastWhy = perr.Error()
			if readable == 0 {
				unreadableStart++
			}
			bad := readable == 0 && unreadableStart >= unreadableRun
			mu.Unlock()
			if bad {
				return fmt.Errorf("judge %s: the first %d judgements could not be read (last: %s); see docs/metrics.md for the format it must follow", g.Name, unreadableRun, lastWhy)
			}
		}
		mu.Lock()
		givenUp[k.aspect]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", err
	}
	var results []state.Metric
	for _, a := range in.Aspects {
		var xs []int
		for _, it := range items {
			if v, ok := scores[key{it.slot, a}]; ok {
				xs = append(xs, v)
			}
		}
		if len(xs) == 0 {
			return "", fmt.Errorf("judge %s: no readable %s judgement (last: %s)", g.Name, a+in.Suffix, lastWhy)
		}
		sum, err := metrics.SummarizeScores(xs)
		if err != nil {
			return "", err
		}
		detail, _ := json.Marshal(judgeDetail{Model: g.Model, Distribution: sum.Distribution, SD: sum.SD, Unreadable: unreadable[a], GivenUp: givenUp[a]})
		results = append(results, state.Metric{Name: a + in.Suffix, Value: sum.Mean, N: sum.N, Low: &sum.Low, High: &sum.High, Detail: string(detail)})
	}
	return r.finish(ctx, ms, s, "", results)
}

// judgeMessages lays a template's messages out: the system message as
// one (spec.SystemMessage), or at the top of the user message
// (spec.SystemPrepend) for a judge whose chat template has no system
// role.
func judgeMessages(system, user, how string) []Message {
	switch {
	case system == "":
		return []Message{{Role: "user", Content: user}}
	case how == spec.SystemPrepend:
		return []Message{{Role: "user", Content: system + "\n\n" + user}}
	}
	return []Message{{Role: "system", Content: system}, {Role: "user", Content: user}}
}
