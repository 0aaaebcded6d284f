package analysis

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Fit is a simple linear regression y = Intercept + Slope × x by ordinary
// least squares, with the two-sided p-value of the slope from Student's t
// distribution with N − 2 degrees of freedom.
type Fit struct {
	N         int     `json:"n"`
	Slope     float64 `json:"slope"`
	Intercept float64 `json:"intercept"`
	R2        float64 `json:"r2"`
	// SlopeSE is the slope's standard error, T = Slope / SlopeSE, and P
	// the probability of a |t| at least as large if the true slope were
	// zero.
	SlopeSE float64 `json:"slope_se"`
	T       float64 `json:"t"`
	DF      int     `json:"df"`
	P       float64 `json:"p"`
}

// SimpleOLS fits y on x. It is an error when the lengths differ, a value
// is NaN or infinite, there are fewer than three points (no degree of
// freedom for the error), or x or y has zero variance (no slope, or no R²).
// A perfect fit has SlopeSE 0, an infinite T and P 0.
func SimpleOLS(x, y []float64) (Fit, error) {
	if len(x) != len(y) {
		return Fit{}, fmt.Errorf("%d x values but %d y values", len(x), len(y))
	}
	if err := allFinite(x, "x"); err != nil {
		return Fit{}, err
	}
	if err := allFinite(y, "y"); err != nil {
		return Fit{}, err
	}
	n := len(x)
	if n < 3 {
		return Fit{}, fmt.Errorf("n = %d: a regression needs at least 3 points", n)
	}
	mx, my := meanOf(x), meanOf(y)
	var sxx, sxy, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return Fit{}, fmt.Errorf("x has zero variance (every value is %s): no slope", fmtScore(x[0]))
	}
	if syy == 0 {
		return Fit{}, fmt.Errorf("y has zero variance (every value is %s): R² is undefined", fmtScore(y[0]))
	}
	f := Fit{N: n, DF: n - 2}
	f.Slope = sxy / sxx
	f.Intercept = my - f.Slope*mx
	sse := 0.0
	for i := range x {
		r := y[i] - (f.Intercept + f.Slope*x[i])
		sse += r * r
	}
	f.R2 = clamp01(1 - sse/syy)
	f.SlopeSE = math.Sqrt(sse / float64(f.DF) / sxx)
	f.T, f.P = tTest(f.Slope, f.SlopeSE, f.DF)
	return f, nil
}

// tTest is the t statistic and two-sided p-value of est with standard
// error se; a zero se (a perfect fit) gives an infinite t and p = 0.
func tTest(est, se float64, df int) (t, p float64) {
	if se == 0 {
		if est == 0 {
			return 0, 1
		}
		return math.Copysign(math.Inf(1), est), 0
	}
	t = est / se
	st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}
	return t, clamp01(2 * st.Survival(math.Abs(t)))
}

// MultiFit is a linear regression of y on several predictors with an
// intercept, by ordinary least squares, with the F test of the whole
// regression (all slopes zero) on K and N − K − 1 degrees of freedom.
type MultiFit struct {
	N int `json:"n"`
	K int `json:"k"`
	// Coef is the intercept, then one slope per predictor.
	Coef  []float64 `json:"coefficients"`
	R2    float64   `json:"r2"`
	AdjR2 float64   `json:"adj_r2"`
	F     float64   `json:"f"`
	DF1   int       `json:"df1"`
	DF2   int       `json:"df2"`
	P     float64   `json:"p"`
}

// MultipleOLS fits y on the columns of x (x[i] is observation i's
// predictors). It is an error when the shapes disagree, a value is NaN or
// infinite, there are fewer than K + 2 observations, y has zero variance,
// or the predictors are collinear (a predictor constant or a combination
// of the others).
func MultipleOLS(x [][]float64, y []float64) (MultiFit, error) {
	n := len(y)
	if len(x) != n {
		return MultiFit{}, fmt.Errorf("%d rows of predictors but %d y values", len(x), n)
	}
	if n == 0 {
		return MultiFit{}, errors.New("n = 0: nothing to regress")
	}
	k := len(x[0])
	if k == 0 {
		return MultiFit{}, errors.New("no predictors")
	}
	for i, row := range x {
		if len(row) != k {
			return MultiFit{}, fmt.Errorf("row %d has %d predictors, row 1 has %d", i+1, len(row), k)
		}
		if err := allFinite(row, fmt.Sprintf("row %d", i+1)); err != nil {
			return MultiFit{}, err
		}
	}
	if err := allFinite(y, "y"); err != nil {
		return MultiFit{}, err
	}
	if n < k+2 {
		return MultiFit{}, fmt.Errorf("n = %d: a regression on %d predictors needs at least %d observations", n, k, k+2)
	}
	my := meanOf(y)
	sst := 0.0
	for _, v := range y {
		sst += (v - my) * (v - my)
	}
	if sst == 0 {
		return MultiFit{}, fmt.Errorf("y has zero variance (every value is %s): R² is undefined", fmtScore(y[0]))
	}
	// Centre the predictors: the slopes are those of the centred problem
	// and the intercept follows from the means, which keeps the design
	// well conditioned.
	means := make([]float64, k)
	for j := 0; j < k; j++ {
		for i := 0; i < n; i++ {
			means[j] += x[i][j]
		}
		means[j] /= float64(n)
	}
	a := mat.NewDense(n, k, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			a.Set(i, j, x[i][j]-means[j])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return MultiFit{}, errors.New("the least-squares problem could not be factorised")
	}
	sv := svd.Values(nil)
	if sv[0] == 0 || sv[len(sv)-1] <= 1e-10*sv[0] {
		return MultiFit{}, errors.New("the predictors are collinear (one is constant or a combination of the others)")
	}
	yc := mat.NewDense(n, 1, nil)
	for i, v := range y {
		yc.Set(i, 0, v-my)
	}
	var beta mat.Dense
	svd.SolveTo(&beta, yc, len(sv))
	f := MultiFit{N: n, K: k, DF1: k, DF2: n - k - 1, Coef: make([]float64, k+1)}
	f.Coef[0] = my
	for j := 0; j < k; j++ {
		f.Coef[j+1] = beta.At(j, 0)
		f.Coef[0] -= beta.At(j, 0) * means[j]
	}
	sse := 0.0
	for i := 0; i < n; i++ {
		pred := f.Coef[0]
		for j := 0; j < k; j++ {
			pred += f.Coef[j+1] * x[i][j]
		}
		sse += (y[i] - pred) * (y[i] - pred)
	}
	f.R2 = clamp01(1 - sse/sst)
	f.AdjR2 = 1 - (1-f.R2)*float64(n-1)/float64(f.DF2)
	if f.R2 == 1 {
		f.F, f.P = math.Inf(1), 0
	} else {
		f.F = (f.R2 / float64(k)) / ((1 - f.R2) / float64(f.DF2))
		fd := distuv.F{D1: float64(k), D2: float64(f.DF2)}
		f.P = clamp01(fd.Survival(f.F))
	}
	return f, nil
}

// MarshalJSON writes an infinite F (a perfect fit) as null.
func (f MultiFit) MarshalJSON() ([]byte, error) {
	type plain MultiFit
	return json.Marshal(struct {
		plain
		F *float64 `json:"f"`
	}{plain(f), finitePtr(f.F)})
}

// MarshalJSON writes an infinite t (a perfect fit) as null.
func (f Fit) MarshalJSON() ([]byte, error) {
	type plain Fit
	return json.Marshal(struct {
		plain
		T *float64 `json:"t"`
	}{plain(f), finitePtr(f.T)})
}

func finitePtr(v float64) *float64 {
	if !finite(v) {
		return nil
	}
	return &v
}

func allFinite(xs []float64, what string) error {
	for i, v := range xs {
		if !finite(v) {
			return fmt.Errorf("%s value %d is %v, not a number", what, i+1, v)
		}
	}
	return nil
}

func meanOf(xs []float64) float64 {
	s := 0.0
	for _, v := range xs {
		s += v
	}
	return s / float64(len(xs))
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }
