package metrics

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Confidence is the level of every confidence interval this package
// reports.
const Confidence = 0.95

// Summary describes a sample of values: its size, mean, sample standard
// deviation and the Student-t confidence interval of the mean.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
	// Low and High bound the 95% confidence interval of the mean:
	// mean ± t(0.975, n−1) · sd / √n. With n = 1 they equal the mean.
	Low  float64 `json:"ci_low"`
	High float64 `json:"ci_high"`
	// Distribution counts the values 1..5 of judge scores (index 0 is
	// score 1); nil for other metrics.
	Distribution []int `json:"distribution,omitempty"`
}

// Summarize computes the summary of xs. It is an error when xs is empty
// or holds a value that is not finite.
func Summarize(xs []float64) (Summary, error) {
	if len(xs) == 0 {
		return Summary{}, fmt.Errorf("no values")
	}
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Summary{}, fmt.Errorf("value %d is %v, not a finite number", i+1, x)
		}
	}
	s := Summary{N: len(xs)}
	if len(xs) == 1 {
		s.Mean, s.Low, s.High = xs[0], xs[0], xs[0]
		return s, nil
	}
	s.Mean, s.SD = stat.MeanStdDev(xs, nil)
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(xs) - 1)}.Quantile(1 - (1-Confidence)/2)
	half := t * s.SD / math.Sqrt(float64(len(xs)))
	s.Low, s.High = s.Mean-half, s.Mean+half
	return s, nil
}

// SummarizeScores summarizes judge scores (1..5) with their distribution.
func SummarizeScores(scores []int) (Summary, error) {
	xs := make([]float64, len(scores))
	dist := make([]int, MaxScore)
	for i, v := range scores {
		if v < MinScore || v > MaxScore {
			return Summary{}, fmt.Errorf("score %d is %d, not in %d..%d", i+1, v, MinScore, MaxScore)
		}
		xs[i] = float64(v)
		dist[v-1]++
	}
	s, err := Summarize(xs)
	if err != nil {
		return s, err
	}
	s.Distribution = dist
	return s, nil
}
