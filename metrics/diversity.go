package metrics

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
)

// Diversity is the cosine-distance diversity of a set of embeddings
// (docs/metrics.md).
type Diversity struct {
	N int `json:"n"`
	// MeanPairwise is the mean cosine distance 1 − cos(u, v) over the
	// n(n−1)/2 unordered pairs of distinct items.
	MeanPairwise float64 `json:"mean_pairwise"`
	// ToCentroid is the mean over items of the cosine distance between
	// the item and the centroid of the unit-normalised embeddings.
	ToCentroid float64 `json:"to_centroid"`
}

// CosineDiversity computes both measures. Each embedding is normalised to
// unit length first (so an embedding's scale does not matter); with the
// unit vectors û_i and their sum S,
//
//	Σ_{i<j} cos(u_i, u_j) = (‖S‖² − n) / 2
//
// so the mean pairwise distance is 1 − (‖S‖² − n) / (n(n−1)), in O(n·d)
// rather than O(n²·d); and since the centroid c = S/n gives
// mean_i cos(û_i, c) = ‖c‖, the mean distance to the centroid is 1 − ‖S‖/n.
// It is an error when there are fewer than two embeddings, their
// dimensions differ, or one is zero or not finite.
func CosineDiversity(vecs [][]float64) (Diversity, error) {
	n := len(vecs)
	if n < 2 {
		return Diversity{}, fmt.Errorf("%d embedding(s): diversity needs at least 2", n)
	}
	d := len(vecs[0])
	if d == 0 {
		return Diversity{}, fmt.Errorf("embedding 1 is empty")
	}
	sum := make([]float64, d)
	unit := make([]float64, d)
	for i, v := range vecs {
		if len(v) != d {
			return Diversity{}, fmt.Errorf("embedding %d has %d dimensions, embedding 1 has %d", i+1, len(v), d)
		}
		norm := floats.Norm(v, 2)
		if norm == 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
			return Diversity{}, fmt.Errorf("embedding %d has norm %v: cosine distance is undefined", i+1, norm)
		}
		floats.ScaleTo(unit, 1/norm, v)
		floats.Add(sum, unit)
	}
	s2 := floats.Dot(sum, sum)
	nf := float64(n)
	out := Diversity{N: n,
		MeanPairwise: 1 - (s2-nf)/(nf*(nf-1)),
		ToCentroid:   1 - math.Sqrt(s2)/nf,
	}
	return out, nil
}

// PairwiseCosineDistances is the direct O(n²·d) mean of 1 − cos(u_i, u_j)
// over i < j; CosineDiversity's identity is tested against it.
func PairwiseCosineDistances(vecs [][]float64) float64 {
	var sum float64
	var pairs int
	for i := range vecs {
		for j := i + 1; j < len(vecs); j++ {
			c := floats.Dot(vecs[i], vecs[j]) / (floats.Norm(vecs[i], 2) * floats.Norm(vecs[j], 2))
			sum += 1 - c
			pairs++
		}
	}
	return sum / float64(pairs)
}
