package analysis

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func close(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, want %.17g", what, got, want)
	}
}

// The expected values below were computed independently with Python 3,
// NumPy 1.24 and SciPy 1.10 (Debian bookworm's python3-numpy and
// python3-scipy): scipy.stats.linregress for the simple regression;
// numpy.linalg.lstsq, then R² = 1 − SSE/SST, adjusted R² and F by their
// textbook formulas and scipy.stats.f.sf for the F test; numpy.corrcoef
// and numpy.linalg.eigh for the PCA, eigenvalues sorted descending and
// each eigenvector's largest-magnitude entry made positive.

func TestSimpleOLS(t *testing.T) {
	// scipy.stats.linregress([1,2,3,4,5], [2.1,3.9,6.2,7.8,10.1])
	f, err := SimpleOLS([]float64{1, 2, 3, 4, 5}, []float64{2.1, 3.9, 6.2, 7.8, 10.1})
	if err != nil {
		t.Fatal(err)
	}
	close(t, "slope", f.Slope, 1.99, 1e-12)
	close(t, "intercept", f.Intercept, 0.05000000000000071, 1e-12)
	close(t, "R²", f.R2, 0.997305328900977, 1e-12)
	close(t, "slope SE", f.SlopeSE, 0.059721576223897795, 1e-12)
	close(t, "p", f.P, 5.9415391117559265e-05, 1e-9)
	if f.N != 5 || f.DF != 3 {
		t.Errorf("n = %d, df = %d; want 5, 3", f.N, f.DF)
	}
}

func TestSimpleOLSByHand(t *testing.T) {
	// x = 0, 1, 2; y = 0, 2, 1: x̄ = 1, ȳ = 1, Sxx = 2, Sxy = 1, Syy = 2.
	// slope 1/2, intercept 1/2, SSE = Syy − slope·Sxy = 3/2, R² = 1/4,
	// SE = sqrt(SSE/1/Sxx) = sqrt(3)/2, t = 1/sqrt(3); with one degree of
	// freedom, P(|T| > t) = 1 − (2/π)·atan(t) = 1 − (2/π)(π/6) = 2/3.
	f, err := SimpleOLS([]float64{0, 1, 2}, []float64{0, 2, 1})
	if err != nil {
		t.Fatal(err)
	}
	close(t, "slope", f.Slope, 0.5, 1e-15)
	close(t, "intercept", f.Intercept, 0.5, 1e-15)
	close(t, "R²", f.R2, 0.25, 1e-15)
	close(t, "SE", f.SlopeSE, math.Sqrt(3)/2, 1e-15)
	close(t, "t", f.T, 1/math.Sqrt(3), 1e-15)
	close(t, "p", f.P, 2.0/3, 1e-12)
}

func TestSimpleOLSPerfectFit(t *testing.T) {
	f, err := SimpleOLS([]float64{1, 2, 3}, []float64{3, 5, 7})
	if err != nil {
		t.Fatal(err)
	}
	if f.Slope != 2 || f.Intercept != 1 || f.R2 != 1 || f.P != 0 || !math.IsInf(f.T, 1) {
		t.Errorf("perfect fit: %+v", f)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"t":null`) {
		t.Errorf("JSON of a perfect fit: %s", b)
	}
}

func TestSimpleOLSDegenerate(t *testing.T) {
	_, err := SimpleOLS([]float64{1, 2}, []float64{1, 2})
	wantErr(t, err, "n = 2", "at least 3")
	_, err = SimpleOLS([]float64{4, 4, 4}, []float64{1, 2, 3})
	wantErr(t, err, "x has zero variance", "every value is 4")
	_, err = SimpleOLS([]float64{1, 2, 3}, []float64{5, 5, 5})
	wantErr(t, err, "y has zero variance", "R²")
	_, err = SimpleOLS([]float64{1, 2, math.NaN()}, []float64{1, 2, 3})
	wantErr(t, err, "x value 3 is NaN")
	_, err = SimpleOLS([]float64{1, 2, 3}, []float64{1, 2})
	wantErr(t, err, "3 x values but 2 y values")
}

func TestMultipleOLS(t *testing.T) {
	x := [][]float64{{1, 3}, {2, 1}, {3, 4}, {4, 1}, {5, 5}, {6, 9}, {7, 2}, {8, 6}}
	y := []float64{3, 4, 8, 6, 11, 16, 10, 15}
	f, err := MultipleOLS(x, y)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0.07174103237096129, 1.1929133858267704, 0.9510061242344703} {
		close(t, "coefficient", f.Coef[i], want, 1e-10)
	}
	close(t, "R²", f.R2, 0.986105077968595, 1e-12)
	close(t, "adjusted R²", f.AdjR2, 0.980547109156033, 1e-12)
	close(t, "F", f.F, 177.42184442270064, 1e-9)
	close(t, "p", f.P, 2.2758324493756526e-05, 1e-8)
	if f.N != 8 || f.K != 2 || f.DF1 != 2 || f.DF2 != 5 {
		t.Errorf("shape %+v", f)
	}
}

func TestMultipleOLSDegenerate(t *testing.T) {
	_, err := MultipleOLS([][]float64{{1, 2}, {2, 3}, {3, 5}}, []float64{1, 2, 4})
	wantErr(t, err, "n = 3", "2 predictors", "at least 4")
	_, err = MultipleOLS([][]float64{{1, 2}, {2, 4}, {3, 6}, {4, 8}, {5, 10}}, []float64{1, 3, 2, 5, 4})
	wantErr(t, err, "collinear")
	_, err = MultipleOLS([][]float64{{1, 7}, {2, 7}, {3, 7}, {4, 7}}, []float64{1, 3, 2, 5})
	wantErr(t, err, "collinear")
	_, err = MultipleOLS([][]float64{{1}, {2}, {3}}, []float64{2, 2, 2})
	wantErr(t, err, "y has zero variance")
	_, err = MultipleOLS([][]float64{{1}, {math.Inf(1)}, {3}}, []float64{1, 2, 3})
	wantErr(t, err, "row 2 value 1 is +Inf")
	_, err = MultipleOLS(nil, nil)
	wantErr(t, err, "n = 0")
}

func TestPCAByHand(t *testing.T) {
	// a = 1, 2, 3 and b = 1, 3, 2: deviations (−1, 0, 1) and (−1, 1, 0),
	// variances 1 and 1, covariance 1/2, so the correlation is r = 1/2.
	// The eigenvalues of [[1, r], [r, 1]] are 1 + r = 1.5 and 1 − r = 0.5
	// (75% and 25% of 2), with eigenvectors (1, 1)/√2 and (1, −1)/√2.
	p, err := NewPCA([]string{"a", "b"}, [][]float64{{1, 1}, {2, 3}, {3, 2}})
	if err != nil {
		t.Fatal(err)
	}
	close(t, "λ1", p.Eigenvalues[0], 1.5, 1e-12)
	close(t, "λ2", p.Eigenvalues[1], 0.5, 1e-12)
	close(t, "explained 1", p.Explained[0], 0.75, 1e-12)
	close(t, "cumulative 2", p.Cumulative[1], 1, 1e-12)
	s := 1 / math.Sqrt2
	close(t, "loading a,1", p.Loadings[0][0], s, 1e-12)
	close(t, "loading b,1", p.Loadings[1][0], s, 1e-12)
	close(t, "loading a,2", p.Loadings[0][1], s, 1e-12)
	close(t, "loading b,2", p.Loadings[1][1], -s, 1e-12)
	// Observation 1 standardised: (−1, −1); its score on PC1 is −2/√2.
	close(t, "score 1,1", p.Scores[0][0], -math.Sqrt2, 1e-12)
	if k := p.ComponentsFor(0.9); k != 2 {
		t.Errorf("components for 90%% = %d, want 2", k)
	}
	if k := p.ComponentsFor(0.75); k != 1 {
		t.Errorf("components for 75%% = %d, want 1", k)
	}
	// Loading strength over both components: (1/√2 + 1/√2)/2 each, half
	// the sum each.
	imp, err := p.Importance(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imp {
		close(t, "loading strength of "+im.Feature, im.MeanAbsLoading, 1/math.Sqrt2, 1e-12)
		close(t, "share of "+im.Feature, im.Share, 0.5, 1e-12)
	}
}

func TestPCA(t *testing.T) {
	d := [][]float64{{2.0, 1.0, 3.5}, {3.0, 2.5, 2.0}, {4.0, 2.0, 4.5}, {5.0, 4.0, 1.0}, {6.0, 3.5, 3.0}, {7.0, 5.5, 2.5}}
	p, err := NewPCA([]string{"difficulty", "quality", "diversity"}, d)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{2.17874028797134, 0.793886623945052, 0.027373088083608603} {
		close(t, "eigenvalue", p.Eigenvalues[i], want, 1e-12)
	}
	for i, want := range []float64{0.7262467626571131, 0.2646288746483506, 0.009124362694536198} {
		close(t, "explained", p.Explained[i], want, 1e-12)
	}
	loadings := [][]float64{
		{0.6101584281605251, 0.4732702148596413, -0.6353912151355148},
		{0.668347874145252, 0.12320412256732363, 0.7335747155593199},
		{-0.42546188039611654, 0.8722591632703692, 0.24113510822913323},
	}
	for f := range loadings {
		for c := range loadings[f] {
			close(t, "loading", p.Loadings[f][c], loadings[f][c], 1e-10)
		}
	}
	scores := [][]float64{
		{-1.9514758981987432, -0.254778371345162, 0.03937373979994044},
		{-0.47102099269179776, -0.9631953565691206, 0.09212375376967553},
		{-1.230287633217811, 1.0466553911508238, 0.018794240481146324},
		{1.1604174271739096, -1.0595353564536927, -0.09548336976172646},
		{0.5763106708361638, 0.5912119766939606, -0.26808663606384275},
		{1.9160564260982784, 0.6396417165231908, 0.2132782717748067},
	}
	for i := range scores {
		for c := range scores[i] {
			close(t, "score", p.Scores[i][c], scores[i][c], 1e-10)
		}
	}
	k := p.ComponentsFor(0.9)
	if k != 2 {
		t.Fatalf("k = %d, want 2 (72.6%% then 99.1%%)", k)
	}
	imp, err := p.Importance(k)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]float64{
		"difficulty": {0.5417143215100833, 0.3414845614666749},
		"quality":    {0.3957759983562878, 0.24948831491289403},
		"diversity":  {0.6488605218332428, 0.40902712362043103},
	}
	if imp[0].Feature != "diversity" || imp[2].Feature != "quality" {
		t.Errorf("order %v, want diversity, difficulty, quality", imp)
	}
	for _, im := range imp {
		close(t, im.Feature+" mean |loading|", im.MeanAbsLoading, want[im.Feature][0], 1e-10)
		close(t, im.Feature+" share", im.Share, want[im.Feature][1], 1e-10)
	}
	fit, err := p.RegressOnComponents([]float64{10, 14, 13, 22, 20, 27}, k)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{17.666666666666668, 4.2856074645931175, 0.8461634989829467} {
		close(t, "coefficient", fit.Coef[i], want, 1e-10)
	}
	close(t, "R²", fit.R2, 0.9882492104502222, 1e-10)
	close(t, "adjusted R²", fit.AdjR2, 0.9804153507503703, 1e-10)
	close(t, "F", fit.F, 126.15099686670517, 1e-8)
	close(t, "p", fit.P, 0.0012737980289761594, 1e-8)
}

func TestPCADegenerate(t *testing.T) {
	_, err := NewPCA([]string{"a", "b"}, [][]float64{{1, 2}, {2, 3}})
	wantErr(t, err, "n = 2", "at least 3")
	_, err = NewPCA([]string{"a"}, [][]float64{{1}, {2}, {3}})
	wantErr(t, err, "1 feature", "at least 2")
	_, err = NewPCA([]string{"a", "b"}, [][]float64{{1, 5}, {2, 5}, {3, 5}})
	wantErr(t, err, "feature b has zero variance", "every value is 5")
	_, err = NewPCA([]string{"a", "b"}, [][]float64{{1, 5}, {2, math.NaN()}, {3, 5}})
	wantErr(t, err, "observation 2: b is NaN")
	// More features than observations: a rank-deficient correlation
	// matrix; its zero eigenvalues stay zero, never negative or NaN.
	p, err := NewPCA([]string{"a", "b", "c", "d"}, [][]float64{{1, 2, 0, 1}, {2, 1, 1, 3}, {3, 5, 0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range p.Explained {
		if math.IsNaN(v) || v < 0 {
			t.Errorf("explained[%d] = %v", i, v)
		}
	}
	close(t, "cumulative 2", p.Cumulative[1], 1, 1e-9)
	// A regression on a component with no variance is refused, not NaN.
	_, err = p.RegressOnComponents([]float64{1, 2, 4}, 3)
	wantErr(t, err, "n = 3")
	_, err = p.Importance(0)
	wantErr(t, err, "k = 0")
}

func TestFrontier(t *testing.T) {
	// By hand: c (cost 1, PGR 5) is cheapest; a (2, 10) beats it; b (3, 8)
	// is dominated by a; d (4, 20) is on it; e (4, 15) is dominated by d
	// (same cost, lower PGR); f (6, 20) by d (costlier, same PGR).
	pts := []Point{{"a", 2, 10}, {"b", 3, 8}, {"c", 1, 5}, {"d", 4, 20}, {"e", 4, 15}, {"f", 6, 20}, {"nan", math.NaN(), 99}}
	got := Frontier(pts)
	var labels []string
	for _, p := range got {
		labels = append(labels, p.Label)
	}
	if strings.Join(labels, ",") != "c,a,d" {
		t.Errorf("frontier %v, want c,a,d", labels)
	}
	if Frontier(nil) != nil {
		t.Error("frontier of nothing is not empty")
	}
	p, ok, _ := Cheapest(pts, 9)
	if !ok || p.Label != "a" {
		t.Errorf("cheapest ≥ 9: %v %v, want a", p, ok)
	}
	p, ok, _ = Cheapest(pts, 15)
	if !ok || p.Label != "d" {
		t.Errorf("cheapest ≥ 15: %v %v, want d (e costs the same with less)", p, ok)
	}
	_, ok, best := Cheapest(pts, 50)
	if ok || best.Label != "d" {
		t.Errorf("cheapest ≥ 50: ok %v best %v, want none and best d", ok, best)
	}
	if s := best.String(); s != "d: PGR 20.0 for $4.00" {
		t.Errorf("String() = %q", s)
	}
}
