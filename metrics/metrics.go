// Package metrics holds the arithmetic and the text formats of agora's
// intrinsic data-quality metrics (docs/metrics.md): the judge's per-domain
// rubrics and the parsing of its judgements, score summaries with their
// confidence intervals, the cosine-distance diversity measures, perplexity
// from a completions endpoint's echoed log-probabilities, the reward job's
// output file, and the seeded choice of the items a metric looks at. It
// calls nothing and stores nothing: the engine runs the metric steps, the
// compiler costs them.
package metrics

import (
	"hash/fnv"
	"math/rand/v2"
	"sort"
)

// Sample returns k of the indexes 0..n-1, chosen by seed and key (a data
// set's step id, so that two data sets get independent samples), in
// increasing order; every index when k <= 0 or k >= n.
func Sample(n, k int, seed int, key string) []int {
	if k <= 0 || k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	r := rand.New(rand.NewPCG(uint64(int64(seed)), h.Sum64()))
	// Partial Fisher–Yates: the first k of a uniform random permutation.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	for i := 0; i < k; i++ {
		j := i + r.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	out := idx[:k:k]
	sort.Ints(out)
	return out
}
