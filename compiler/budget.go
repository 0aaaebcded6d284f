package compiler

import (
	"sort"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
)

// sharedName labels the cost no single generator owns.
const sharedName = "(base and reference evaluations)"

// checkBudgets compares every budget in the spec with the plan's totals
// and names the largest contributors to each.
func checkBudgets(exp *spec.Experiment, p *plan.Plan) {
	b := exp.Budgets
	worst := b.Check == spec.BudgetWorstCase
	basis := spec.BudgetExpected
	if worst {
		basis = spec.BudgetWorstCase
	}
	usdOf := func(gt plan.GeneratorTotal) float64 {
		if worst {
			return gt.WorstUSD
		}
		return gt.USD
	}
	add := func(name, unit string, limit, est float64, top []plan.Contributor, path string) {
		bud := plan.Budget{Name: name, Unit: unit, Limit: limit, Estimate: est, Basis: basis, OK: est <= limit,
			Source: exp.Source.Position(path)}
		if !bud.OK {
			bud.Over = est - limit
		}
		bud.Top = topN(top, 3)
		p.Budgets = append(p.Budgets, bud)
	}
	t := p.Totals
	if b.USD > 0 {
		var top []plan.Contributor
		for name, gt := range t.ByGenerator {
			top = append(top, plan.Contributor{Name: name, Amount: usdOf(gt)})
		}
		shared := t.Shared.USD
		if worst {
			shared = t.Shared.WorstUSD
		}
		top = append(top, plan.Contributor{Name: sharedName, Amount: shared})
		est := t.USD
		if worst {
			est = t.WorstUSD
		}
		add("usd", "usd", b.USD, est, top, "budgets.usd")
	}
	if b.GPUHours > 0 {
		var top []plan.Contributor
		for name, gt := range t.ByGenerator {
			top = append(top, plan.Contributor{Name: name, Amount: gt.GPUHours})
		}
		top = append(top, plan.Contributor{Name: sharedName, Amount: t.Shared.GPUHours})
		add("gpu_hours", "gpu_hours", b.GPUHours, t.GPUHours, top, "budgets.gpu_hours")
	}
	for _, name := range sortedKeys(b.PerGenerator) {
		pg := b.PerGenerator[name]
		gt := t.ByGenerator[name]
		stepsBy := func(amount func(plan.Estimate) float64) []plan.Contributor {
			var top []plan.Contributor
			for _, s := range p.Steps {
				if s.Generator == name && s.Action == plan.ActionCreate {
					top = append(top, plan.Contributor{Name: s.Address, Amount: amount(s.Estimate)})
				}
			}
			return top
		}
		if pg.USD > 0 {
			add("usd:"+name, "usd", pg.USD, usdOf(gt), stepsBy(func(e plan.Estimate) float64 {
				if worst {
					return e.WorstUSD
				}
				return e.USD
			}), spec.BudgetPath(name, "usd"))
		}
		if pg.GPUHours > 0 {
			add("gpu_hours:"+name, "gpu_hours", pg.GPUHours, gt.GPUHours, stepsBy(func(e plan.Estimate) float64 { return e.GPUHours }), spec.BudgetPath(name, "gpu_hours"))
		}
	}
}

func topN(cs []plan.Contributor, n int) []plan.Contributor {
	var out []plan.Contributor
	for _, c := range cs {
		if c.Amount > 0 {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Amount != out[j].Amount {
			return out[i].Amount > out[j].Amount
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
