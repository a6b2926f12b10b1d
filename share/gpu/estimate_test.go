package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// qkv holds f16-rounded random inputs, their tensors and share's
// [head][token][dim] float64 views.
type qkv struct {
	shape      Shape
	q, k, v    *runtime.Tensor // [n, Hq, D], [n, Hkv, D], [n, Hkv, D] f16
	qh, kh, vh [][][]float64
}

func headsView(x []float32, n, h, d int) [][][]float64 {
	out := make([][][]float64, h)
	for i := range out {
		out[i] = make([][]float64, n)
		for t := range out[i] {
			row := make([]float64, d)
			for e := range row {
				row[e] = float64(x[(t*h+i)*d+e])
			}
			out[i][t] = row
		}
	}
	return out
}

func upload(t *testing.T, d *runtime.Device, x []float32, shape ...int) *runtime.Tensor {
	t.Helper()
	ts, err := d.NewTensor(runtime.F16, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Free)
	if err := ts.UploadF32(x); err != nil {
		t.Fatal(err)
	}
	return ts
}

// randomQKV makes inputs whose attention is far from uniform: a few "sink"
// keys per KV head get a large component along a query direction, and
// dimensions 1 and 2 add a·cos(π(i−j)/n) to the score of query i and key j,
// so attention is local (the top slash offsets are small).
func randomQKV(t *testing.T, d *runtime.Device, rng *rand.Rand, s Shape) *qkv {
	t.Helper()
	n, hq, hkv, dim := s.N, s.NumHeads, s.NumKVHeads, s.HeadDim
	q := gputest.Normal(rng, n*hq*dim, 1)
	k := gputest.Normal(rng, n*hkv*dim, 1)
	v := gputest.Normal(rng, n*hkv*dim, 1)
	const a = 6
	w := math.Pi / float64(n)
	for h := 0; h < hq; h++ {
		for i := 0; i < n; i++ {
			q[(i*hq+h)*dim] += 2
			q[(i*hq+h)*dim+1] = float32(a * math.Cos(w*float64(i)))
			q[(i*hq+h)*dim+2] = float32(a * math.Sin(w*float64(i)))
		}
	}
	for h := 0; h < hkv; h++ {
		for j := 0; j < n; j++ {
			k[(j*hkv+h)*dim+1] = float32(a * math.Cos(w*float64(j)))
			k[(j*hkv+h)*dim+2] = float32(a * math.Sin(w*float64(j)))
		}
	}
	for h := 0; h < hkv; h++ {
		for x := 0; x < 3; x++ {
			j := rng.IntN(n)
			k[(j*hkv+h)*dim] += 3
		}
	}
	q, k, v = runtime.RoundF16(q), runtime.RoundF16(k), runtime.RoundF16(v)
	return &qkv{
		shape: s,
		q:     upload(t, d, q, n, hq, dim), k: upload(t, d, k, n, hkv, dim), v: upload(t, d, v, n, hkv, dim),
		qh: headsView(q, n, hq, dim), kh: headsView(k, n, hkv, dim), vh: headsView(v, n, hkv, dim),
	}
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !(math.Abs(got[i]-want[i]) <= tol) {
			t.Fatalf("%s[%d] = %.9g, reference %.9g (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

func estimate(t *testing.T, d *runtime.Device, needs share.Needs, x *qkv, sel share.QueryAwareSelector, layer int) *share.LayerEstimates {
	t.Helper()
	e, err := NewEstimator(d, needs, x.shape)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	// Poison every output first so that a value the kernels do not write
	// fails the comparison.
	for _, o := range e.outputs() {
		if err := kernels.Poison(r, o); err != nil {
			t.Fatal(err)
		}
	}
	est, err := e.Estimate(r, layer, x.q, x.k, sel)
	if err != nil {
		t.Fatal(err)
	}
	return est
}

var estShapes = []struct {
	s Shape
	b int
}{
	{Shape{NumHeads: 4, NumKVHeads: 2, HeadDim: 8, N: 300}, 32},
	{Shape{NumHeads: 4, NumKVHeads: 1, HeadDim: 16, N: 257}, 64},
	{Shape{NumHeads: 2, NumKVHeads: 2, HeadDim: 8, N: 40}, 64}, // n < B: window = n
}

// TestEstimatorMatchesReference compares every GPU estimate with
// ref.Estimate on the same f16-rounded q and k: V, S, â, M, WinV and
// WinS to 1e-4, Kv and Ks exactly.
func TestEstimatorMatchesReference(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const gamma = 0.9
	for _, c := range estShapes {
		t.Run(fmt.Sprintf("n%d_B%d_H%d-%d_D%d", c.s.N, c.b, c.s.NumHeads, c.s.NumKVHeads, c.s.HeadDim), func(t *testing.T) {
			x := randomQKV(t, d, rng, c.s)
			want, err := ref.Estimate(3, x.qh, x.kh, ref.EstimateOptions{BlockSize: c.b, Gamma: gamma, PooledMap: true, Window: 64})
			if err != nil {
				t.Fatal(err)
			}
			got := estimate(t, d, share.Needs{BlockSize: c.b, LastBlock: true, Gamma: gamma, Pooled: true, PooledMap: true}, x, nil, 3)
			win := estimate(t, d, share.Needs{BlockSize: c.b, Window: 64}, x, nil, 3)
			if got.Layer != 3 || got.N != c.s.N || got.NB != want.NB || got.BlockSize != c.b || len(got.Heads) != c.s.NumHeads {
				t.Fatalf("header %d/%d/%d/%d/%d, want 3/%d/%d/%d/%d", got.Layer, got.N, got.NB, got.BlockSize, len(got.Heads), c.s.N, want.NB, c.b, c.s.NumHeads)
			}
			for h := range want.Heads {
				g, w := &got.Heads[h], &want.Heads[h]
				near(t, fmt.Sprintf("head %d V", h), g.V, w.V, 1e-4)
				near(t, fmt.Sprintf("head %d S", h), g.S, w.S, 1e-4)
				near(t, fmt.Sprintf("head %d pooled", h), g.Pooled, w.Pooled, 1e-4)
				near(t, fmt.Sprintf("head %d M", h), g.M.Data, w.M.Data, 1e-4)
				near(t, fmt.Sprintf("head %d WinV", h), win.Heads[h].WinV, w.WinV, 1e-4)
				near(t, fmt.Sprintf("head %d WinS", h), win.Heads[h].WinS, w.WinS, 1e-4)
				if g.Kv != w.Kv || g.Ks != w.Ks {
					t.Errorf("head %d: Kv, Ks = %d, %d; reference %d, %d", h, g.Kv, g.Ks, w.Kv, w.Ks)
				}
				if win.Heads[h].V != nil || win.Heads[h].M != nil {
					t.Errorf("head %d: window-only needs filled V or M", h)
				}
			}
		})
	}
}

func samePlans(t *testing.T, what string, got, want *share.LayerPlan) {
	t.Helper()
	for h := range want.Heads {
		g, w := &got.Heads[h], &want.Heads[h]
		if g.Method != w.Method || g.NeedMap != w.NeedMap {
			t.Errorf("%s head %d: method %v (map %v), CPU reference %v (map %v)", what, h, g.Method, g.NeedMap, w.Method, w.NeedMap)
			continue
		}
		if !slices.Equal(g.List.RowPtr, w.List.RowPtr) || !slices.Equal(g.List.Cols, w.List.Cols) {
			t.Errorf("%s head %d (%v): lists differ:\n gpu %v\n cpu %v", what, h, g.Method, g.List, w.List)
		}
	}
}

// TestGPUPlanEqualsCPUPlan plans one layer from the GPU estimates and from
// ref.Estimate with two planner instances and requires identical
// lists: FlexPrefill with a wide query-aware gate (M is read back for the
// selected heads only), SharePrefill "paper", and vertical-slash.
func TestGPUPlanEqualsCPUPlan(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	s := Shape{NumHeads: 4, NumKVHeads: 2, HeadDim: 16, N: 1024}
	const b = 32
	x := randomQKV(t, d, rng, s)
	flex, err := share.Preset("release")
	if err != nil {
		t.Fatal(err)
	}
	flex.BlockSize, flex.MinBudget = b, b
	// Put τ_q between the 2nd and 3rd smallest JSD(â, V) so that the
	// query-aware heads are a strict subset (their M rows are gathered).
	pre, err := ref.Estimate(0, x.qh, x.kh, ref.EstimateOptions{BlockSize: b, Gamma: flex.Gamma})
	if err != nil {
		t.Fatal(err)
	}
	var js []float64
	for _, he := range pre.Heads {
		js = append(js, share.JSD(he.Pooled, he.V))
	}
	slices.Sort(js)
	flex.TauQuery = (js[1] + js[2]) / 2
	t.Logf("JSD(â, V) per head (sorted) %.4f, τ_q = %.4f", js, flex.TauQuery)
	paper := share.DefaultConfig()
	paper.BlockSize, paper.MinBudget = b, b
	vsCfg := share.VSConfig{BlockSize: b, LastQ: 32, VerticalSize: 40, SlashSize: 60, ForcedColumns: 4, ForcedDiagonals: 8, Tile: 16}
	mk := map[string]func() share.Planner{
		"flexprefill": func() share.Planner { p, _ := share.NewFlexPrefill(flex); return p },
		"shareprefill": func() share.Planner {
			cl, err := share.ParseClusters([]byte(`{"clusters": {"1": [[0, 0], [0, 1], [0, 2], [0, 3]]}}`))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := share.NewSharePrefill(paper, cl)
			return p
		},
		"vertical-slash": func() share.Planner { p, _ := share.NewVerticalSlash(vsCfg); return p },
	}
	for name, f := range mk {
		t.Run(name, func(t *testing.T) {
			pg, pc := f(), f()
			for _, p := range []share.Planner{pg, pc} {
				if err := p.Begin(s.N, 1, s.NumHeads, s.NumKVHeads); err != nil {
					t.Fatal(err)
				}
			}
			needs := pg.Needs()
			sel, _ := pg.(share.QueryAwareSelector)
			est := estimate(t, d, needs, x, sel, 0)
			want, err := ref.Estimate(0, x.qh, x.kh, ref.EstimateOptions{BlockSize: needs.BlockSize, Gamma: needs.Gamma, PooledMap: needs.PooledMap, Window: needs.Window})
			if err != nil {
				t.Fatal(err)
			}
			if needs.PooledMap {
				qa, err := sel.QueryAwareHeads(want)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("query-aware heads %v", qa)
				if len(qa) == 0 || len(qa) == len(est.Heads) {
					t.Errorf("query-aware heads %v: the test should select a strict, non-empty subset", qa)
				}
				for h := range est.Heads {
					if (est.Heads[h].M != nil) != slices.Contains(qa, h) {
						t.Errorf("head %d: M read back = %v, query-aware = %v", h, est.Heads[h].M != nil, slices.Contains(qa, h))
					}
				}
			}
			gp, err := pg.PlanLayer(0, est)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := pc.PlanLayer(0, want)
			if err != nil {
				t.Fatal(err)
			}
			samePlans(t, name, gp, cp)
			sparse := 0
			for h := range gp.Heads {
				if gp.Heads[h].List.Density() < 1 {
					sparse++
				}
			}
			if sparse == 0 {
				t.Errorf("every head is dense: the comparison is vacuous")
			}
		})
	}
}
