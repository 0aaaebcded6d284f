package spec

import (
	"slices"
	"sort"
)

// GridCell is one point of the grid: a generator producing a setting's
// data with N instances, a prompt variant and a seed.
type GridCell struct {
	Generator string
	Setting   string
	Instances int
	Variant   string
	Seed      int
}

// DefaultGridSeed is the generation seed when the grid names none: the
// paper's training seed.
const DefaultGridSeed = 42

// VariantFile is the variant of a setting whose meta-prompt is the user's
// own file.
const VariantFile = "file"

// Cells lists the grid's cells in a stable order: generators and settings
// as the grid lists them (CUE does not keep declaration order, so
// otherwise generators sorted by name and settings built-ins first in the
// paper's order), then instance counts, variants and seeds; cells matching
// an exclude pattern are dropped and included cells appended.
func (e *Experiment) Cells() []GridCell {
	cells, _ := e.expandGrid()
	return cells
}

// expandGrid returns the selected cells and how many the product had
// before grid.exclude.
func (e *Experiment) expandGrid() ([]GridCell, int) {
	g := e.Grid
	gens := g.Generators
	if len(gens) == 0 {
		gens = sortedKeys(e.Generators)
	}
	sets := g.Settings
	if len(sets) == 0 {
		sets = SettingOrder(e.Settings)
	}
	seeds := g.Seeds
	if len(seeds) == 0 {
		seeds = []int{DefaultGridSeed}
	}
	var cells []GridCell
	product := 0
	seen := map[GridCell]bool{}
	add := func(c GridCell) {
		if !seen[c] {
			seen[c] = true
			cells = append(cells, c)
		}
	}
	for _, gn := range gens {
		for _, sn := range sets {
			s := e.Settings[sn]
			if s == nil {
				continue
			}
			counts := g.Instances
			if len(counts) == 0 {
				counts = []int{s.Instances}
			}
			for _, n := range counts {
				for _, v := range variantsOf(g.Variants, s) {
					for _, seed := range seeds {
						product++
						c := GridCell{Generator: gn, Setting: sn, Instances: n, Variant: v, Seed: seed}
						if !excluded(c, g.Exclude) {
							add(c)
						}
					}
				}
			}
		}
	}
	for _, inc := range g.Include {
		s := e.Settings[inc.Setting]
		if s == nil {
			continue
		}
		c := GridCell{Generator: inc.Generator, Setting: inc.Setting, Instances: inc.Instances, Variant: inc.Variant, Seed: seeds[0]}
		if c.Instances == 0 {
			c.Instances = s.Instances
		}
		if c.Variant == "" || s.Prompt.File != "" {
			c.Variant = variantsOf(nil, s)[0]
		}
		if inc.Seed != nil {
			c.Seed = *inc.Seed
		}
		add(c)
	}
	return cells, product
}

func variantsOf(grid []string, s *Setting) []string {
	if s.Prompt.File != "" {
		return []string{VariantFile}
	}
	if len(grid) > 0 {
		return grid
	}
	return []string{s.Prompt.Variant}
}

func excluded(c GridCell, patterns []Cell) bool {
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

// SettingOrder puts built-in settings in the paper's order, then the
// user's own sorted by name.
func SettingOrder(m map[string]*Setting) []string {
	builtin := BuiltinSettings()
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
