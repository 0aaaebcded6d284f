package compiler

import (
	"sort"

	"github.com/agorabench/agora/spec"
)

// cell is one point of the grid (spec.Experiment.Cells).
type cell = spec.GridCell

// variantFile is the variant of a setting whose meta-prompt is the user's
// own file.
const variantFile = spec.VariantFile

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
