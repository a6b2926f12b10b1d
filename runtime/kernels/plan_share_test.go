package kernels_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// TestPlanRefsMatchShare checks that the references of the planning kernels
// (ref_plan_test.go) compute what the planners of package share compute: top-k
// with forced entries, MInference's token selection and block mapping, the
// query-aware cut, the pivot row cover and vs_ratio, VS lists and the JS
// divergences. CPU only.
func TestPlanRefsMatchShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	dist := func(n int, ties bool) []float32 {
		x := make([]float32, n)
		var s float64
		for i := range x {
			v := math.Exp(2 * rng.NormFloat64())
			if ties {
				v = float64(rng.IntN(3))
			}
			x[i] = float32(v)
			s += v
		}
		for i := range x {
			if s > 0 {
				x[i] = float32(float64(x[i]) / s)
			}
		}
		return x
	}
	f64 := func(x []float32) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = float64(v)
		}
		return out
	}
	bitsToList := func(b []int32, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			if uint32(b[i/32])>>(i%32)&1 != 0 {
				out = append(out, i)
			}
		}
		return out
	}
	forcedList := func(f int) []int {
		out := make([]int, f)
		for i := range out {
			out[i] = i
		}
		return out
	}

	// Top-k with a forced prefix.
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(70)
		x0, x1 := dist(n, trial%2 == 0), dist(n, trial%3 == 0)
		p := kernels.TopKParams{Rows: 1, Stride: n, Len: [2]int{n, 1 + rng.IntN(n)}, K: [2]int{rng.IntN(n+2) - 1, rng.IntN(n + 2)},
			Forced: [2]int{rng.IntN(4), rng.IntN(n + 1)}, Words: (n + 31) / 32}
		got := kernels.RefTopKBits(x0, x1, nil, p)
		for w, x := range [][]float32{x0, x1} {
			l := p.Len[w]
			want := share.TopKForced(f64(x[:l]), p.K[w], forcedList(min(p.Forced[w], l))...)
			if g := bitsToList(got[w*p.Words:(w+1)*p.Words], n); !slices.Equal(g, want) {
				t.Fatalf("top-k trial %d vector %d: %v, want %v", trial, w, g, want)
			}
		}
	}

	// MInference: token selection and the block mapping.
	for _, c := range []struct{ n, b, lastQ, v, s int }{{50, 32, 64, 10, 20}, {300, 32, 64, 40, 90}, {700, 64, 64, 100, 300}, {257, 128, 16, 30, 50}} {
		cfg := share.VSConfig{BlockSize: c.b, LastQ: c.lastQ, VerticalSize: c.v, SlashSize: c.s, ForcedColumns: 3, ForcedDiagonals: 10, Tile: 48}
		vs, err := share.NewVerticalSlash(cfg)
		if err != nil {
			t.Fatal(err)
		}
		winV, winS := dist(c.n, false), dist(c.n, true)
		cols, offs := vs.SelectTokens(f64(winV), f64(winS))
		l := min(c.lastQ, c.n)
		nv, ns := min(c.n, max(c.v, 30)), min(c.n, max(c.s, 50))
		full := c.n - l + 1
		p := kernels.TopKParams{Rows: 1, Stride: c.n, Len: [2]int{c.n, full}, K: [2]int{nv, min(ns, full)},
			Forced: [2]int{min(cfg.ForcedColumns, nv), min(cfg.ForcedDiagonals, ns, full)}, Words: (c.n + 31) / 32}
		tok := kernels.RefTopKBits(winV, winS, nil, p)
		if g := bitsToList(tok[:p.Words], c.n); !slices.Equal(g, cols) {
			t.Fatalf("n=%d: columns %v, want %v", c.n, g, cols)
		}
		if g := bitsToList(tok[p.Words:], c.n); !slices.Equal(g, offs) {
			t.Fatalf("n=%d: offsets %v, want %v", c.n, g, offs)
		}
		nb := share.NumBlocks(c.n, c.b)
		vsb := kernels.RefPlanVSBlocks(tok, 1, c.n, c.b, cfg.Tile)
		rowbits, _ := kernels.RefPlanUnion(make([]int32, 4), vsb, nil, nil, kernels.UnionParams{Hq: 1, NB: nb, VSRows: 3, Mode: kernels.PlanModeVS})
		rowPtr, colsCSR := kernels.RefPlanCSR(rowbits, 1, nb)
		want := share.MapVSToBlocks(c.n, c.b, cfg.Tile, cols, offs)
		if !slices.Equal(rowPtr, want.RowPtr) || !slices.Equal(colsCSR, want.Cols) {
			t.Fatalf("n=%d: block lists differ from MapVSToBlocks", c.n)
		}
	}

	// Query-aware cut, row cover, vs_ratio, VS lists.
	for _, nb := range []int{1, 2, 7, 33, 40} {
		for _, gamma := range []float64{0.3, 0.5, 0.9, 0.95, 1} {
			m := &share.BlockMap{NB: nb, Data: make([]float64, nb*nb)}
			mf := make([]float32, nb*nb)
			for r := 0; r < nb; r++ {
				row := dist(r+1, r%3 == 1)
				if r == 1 {
					row = []float32{0.5, 0.5} // the running sum meets γ·Σ exactly at γ = ½
				}
				for c, v := range row {
					mf[r*nb+c] = v
					m.Data[r*nb+c] = float64(v)
				}
			}
			p := kernels.PlanParams{Hq: 1, NumLayers: 1, N: nb * 16, B: 16, Gamma: gamma, Cap: 1, K: 1}
			nbw := p.NBW()
			qa := kernels.RefPlanQueryAwareCut(mf, []int32{kernels.PlanModeQueryAware, 0, 0, 0}, p)
			rowPtr, cols := kernels.RefPlanCSR(qa, 1, nb)
			if want := share.QueryAwareCut(m, gamma); !slices.Equal(rowPtr, want.RowPtr) || !slices.Equal(cols, want.Cols) {
				t.Fatalf("nb=%d γ=%v: query-aware cut differs", nb, gamma)
			}
			vs := share.SelectVS(f64(dist(nb, false)), f64(dist(nb, true)), 1+rng.IntN(nb), 1+rng.IntN(nb))
			vsbits := make([]int32, 2*nbw)
			for _, c := range vs.Cols {
				vsbits[c/32] |= int32(uint32(1) << (c % 32))
			}
			for _, o := range vs.Offs {
				vsbits[nbw+o/32] |= int32(uint32(1) << (o % 32))
			}
			rb, _ := kernels.RefPlanUnion(make([]int32, 4), vsbits, nil, nil, kernels.UnionParams{Hq: 1, NB: nb, VSRows: 2, Mode: kernels.PlanModeVS})
			rowPtr, cols = kernels.RefPlanCSR(rb, 1, nb)
			if want := vs.List(nb); !slices.Equal(rowPtr, want.RowPtr) || !slices.Equal(cols, want.Cols) {
				t.Fatalf("nb=%d: VS list differs from VSSet.List", nb)
			}
			pattern := make([]int32, nb*nbw)
			rs := kernels.RefPlanRowCover(mf, []int32{0, 0, 0, 0}, []int32{0}, vsbits, pattern, 1, p)
			rowPtr, cols = kernels.RefPlanCSR(pattern, 1, nb)
			if gamma < 1 {
				if want := share.RowCover(m, gamma); !slices.Equal(rowPtr, want.RowPtr) || !slices.Equal(cols, want.Cols) {
					t.Fatalf("nb=%d γ=%v: row cover differs", nb, gamma)
				}
			}
			var exact, compat float64
			for r := 0; r < nb; r++ {
				exact += rs[4*r]
				compat += rs[4*r+1]
			}
			if w := share.VSRatio(m, vs, false); math.Abs(exact/float64(nb)-w) > 1e-12 {
				t.Fatalf("nb=%d: vs_ratio %v, want %v", nb, exact/float64(nb), w)
			}
			if w := share.VSRatio(m, vs, true); math.Abs(compat/float64(nb)-w) > 1e-12 {
				t.Fatalf("nb=%d: compat vs_ratio %v, want %v", nb, compat/float64(nb), w)
			}
		}
	}

	// JS divergences of the gates.
	for trial := 0; trial < 50; trial++ {
		nb := 1 + rng.IntN(20)
		n := nb*16 - rng.IntN(16)
		v, s, a := dist(nb, trial%4 == 0), dist(nb, false), dist(nb, false)
		p := kernels.PlanParams{Hq: 1, NumLayers: 2, Layer: 1, N: n, B: 16, K: 1, UseQuery: true, ExclDist: trial % 3, NaNCompat: trial%2 == 1}
		refs := append(dist(nb, false), dist(nb, false)...)
		g := kernels.RefPlanGates(v, s, a, []int32{0, 0, 1}, []int32{0, 0, 0, 0}, refs, p)[0]
		jsd := share.JSD
		if p.NaNCompat {
			jsd = share.JSDCompat
		}
		u := share.UniformBlocks(n, 16)
		want := [4]float64{jsd(f64(a), f64(v)), jsd([][]float64{f64(v), f64(s), f64(a)}[p.ExclDist], u),
			jsd(f64(refs[:nb]), f64(v)), jsd(f64(refs[nb:]), f64(s))}
		for i := range want {
			if !(g[i] == want[i] || math.IsNaN(g[i]) && math.IsNaN(want[i])) {
				t.Fatalf("trial %d gate %d: %v, want %v", trial, i, g[i], want[i])
			}
		}
	}
}
