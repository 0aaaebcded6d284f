package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Point is one configuration's cost in US dollars and its PGR.
type Point struct {
	Label string  `json:"label"`
	Cost  float64 `json:"cost_usd"`
	PGR   float64 `json:"pgr"`
}

// Frontier returns the Pareto-efficient points, cheapest first: those for
// which no other point costs at most as much and reaches at least as high
// a PGR, one of the two strictly. Of identical points the first by label
// is kept. Points with a NaN or infinite value are left out.
func Frontier(points []Point) []Point {
	ps := make([]Point, 0, len(points))
	for _, p := range points {
		if finite(p.Cost) && finite(p.PGR) {
			ps = append(ps, p)
		}
	}
	// The order is total up to identical points, so an unstable sort
	// gives the same result as a stable one (and is much faster on the
	// million points of a large results file).
	slices.SortFunc(ps, func(a, b Point) int {
		if a.Cost != b.Cost {
			return cmp.Compare(a.Cost, b.Cost)
		}
		if a.PGR != b.PGR {
			return cmp.Compare(b.PGR, a.PGR)
		}
		return strings.Compare(a.Label, b.Label)
	})
	var out []Point
	for _, p := range ps {
		// Sorted by cost, then PGR descending: p is dominated exactly when
		// an earlier point reached at least its PGR.
		if len(out) == 0 || p.PGR > out[len(out)-1].PGR {
			out = append(out, p)
		}
	}
	return out
}

// Cheapest is the cheapest point reaching PGR ≥ target (ties: the higher
// PGR, then the first label). When none does, ok is false and best is the
// point with the highest PGR (ties: the cheaper), for the message.
func Cheapest(points []Point, target float64) (p Point, ok bool, best Point) {
	for _, q := range points {
		if !finite(q.Cost) || !finite(q.PGR) {
			continue
		}
		if q.PGR >= target {
			if !ok || q.Cost < p.Cost || (q.Cost == p.Cost && (q.PGR > p.PGR || (q.PGR == p.PGR && q.Label < p.Label))) {
				p, ok = q, true
			}
		}
		if best.Label == "" || q.PGR > best.PGR || (q.PGR == best.PGR && q.Cost < best.Cost) {
			best = q
		}
	}
	return p, ok, best
}

// String is "label: PGR 41.2 for $12.34".
func (p Point) String() string {
	return fmt.Sprintf("%s: PGR %.1f for $%.2f", p.Label, p.PGR, p.Cost)
}
