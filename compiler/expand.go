package compiler

import (
	"slices"
	"sort"

	"github.com/agorabench/agora/spec"
)

// cell is one point of the grid: a generator producing a setting's data.
type cell struct {
	Generator string
	Setting   string
	Instances int
	Variant   string
	Seed      int
}

// defaultSeed is the generation seed when the grid names none: the
// paper's training seed.
const defaultSeed = 42

// variantFile is the variant of a setting whose meta-prompt is the user's
// own file.
const variantFile = "file"

// expand lists the grid's cells in a stable order: generators and
// settings as the grid lists them (declaration order is not kept by CUE,
// so otherwise sorted, built-in settings in the paper's order), then
// instance counts, variants and seeds.
func expand(exp *spec.Experiment) []cell {
	g := exp.Grid
	gens := g.Generators
	if len(gens) == 0 {
		gens = sortedKeys(exp.Generators)
	}
	sets := g.Settings
	if len(sets) == 0 {
		sets = settingOrder(exp.Settings)
	}
	seeds := g.Seeds
	if len(seeds) == 0 {
		seeds = []int{defaultSeed}
	}
	var cells []cell
	seen := map[cell]bool{}
	add := func(c cell) {
		if !seen[c] {
			seen[c] = true
			cells = append(cells, c)
		}
	}
	for _, gn := range gens {
		for _, sn := range sets {
			s := exp.Settings[sn]
			counts := g.Instances
			if len(counts) == 0 {
				counts = []int{s.Instances}
			}
			for _, n := range counts {
				for _, v := range variants(g.Variants, s) {
					for _, seed := range seeds {
						c := cell{Generator: gn, Setting: sn, Instances: n, Variant: v, Seed: seed}
						if !excluded(c, g.Exclude) {
							add(c)
						}
					}
				}
			}
		}
	}
	for _, inc := range g.Include {
		s := exp.Settings[inc.Setting]
		c := cell{Generator: inc.Generator, Setting: inc.Setting, Instances: inc.Instances, Variant: inc.Variant, Seed: seeds[0]}
		if c.Instances == 0 {
			c.Instances = s.Instances
		}
		if c.Variant == "" || s.Prompt.File != "" {
			c.Variant = variants(nil, s)[0]
		}
		if inc.Seed != nil {
			c.Seed = *inc.Seed
		}
		add(c)
	}
	return cells
}

func variants(grid []string, s *spec.Setting) []string {
	if s.Prompt.File != "" {
		return []string{variantFile}
	}
	if len(grid) > 0 {
		return grid
	}
	return []string{s.Prompt.Variant}
}

func excluded(c cell, patterns []spec.Cell) bool {
	for _, p := range patterns {
		if (p.Generator == "" || p.Generator == c.Generator) &&
			(p.Setting == "" || p.Setting == c.Setting) &&
			(p.Instances == 0 || p.Instances == c.Instances) &&
			(p.Variant == "" || p.Variant == c.Variant) &&
			(p.Seed == nil || *p.Seed == c.Seed) {
			return true
		}
	}
	return false
}

// settingOrder puts built-in settings in the paper's order, then the
// user's own sorted by name.
func settingOrder(m map[string]*spec.Setting) []string {
	builtin := spec.BuiltinSettings()
	rank := func(n string) int {
		if i := slices.Index(builtin, n); i >= 0 {
			return i
		}
		return len(builtin)
	}
	names := sortedKeys(m)
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
