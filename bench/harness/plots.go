package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one named line of a plot.
type Series struct {
	Name string
	Pts  plotter.XYs
}

// PlotSpec describes one PNG.
type PlotSpec struct {
	File, Title, X, Y string
	LogX, LogY        bool
	Points            bool // markers only, no lines
	X01, Y01          bool // fix the axis to [0, 1] (densities, accuracies)
	LegendRight       bool // legend top right (default top left)
	Series            []Series
}

// Draw writes the plot as dir/File (PNG, 6×4 in). Series without points
// are left out; a plot without any series is not written.
func (s PlotSpec) Draw(dir string) (string, error) {
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
		pts := slices.Clone(se.Pts)
		pts = slices.DeleteFunc(pts, func(xy plotter.XY) bool {
			return (s.LogX && xy.X <= 0) || (s.LogY && xy.Y <= 0) || xy.X != xy.X || xy.Y != xy.Y
		})
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
		return "", err
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
func DrawAll(dir string, specs []PlotSpec) ([]string, error) {
	var out []string
	for _, s := range specs {
		p, err := s.Draw(dir)
		if err != nil {
			return out, err
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// seriesBy groups points by name, in first-seen order.
type seriesBy struct {
	names []string
	pts   map[string]plotter.XYs
}

func (s *seriesBy) add(name string, x, y float64) {
	if s.pts == nil {
		s.pts = map[string]plotter.XYs{}
	}
	if _, ok := s.pts[name]; !ok {
		s.names = append(s.names, name)
	}
	s.pts[name] = append(s.pts[name], plotter.XY{X: x, Y: y})
}

func (s *seriesBy) list() []Series {
	var out []Series
	for _, n := range s.names {
		out = append(out, Series{Name: n, Pts: s.pts[n]})
	}
	return out
}

// KernelPlots: attention latency vs length per kind, speed-up vs computed
// density per length, dense-equivalent TFLOP/s vs length.
func KernelPlots(res *KernelResults) []PlotSpec {
	var lat, sp, tf seriesBy
	for _, r := range res.Attention {
		name := "dense (flash)"
		if r.Kind == "sparse" {
			name = fmt.Sprintf("sparse d=%g", r.Density)
		}
		lat.add(name, float64(r.N), r.Median)
		tf.add(name, float64(r.N), r.TFLOPsDenseEq)
		if r.Kind == "sparse" {
			sp.add(fmt.Sprintf("n=%d", r.N), r.ComputedDensity, r.SpeedupVsDense)
		}
	}
	return []PlotSpec{
		{File: "attention_latency.png", Title: "Attention latency", X: "sequence length (tokens)", Y: "median time (ms)", LogX: true, LogY: true, Series: lat.list()},
		{File: "attention_speedup.png", Title: "Block-sparse speed-up over dense flash attention", X: "computed block density", Y: "speed-up vs dense", X01: true, LegendRight: true, Series: sp.list()},
		{File: "attention_tflops.png", Title: "Dense-equivalent TFLOP/s (2·Hq·n²·D / t)", X: "sequence length (tokens)", Y: "TFLOP/s", LogX: true, Series: tf.list()},
	}
}

// PrefillPlots: latency vs length per method and speed-up vs dense.
func PrefillPlots(res *PrefillResults) []PlotSpec {
	var lat, sp seriesBy
	for _, r := range res.Rows {
		lat.add(r.Method, float64(r.N), r.Median)
		if r.SpeedupVsDense > 0 {
			sp.add(r.Method, float64(r.N), r.SpeedupVsDense)
		}
	}
	return []PlotSpec{
		{File: "prefill_latency.png", Title: "End-to-end prefill latency", X: "prompt length (tokens)", Y: "median time (ms)", LogX: true, LogY: true, Series: lat.list()},
		{File: "prefill_speedup.png", Title: "Prefill speed-up over dense", X: "prompt length (tokens)", Y: "speed-up vs dense", LogX: true, Series: sp.list()},
	}
}

// AccuracyPlots: retrieval accuracy vs attention density (one point per
// method, task and length) and NLL vs length per method.
func AccuracyPlots(res *AccuracyResults) []PlotSpec {
	var acc, ppl seriesBy
	for _, s := range res.Summary {
		if s.N > 0 {
			acc.add(s.Method+" "+s.Task, s.Density, s.Accuracy)
		}
	}
	for _, r := range res.Perplexity {
		ppl.add(r.Method, float64(r.N), r.NLL)
	}
	return []PlotSpec{
		{File: "accuracy_vs_density.png", Title: "Retrieval accuracy vs attention density", X: "mean computed block density", Y: "accuracy", Points: true, X01: true, Y01: true, Series: acc.list()},
		{File: "perplexity.png", Title: "Held-out NLL by window length", X: "window (tokens)", Y: "mean NLL (nats)", LogX: true, Series: ppl.list()},
	}
}
