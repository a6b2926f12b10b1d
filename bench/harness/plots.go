package harness

import "fmt"

// XY is one point of a Series.
type XY struct{ X, Y float64 }

// Series is one named line of a plot.
type Series struct {
	Name string
	Pts  []XY
}

// PlotSpec describes one PNG: the data and the look, not the drawing, so
// that the harness does not link a plotting library. Package
// bench/harness/plots draws it (imported by the bench build of the
// command, see bench/README.md#plots).
type PlotSpec struct {
	File, Title, X, Y string
	LogX, LogY        bool
	Points            bool // markers only, no lines
	X01, Y01          bool // fix the axis to [0, 1] (densities, accuracies)
	LegendRight       bool // legend top right (default top left)
	Series            []Series
}

// seriesBy groups points by name, in first-seen order.
type seriesBy struct {
	names []string
	pts   map[string][]XY
}

func (s *seriesBy) add(name string, x, y float64) {
	if s.pts == nil {
		s.pts = map[string][]XY{}
	}
	if _, ok := s.pts[name]; !ok {
		s.names = append(s.names, name)
	}
	s.pts[name] = append(s.pts[name], XY{X: x, Y: y})
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
