package analysis

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// PCA is a principal component analysis of standardised features: the
// eigen-decomposition of their correlation matrix.
type PCA struct {
	Features []string `json:"features"`
	N        int      `json:"n"`
	// Means and SDs are each feature's mean and sample standard deviation
	// (divisor N − 1), used to standardise it.
	Means []float64 `json:"means"`
	SDs   []float64 `json:"sds"`
	// Eigenvalues of the correlation matrix, largest first; Explained is
	// each one's share of their sum (the number of features), Cumulative
	// the running total.
	Eigenvalues []float64 `json:"eigenvalues"`
	Explained   []float64 `json:"explained"`
	Cumulative  []float64 `json:"cumulative"`
	// Loadings[f][c] is feature f's weight in component c: the unit
	// eigenvectors, each signed so that its entry of largest magnitude
	// is positive.
	Loadings [][]float64 `json:"loadings"`
	// Scores[i][c] is observation i's coordinate on component c: its
	// standardised features times the loadings.
	Scores [][]float64 `json:"scores"`
}

// NewPCA computes the PCA of x (x[i] is observation i's features, named
// by features). It is an error when the shapes disagree, a value is NaN
// or infinite, there are fewer than two features or three observations,
// or a feature has zero variance (it cannot be standardised).
func NewPCA(features []string, x [][]float64) (*PCA, error) {
	p := len(features)
	if p < 2 {
		return nil, fmt.Errorf("%d feature(s): a PCA needs at least 2", p)
	}
	n := len(x)
	if n < 3 {
		return nil, fmt.Errorf("n = %d: a PCA needs at least 3 observations with every feature", n)
	}
	for i, row := range x {
		if len(row) != p {
			return nil, fmt.Errorf("observation %d has %d features, want %d", i+1, len(row), p)
		}
		for j, v := range row {
			if !finite(v) {
				return nil, fmt.Errorf("observation %d: %s is %v, not a number", i+1, features[j], v)
			}
		}
	}
	r := &PCA{Features: append([]string(nil), features...), N: n, Means: make([]float64, p), SDs: make([]float64, p)}
	z := mat.NewDense(n, p, nil)
	for j := 0; j < p; j++ {
		m := 0.0
		for i := 0; i < n; i++ {
			m += x[i][j]
		}
		m /= float64(n)
		ss := 0.0
		for i := 0; i < n; i++ {
			ss += (x[i][j] - m) * (x[i][j] - m)
		}
		sd := math.Sqrt(ss / float64(n-1))
		if sd == 0 {
			return nil, fmt.Errorf("feature %s has zero variance (every value is %s): it cannot be standardised; leave it out", features[j], fmtScore(x[0][j]))
		}
		r.Means[j], r.SDs[j] = m, sd
		for i := 0; i < n; i++ {
			z.Set(i, j, (x[i][j]-m)/sd)
		}
	}
	// The correlation matrix Zᵀ Z / (N − 1), symmetrised against rounding.
	var zz mat.Dense
	zz.Mul(z.T(), z)
	corr := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			corr.SetSym(i, j, (zz.At(i, j)+zz.At(j, i))/2/float64(n-1))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(corr, true) {
		return nil, errors.New("the eigen-decomposition of the correlation matrix did not converge")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, p)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	total := 0.0
	for i, v := range vals {
		if v < 0 { // rounding on a rank-deficient matrix (N ≤ features)
			vals[i] = 0
		}
		total += vals[i]
	}
	r.Loadings = make([][]float64, p)
	for f := range r.Loadings {
		r.Loadings[f] = make([]float64, p)
	}
	cum := 0.0
	for c, k := range order {
		r.Eigenvalues = append(r.Eigenvalues, vals[k])
		r.Explained = append(r.Explained, vals[k]/total)
		cum += vals[k] / total
		r.Cumulative = append(r.Cumulative, math.Min(cum, 1))
		// Sign: the entry of largest magnitude is positive.
		big := 0
		for f := 0; f < p; f++ {
			if math.Abs(vecs.At(f, k)) > math.Abs(vecs.At(big, k))+1e-12 {
				big = f
			}
		}
		sign := 1.0
		if vecs.At(big, k) < 0 {
			sign = -1
		}
		for f := 0; f < p; f++ {
			r.Loadings[f][c] = sign * vecs.At(f, k)
		}
	}
	r.Scores = make([][]float64, n)
	for i := 0; i < n; i++ {
		r.Scores[i] = make([]float64, p)
		for c := 0; c < p; c++ {
			s := 0.0
			for f := 0; f < p; f++ {
				s += z.At(i, f) * r.Loadings[f][c]
			}
			r.Scores[i][c] = s
		}
	}
	return r, nil
}

// ComponentsFor is the smallest number of components whose cumulative
// explained variance reaches share (0.9 for 90%).
func (r *PCA) ComponentsFor(share float64) int {
	for c, v := range r.Cumulative {
		if v >= share-1e-9 {
			return c + 1
		}
	}
	return len(r.Cumulative)
}

// Importance is a feature's loading strength, its mean absolute loading
// over the top K components (the paper's measure with K = 5), and that
// mean's share of the sum over all features.
type Importance struct {
	Feature        string  `json:"feature"`
	MeanAbsLoading float64 `json:"mean_abs_loading"`
	Share          float64 `json:"share"`
}

// Importance ranks the features by their mean absolute loading over the
// top k components, largest first (ties by name).
func (r *PCA) Importance(k int) ([]Importance, error) {
	if k < 1 || k > len(r.Eigenvalues) {
		return nil, fmt.Errorf("k = %d: want 1 to %d components", k, len(r.Eigenvalues))
	}
	out := make([]Importance, len(r.Features))
	sum := 0.0
	for f, name := range r.Features {
		m := 0.0
		for c := 0; c < k; c++ {
			m += math.Abs(r.Loadings[f][c])
		}
		m /= float64(k)
		out[f] = Importance{Feature: name, MeanAbsLoading: m}
		sum += m
	}
	for f := range out {
		out[f].Share = out[f].MeanAbsLoading / sum
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].MeanAbsLoading != out[b].MeanAbsLoading {
			return out[a].MeanAbsLoading > out[b].MeanAbsLoading
		}
		return out[a].Feature < out[b].Feature
	})
	return out, nil
}

// RegressOnComponents fits y (one value per observation, in the order
// the PCA was given) on the scores of the top k components.
func (r *PCA) RegressOnComponents(y []float64, k int) (MultiFit, error) {
	if k < 1 || k > len(r.Eigenvalues) {
		return MultiFit{}, fmt.Errorf("k = %d: want 1 to %d components", k, len(r.Eigenvalues))
	}
	if len(y) != r.N {
		return MultiFit{}, fmt.Errorf("%d responses for %d observations", len(y), r.N)
	}
	x := make([][]float64, r.N)
	for i := range x {
		x[i] = r.Scores[i][:k]
	}
	return MultipleOLS(x, y)
}
