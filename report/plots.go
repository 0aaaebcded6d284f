package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/agorabench/agora/analysis"
)

// palette is a ten-colour qualitative palette that stays apart for
// viewers with the common colour-vision deficiencies (the Tableau 10
// hues); series beyond ten reuse it with another marker shape.
var palette = []color.RGBA{
	{0x4e, 0x79, 0xa7, 0xff}, {0xf2, 0x8e, 0x2b, 0xff}, {0xe1, 0x57, 0x59, 0xff}, {0x76, 0xb7, 0xb2, 0xff},
	{0x59, 0xa1, 0x4f, 0xff}, {0xed, 0xc9, 0x48, 0xff}, {0xb0, 0x7a, 0xa1, 0xff}, {0xff, 0x9d, 0xa7, 0xff},
	{0x9c, 0x75, 0x5f, 0xff}, {0xba, 0xb0, 0xac, 0xff},
}

func colorOf(i int) color.RGBA { return palette[i%len(palette)] }

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

var shapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{}, draw.CrossGlyph{}}

func shapeOf(i int) draw.GlyphDrawer { return shapes[(i/len(palette))%len(shapes)] }

// figure is a rendered plot: inline SVG and the legend entries drawn
// beside it in HTML.
type figure struct {
	SVG    string
	Legend []legendEntry
}

type legendEntry struct {
	Label, Color string
	Dashed       bool
}

const (
	plotWidth   = 8 * vg.Inch
	plotHeight  = 3.6 * vg.Inch
	smallWidth  = 4 * vg.Inch
	smallHeight = 2.8 * vg.Inch
)

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Add(plotter.NewGrid())
	p.Y.Tick.Marker = plainTicks{}
	p.X.Tick.Marker = plainTicks{}
	return p
}

var (
	svgWidth  = regexp.MustCompile(`\swidth="[0-9.]+pt"`)
	svgHeight = regexp.MustCompile(`\sheight="[0-9.]+pt"`)
)

// render draws p as SVG for inlining in HTML: without the XML prolog,
// scaling with the page (its viewBox kept, width 100%), and with the
// plot's font (Liberation Sans, metric-compatible with Arial) falling
// back to the page's sans-serif.
func render(p *plot.Plot, w, h vg.Length) (string, error) {
	wt, err := p.WriterTo(w, h, "svg")
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", fmt.Errorf("no <svg> element in the plot's output")
	}
	s = s[i:]
	end := strings.IndexByte(s, '>')
	tag := svgWidth.ReplaceAllString(s[:end], ` width="100%"`)
	tag = svgHeight.ReplaceAllString(tag, "")
	s = tag + s[end:]
	s = strings.ReplaceAll(s, "font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,'DejaVu Sans',sans-serif;")
	return s, nil
}

func init() {
	// Sans-serif plot text, matching the page.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	plotter.DefaultFont = plot.DefaultFont
}

// barsFigure is PGR by setting, one bar per table row in each setting's
// group. A missing cell has no bar (the table says why).
func barsFigure(t *analysis.Table) (*figure, error) {
	p := newPlot("PGR by setting", "setting", "PGR (%)")
	nRows := len(t.Rows)
	drawn := false
	for _, r := range t.Rows {
		drawn = drawn || anyValid(r.Settings)
	}
	if !drawn {
		return nil, nil // nothing to draw; the page says so
	}
	// The data area is about 7 of the 8 inches; each setting gets a
	// group 80% as wide as its slot.
	slot := (plotWidth - vg.Inch) / vg.Length(len(t.Settings))
	bw := min(slot*0.8/vg.Length(nRows), vg.Points(36))
	fig := &figure{}
	for i, r := range t.Rows {
		c := colorOf(i)
		label := r.Generator
		if !anyValid(r.Settings) {
			label += " (no PGR)"
		}
		for j, cell := range r.Settings {
			if !cell.PGR.Valid {
				continue
			}
			bc, err := plotter.NewBarChart(plotter.Values{cell.PGR.V}, bw)
			if err != nil {
				return nil, err
			}
			bc.XMin = float64(j)
			bc.Offset = (vg.Length(i) - vg.Length(nRows-1)/2) * bw
			bc.Color = c
			bc.LineStyle.Width = 0
			p.Add(bc)
		}
		fig.Legend = append(fig.Legend, legendEntry{Label: label, Color: hexColor(c)})
	}
	var names []string
	for _, s := range t.Settings {
		names = append(names, s.Name)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Y.Min = math.Min(p.Y.Min, 0)
	p.Y.Max += 0.08 * (p.Y.Max - p.Y.Min)
	zeroLine(p)
	svg, err := render(p, plotWidth, plotHeight)
	fig.SVG = svg
	return fig, err
}

func anyValid(cells []analysis.SettingCell) bool {
	for _, c := range cells {
		if c.PGR.Valid {
			return true
		}
	}
	return false
}

// zeroLine draws y = 0 when the axis spans it, so negative PGR reads as
// below the base model.
func zeroLine(p *plot.Plot) {
	if p.Y.Min < 0 {
		l, _ := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: 0}, {X: p.X.Max, Y: 0}})
		l.Color = color.Black
		l.Width = vg.Points(0.8)
		p.Add(l)
	}
}

// costFigure is one domain's cells: PGR against dollars, a series per
// generator (its sizes joined by a line), and the Pareto frontier dashed.
func costFigure(d analysis.DomainCost, gens map[string]int) (*figure, error) {
	if len(d.Points) == 0 {
		return nil, nil
	}
	p := newPlot("PGR against cost: "+d.Domain, "cost of the data (USD)", "PGR (%)")
	fig := &figure{}
	byGen := map[string][]analysis.CostPoint{}
	var order []string
	for _, pt := range d.Points {
		if _, ok := byGen[pt.Generator]; !ok {
			order = append(order, pt.Generator)
		}
		byGen[pt.Generator] = append(byGen[pt.Generator], pt)
	}
	sort.SliceStable(order, func(a, b int) bool { return gens[order[a]] < gens[order[b]] })
	minC, maxC := math.Inf(1), 0.0
	for _, pt := range d.Points {
		minC, maxC = math.Min(minC, pt.Cost), math.Max(maxC, pt.Cost)
	}
	logX := maxC/minC >= 10
	for _, g := range order {
		pts := byGen[g]
		i := gens[g]
		c := colorOf(i)
		// A line joins one setting's instance counts (a sweep); points of
		// different settings stay apart.
		bySetting := map[string]plotter.XYs{}
		var all plotter.XYs
		for _, pt := range pts {
			bySetting[pt.Setting] = append(bySetting[pt.Setting], plotter.XY{X: pt.Cost, Y: pt.PGR})
			all = append(all, plotter.XY{X: pt.Cost, Y: pt.PGR})
		}
		for _, xys := range bySetting {
			if len(xys) < 2 {
				continue
			}
			sort.Slice(xys, func(a, b int) bool { return xys[a].X < xys[b].X })
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.Color, l.Width = c, vg.Points(1.2)
			p.Add(l)
		}
		s, err := plotter.NewScatter(all)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: shapeOf(i)}
		p.Add(s)
		fig.Legend = append(fig.Legend, legendEntry{Label: g, Color: hexColor(c)})
	}
	if len(d.Frontier) > 1 {
		xys := make(plotter.XYs, len(d.Frontier))
		for i, pt := range d.Frontier {
			xys[i] = plotter.XY{X: pt.Cost, Y: pt.PGR}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width, l.Dashes = color.Black, vg.Points(1), []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(l)
		fig.Legend = append(fig.Legend, legendEntry{Label: "Pareto frontier", Color: "#000000", Dashed: true})
	}
	// The frontier's points are labelled (the table lists them all).
	byLabel := map[string]analysis.CostPoint{}
	for _, pt := range d.Points {
		byLabel[pt.Label] = pt
	}
	// Labels alternate above-left and below-right of successive points,
	// which keeps neighbours on the frontier apart.
	var sides [2]plotter.XYLabels
	for i, pt := range d.Frontier {
		side := (len(d.Frontier) - 1 - i) % 2 // the costliest point's label goes left
		sides[side].XYs = append(sides[side].XYs, plotter.XY{X: pt.Cost, Y: pt.PGR})
		sides[side].Labels = append(sides[side].Labels, shortLabel(byLabel[pt.Label]))
	}
	for side, xyl := range sides {
		if len(xyl.XYs) == 0 {
			continue
		}
		lb, err := plotter.NewLabels(xyl)
		if err != nil {
			return nil, err
		}
		lb.Offset = vg.Point{X: vg.Points(-5), Y: vg.Points(6)}
		align := draw.XRight
		if side == 1 {
			lb.Offset = vg.Point{X: vg.Points(6), Y: vg.Points(-12)}
			align = draw.XLeft
		}
		for k := range lb.TextStyle {
			lb.TextStyle[k].Font.Size = vg.Points(8.5)
			lb.TextStyle[k].Color = color.Gray{0x33}
			lb.TextStyle[k].XAlign = align
		}
		p.Add(lb)
	}
	if logX {
		p.X.Min, p.X.Max = p.X.Min/1.4, p.X.Max*1.25
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = oneTwoFive{prefix: "$"}
		p.X.Label.Text += ", log scale"
	} else {
		span := p.X.Max - p.X.Min
		p.X.Min, p.X.Max = math.Max(0, p.X.Min-0.1*span), p.X.Max+0.05*span
		p.X.Tick.Marker = dollarTicks{}
	}
	padY(p)
	zeroLine(p)
	svg, err := render(p, plotWidth, plotHeight)
	fig.SVG = svg
	return fig, err
}

// padY leaves room above and below the points for their labels.
func padY(p *plot.Plot) {
	span := p.Y.Max - p.Y.Min
	if span == 0 {
		span = math.Max(1, math.Abs(p.Y.Max))
	}
	p.Y.Min -= 0.08 * span
	p.Y.Max += 0.12 * span
}

func shortLabel(pt analysis.CostPoint) string {
	l := pt.Generator + " " + pt.Setting
	if pt.Instances > 0 {
		l += " " + count(pt.Instances)
	}
	return l
}

// count is 10000 → "10k", 1500 → "1.5k", 2000000 → "2M".
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%100 == 0:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + "k"
	}
	return strconv.Itoa(n)
}

// scalingFigure is one setting's PGR over instance counts, a line per
// generator.
func scalingFigure(setting string, curves []analysis.Curve, gens map[string]int) (*figure, error) {
	p := newPlot(setting, "instances generated", "PGR (%)")
	fig := &figure{}
	minN, maxN := math.Inf(1), 0.0
	for _, cu := range curves {
		xys := make(plotter.XYs, len(cu.Points))
		for i, pt := range cu.Points {
			xys[i] = plotter.XY{X: float64(pt.Instances), Y: pt.PGR}
			minN, maxN = math.Min(minN, float64(pt.Instances)), math.Max(maxN, float64(pt.Instances))
		}
		i := gens[cu.Generator]
		c := colorOf(i)
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = c, vg.Points(1.5)
		s.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: shapeOf(i)}
		p.Add(l, s)
		fig.Legend = append(fig.Legend, legendEntry{Label: cu.Generator, Color: hexColor(c)})
	}
	if maxN/minN >= 10 {
		p.X.Min, p.X.Max = p.X.Min/1.15, p.X.Max*1.15
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = oneTwoFive{}
		p.X.Label.Text += ", log scale"
	} else {
		span := p.X.Max - p.X.Min
		p.X.Min, p.X.Max = p.X.Min-0.06*span, p.X.Max+0.06*span
		p.X.Tick.Marker = countTicks{}
	}
	padY(p)
	zeroLine(p)
	svg, err := render(p, smallWidth, smallHeight)
	fig.SVG = svg
	return fig, err
}

// screeFigure is the explained variance per component (bars) and its
// running total (line), with the share of the top components used.
func screeFigure(r analysis.PCAReport) (*figure, error) {
	p := newPlot("PCA: variance explained per component", "principal component", "variance explained (%)")
	vals := make(plotter.Values, len(r.Explained))
	cum := make(plotter.XYs, len(r.Explained))
	var names []string
	for i := range r.Explained {
		vals[i] = 100 * r.Explained[i]
		cum[i] = plotter.XY{X: float64(i), Y: 100 * r.Cumulative[i]}
		names = append(names, "PC"+strconv.Itoa(i+1))
	}
	bc, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return nil, err
	}
	bc.Color, bc.LineStyle.Width = colorOf(0), 0
	l, s, err := plotter.NewLinePoints(cum)
	if err != nil {
		return nil, err
	}
	l.Color, s.GlyphStyle.Color, s.GlyphStyle.Radius = colorOf(1), colorOf(1), vg.Points(3)
	p.Add(bc, l, s)
	legend := []legendEntry{
		{Label: "per component", Color: hexColor(colorOf(0))},
		{Label: "cumulative", Color: hexColor(colorOf(1))},
	}
	// The line marks what chose the components: the share they reach,
	// or the cumulative share of the top K.
	at, label := 100*r.Cumulative[r.K-1], fmt.Sprintf("%.0f%%: the top %d component(s) used (%s)", 100*r.Cumulative[r.K-1], r.K, Choice(r))
	if r.Choice == analysis.ChoiceShare {
		at, label = 100*r.Share, fmt.Sprintf("%.0f%%: the top %d component(s) reach it", 100*r.Share, r.ComponentsFor(r.Share))
	}
	th, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: at}, {X: float64(len(names)) - 0.5, Y: at}})
	if err != nil {
		return nil, err
	}
	th.Color, th.Dashes = color.Gray{0x66}, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(th)
	legend = append(legend, legendEntry{Label: label, Color: "#666666", Dashed: true})
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Y.Min, p.Y.Max = 0, 105
	svg, err := render(p, plotWidth, plotHeight)
	return &figure{SVG: svg, Legend: legend}, err
}

// loadingsFigure is each feature's loading on each of the top components:
// a group of bars per feature, a colour per component.
func loadingsFigure(r analysis.PCAReport) (*figure, error) {
	p := newPlot(fmt.Sprintf("PCA: loadings on the top %d component(s)", r.K), "", "loading")
	slot := (plotWidth - vg.Inch) / vg.Length(len(r.Features))
	bw := slot * 0.8 / vg.Length(r.K)
	fig := &figure{}
	for c := 0; c < r.K; c++ {
		vals := make(plotter.Values, len(r.Features))
		for f := range r.Features {
			vals[f] = r.Loadings[f][c]
		}
		bc, err := plotter.NewBarChart(vals, bw)
		if err != nil {
			return nil, err
		}
		bc.Offset = (vg.Length(c) - vg.Length(r.K-1)/2) * bw
		bc.Color, bc.LineStyle.Width = colorOf(c), 0
		p.Add(bc)
		fig.Legend = append(fig.Legend, legendEntry{Label: fmt.Sprintf("PC%d (%.1f%%)", c+1, 100*r.Explained[c]), Color: hexColor(colorOf(c))})
	}
	p.NominalX(r.Features...)
	p.X.Min, p.X.Max = -0.5, float64(len(r.Features))-0.5
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = draw.XRight
	p.Y.Min, p.Y.Max = -1, 1
	zeroLine(p)
	svg, err := render(p, plotWidth, plotHeight+0.6*vg.Inch)
	fig.SVG = svg
	return fig, err
}

// regressionFigure is a problem-solving regression: the points and the
// fitted line.
func regressionFigure(r analysis.Regression) (*figure, error) {
	if r.Fit == nil {
		return nil, nil
	}
	f := r.Fit
	x, y := "generator's own score (%)", "PGR (%)"
	if r.Name == "per generator" {
		x, y = "mean problem-solving score (%)", "AgoraBench score"
	}
	p := newPlot(fmt.Sprintf("%s (n = %d)", r.Name, f.N), x, y)
	xys := make(plotter.XYs, len(r.Points))
	minX, maxX := math.Inf(1), math.Inf(-1)
	for i, pt := range r.Points {
		xys[i] = plotter.XY{X: pt[0], Y: pt[1]}
		minX, maxX = math.Min(minX, pt[0]), math.Max(maxX, pt[0])
	}
	s, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: colorOf(0), Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
	l, err := plotter.NewLine(plotter.XYs{{X: minX, Y: f.Intercept + f.Slope*minX}, {X: maxX, Y: f.Intercept + f.Slope*maxX}})
	if err != nil {
		return nil, err
	}
	l.Color, l.Width = colorOf(2), vg.Points(1.5)
	p.Add(s, l)
	span := maxX - minX
	p.X.Min, p.X.Max = minX-0.05*span, maxX+0.3*span
	if len(r.Points) <= 20 {
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: r.Labels})
		if err != nil {
			return nil, err
		}
		lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(2)}
		for k := range lb.TextStyle {
			lb.TextStyle[k].Font.Size = vg.Points(8)
			lb.TextStyle[k].Color = color.Gray{0x55}
		}
		p.Add(lb)
	}
	padY(p)
	svg, err := render(p, smallWidth, smallHeight)
	return &figure{SVG: svg, Legend: []legendEntry{
		{Label: "observations", Color: hexColor(colorOf(0))},
		{Label: fmt.Sprintf("least-squares line (R² = %.3f)", f.R2), Color: hexColor(colorOf(2))},
	}}, err
}

// oneTwoFive labels a log axis at 1, 2 and 5 times the powers of ten.
type oneTwoFive struct{ prefix string }

func (t oneTwoFive) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); math.Pow(10, e) <= max; e++ {
		base := math.Pow(10, e)
		for _, m := range []float64{1, 2, 3, 4, 5, 6, 7, 8, 9} {
			v := m * base
			if v < min || v > max {
				continue
			}
			tk := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				tk.Label = t.prefix + shortNumber(v)
			}
			ticks = append(ticks, tk)
		}
	}
	return ticks
}

// dollarTicks are the default ticks with a dollar sign.
type dollarTicks struct{}

func (dollarTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = "$" + ts[i].Label
		}
	}
	return ts
}

// plainTicks are the default ticks with their labels in the shortest
// form: 25, not 25.00.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// countTicks are the default ticks written as 10k, 20k.
type countTicks struct{}

func (countTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = shortNumber(ts[i].Value)
		}
	}
	return ts
}

func shortNumber(v float64) string {
	if v >= 1000 && v == math.Trunc(v) {
		return count(int(v))
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
