// Package plots draws the harness's plot specifications
// (harness.KernelPlots, PrefillPlots, AccuracyPlots) as PNG files with
// gonum/plot. Only the bench build of the command imports it (build tag
// plots, see bench/README.md#plots), so that the product binary does not
// link a plotting library.
package plots

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/shareprefill/shareprefill/bench/harness"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Draw writes the plot s as dir/File (PNG, 6×4 in), creating dir, and
// returns the file's path. Series without points are left out (and points
// that a log axis cannot show); a plot without any series is not written
// and gives "".
func Draw(dir string, s harness.PlotSpec) (string, error) {
	p := plot.New()
	p.Title.Text = s.Title
	p.X.Label.Text = s.X
	p.Y.Label.Text = s.Y
	p.Legend.Top = true
	p.Legend.Left = !s.LegendRight
	var xs []float64
	for _, se := range s.Series {
		for _, xy := range se.Pts {
			if !slices.Contains(xs, xy.X) {
				xs = append(xs, xy.X)
			}
		}
	}
	if s.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = valueTicks(xs)
	}
	if s.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = ticks125{}
	}
	p.Add(plotter.NewGrid())
	drawn := 0
	for i, se := range s.Series {
		pts := make(plotter.XYs, 0, len(se.Pts))
		for _, xy := range se.Pts {
			if !((s.LogX && xy.X <= 0) || (s.LogY && xy.Y <= 0) || xy.X != xy.X || xy.Y != xy.Y) {
				pts = append(pts, plotter.XY{X: xy.X, Y: xy.Y})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return "", err
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(sc)
		if s.Points {
			p.Legend.Add(se.Name, sc)
		} else {
			l, err := plotter.NewLine(pts)
			if err != nil {
				return "", err
			}
			l.Color = plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i)
			p.Add(l)
			p.Legend.Add(se.Name, l, sc)
		}
		drawn++
	}
	if drawn == 0 {
		return "", nil
	}
	if s.X01 {
		p.X.Min, p.X.Max = 0, 1.02
	}
	if s.Y01 {
		p.Y.Min, p.Y.Max = -0.02, 1.02
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("plot %s: %w", s.File, err)
	}
	path := filepath.Join(dir, s.File)
	if err := p.Save(6*vg.Inch, 4*vg.Inch, path); err != nil {
		return "", fmt.Errorf("plot %s: %w", s.File, err)
	}
	return path, nil
}

// valueTicks labels the data's own x values (sequence lengths: 4096 → "4K").
type valueTicks []float64

func (v valueTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, x := range v {
		if x >= lo && x <= hi {
			out = append(out, plot.Tick{Value: x, Label: lenLabel(x)})
		}
	}
	return out
}

func lenLabel(x float64) string {
	if x >= 1024 && math.Mod(x, 1024) == 0 {
		return strconv.FormatFloat(x/1024, 'g', -1, 64) + "K"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}

// ticks125 labels 1, 2 and 5 times the powers of ten in range (log axes
// spanning less than a decade still get labels).
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	if lo <= 0 || hi <= 0 {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64)})
			}
		}
	}
	if len(out) < 2 {
		out = append(out, plot.Tick{Value: lo, Label: strconv.FormatFloat(lo, 'g', 3, 64)}, plot.Tick{Value: hi, Label: strconv.FormatFloat(hi, 'g', 3, 64)})
	}
	return out
}

// DrawAll draws specs into dir and returns the files written.
func DrawAll(dir string, specs []harness.PlotSpec) ([]string, error) {
	var out []string
	for _, s := range specs {
		p, err := Draw(dir, s)
		if err != nil {
			return out, err
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}
