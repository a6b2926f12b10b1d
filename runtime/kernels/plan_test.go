package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// Tests of the planning kernels against the references of ref_plan_test.go on
// seeded random inputs, with every output poisoned first. Block-level
// selections are exact: equal bitmaps, equal CSR lists.

func downloadI32(t *testing.T, x *runtime.Tensor) []int32 {
	t.Helper()
	v, err := x.DownloadI32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func emptyI32(t *testing.T, d *runtime.Device, n int) *runtime.Tensor {
	t.Helper()
	return empty(t, d, runtime.I32, max(n, 1))
}

func uploadF32(t *testing.T, d *runtime.Device, v []float32) *runtime.Tensor {
	t.Helper()
	if len(v) == 0 {
		v = []float32{0}
	}
	return upload(t, d, runtime.F32, v)
}

// randDist returns a positive distribution of n entries summing to 1 with
// some exact zeros (zeros > 0) and, with ties, values drawn from a few
// levels so that equal entries are common.
func randDist(rng *rand.Rand, n int, zeros bool, ties bool) []float32 {
	x := make([]float64, n)
	var s float64
	for i := range x {
		switch {
		case zeros && rng.IntN(7) == 0:
			x[i] = 0
		case ties:
			x[i] = float64(1 + rng.IntN(4))
		default:
			x[i] = math.Exp(3 * rng.NormFloat64())
		}
		s += x[i]
	}
	out := make([]float32, n)
	for i := range x {
		if s > 0 {
			out[i] = float32(x[i] / s)
		}
	}
	return out
}

func compareI32(t *testing.T, what string, got, want []int32) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: %d words, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: word %d = %#x, want %#x", what, i, uint32(got[i]), uint32(want[i]))
		}
	}
}

func TestTopKBits(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		rows, stride int
		lens         [2]int
		ks           [2]int
		forced       [2]int
		fromBuf      bool
		ties         bool
	}{
		{1, 1, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}, false, false},
		{3, 7, [2]int{7, 5}, [2]int{3, 0}, [2]int{1, 1}, true, true},
		{4, 33, [2]int{33, 33}, [2]int{8, 8}, [2]int{1, 1}, true, true},
		{2, 100, [2]int{100, 71}, [2]int{30, 50}, [2]int{10, 20}, false, false},
		{2, 100, [2]int{100, 100}, [2]int{30, 50}, [2]int{40, 60}, false, true}, // forced > k
		{3, 1000, [2]int{1000, 937}, [2]int{200, 700}, [2]int{30, 100}, false, true},
		{2, 5000, [2]int{5000, 4937}, [2]int{1000, 3000}, [2]int{30, 100}, false, false},
		{2, 300, [2]int{0, 300}, [2]int{5, 400}, [2]int{1, 1}, false, false},
		// plan_topk's rank shortcut (≤ 256 non-forced entries) at its
		// bound and past it, and behind a long forced prefix whose
		// candidates start mid-word.
		{2, 300, [2]int{257, 258}, [2]int{100, 40}, [2]int{1, 1}, false, true},
		{2, 1000, [2]int{1000, 999}, [2]int{950, 990}, [2]int{901, 777}, false, true},
		{3, 64, [2]int{64, 64}, [2]int{9, 17}, [2]int{1, 1}, true, true},
	} {
		t.Run(fmt.Sprintf("rows%d_stride%d_k%v", c.rows, c.stride, c.ks), func(t *testing.T) {
			x0 := make([]float32, 0, c.rows*c.stride)
			x1 := make([]float32, 0, c.rows*c.stride)
			for h := 0; h < c.rows; h++ {
				x0 = append(x0, randDist(rng, c.stride, true, c.ties)...)
				x1 = append(x1, randDist(rng, c.stride, false, c.ties)...)
			}
			x0[0] = float32(math.Copysign(0, -1)) // −0 counts as 0
			p := TopKParams{Rows: c.rows, Stride: c.stride, Len: c.lens, K: c.ks, Forced: c.forced, Words: (c.stride+31)/32 + 1}
			var kb []int32
			if c.fromBuf {
				p.KFromBuf, p.KStride, p.KOff = true, 4, 2
				kb = make([]int32, 4*c.rows)
				for h := 0; h < c.rows; h++ {
					kb[4*h+2], kb[4*h+3] = int32(rng.IntN(c.stride+3)-1), int32(rng.IntN(c.stride+3)-1)
				}
			}
			out := emptyI32(t, d, c.rows*2*p.Words)
			kt := uploadI32(t, d, kb)
			opRun(t, d, func(r *runtime.Recorder) error {
				return TopKBits(r, out, uploadF32(t, d, x0), uploadF32(t, d, x1), kt, p)
			}, out)
			compareI32(t, "bits", downloadI32(t, out), RefTopKBits(x0, x1, kb, p))
		})
	}
	// Errors name the argument.
	x := uploadF32(t, d, make([]float32, 8))
	out := emptyI32(t, d, 2)
	err := d.Run(func(r *runtime.Recorder) error {
		return TopKBits(r, out, x, x, nil, TopKParams{Rows: 1, Stride: 8, Len: [2]int{9, 8}, Words: 1})
	})
	if err == nil {
		t.Errorf("length past the stride: no error")
	}
	err = d.Run(func(r *runtime.Recorder) error {
		return TopKBits(r, out, x, x, nil, TopKParams{Rows: 2, Stride: 8, Len: [2]int{8, 8}, Words: 1})
	})
	if err == nil {
		t.Errorf("short inputs: no error")
	}
}

// planCase is a random planner state for the gate and role kernels.
type planCase struct {
	p            PlanParams
	v, s, pooled []float32
	cmap, meta   []int32
	refs         []float32
	counts       []int32
}

func newPlanCase(rng *rand.Rand, p PlanParams, zeros bool) *planCase {
	hq, nb := p.Hq, p.NB()
	c := &planCase{p: p}
	// Each cluster has a template; heads and references are noisy copies,
	// so that every gate passes for some heads and fails for others.
	tmpl := make([][]float32, max(p.K, 1)*3)
	for i := range tmpl {
		tmpl[i] = randDist(rng, nb, zeros, false)
	}
	noisy := func(x []float32) []float32 {
		out := make([]float32, len(x))
		sigma := []float64{0.05, 0.5, 2}[rng.IntN(3)]
		var s float64
		for i, v := range x {
			if v != 0 {
				out[i] = v * float32(math.Exp(sigma*rng.NormFloat64()))
			}
			s += float64(out[i])
		}
		for i := range out {
			out[i] = float32(float64(out[i]) / s)
		}
		return out
	}
	for l := 0; l < p.NumLayers; l++ {
		for h := 0; h < hq; h++ {
			ci := int32(-1)
			if p.K > 0 && rng.IntN(5) != 0 {
				ci = int32(rng.IntN(p.K))
			}
			c.cmap = append(c.cmap, ci)
		}
	}
	for k := 0; k < p.K; k++ {
		in := int32(1)
		if rng.IntN(5) == 0 {
			in = 0
		}
		c.cmap = append(c.cmap, in)
	}
	for h := 0; h < hq; h++ {
		t := int(max(c.cmap[p.Layer*hq+h], 0))
		c.v = append(c.v, noisy(tmpl[3*t])...)
		c.s = append(c.s, noisy(tmpl[3*t+1])...)
		c.pooled = append(c.pooled, noisy(tmpl[3*t+rng.IntN(3)])...)
		c.counts = append(c.counts, int32(rng.IntN(p.N+1)), int32(rng.IntN(p.N+1)))
	}
	for k := 0; k < max(p.K, 1); k++ {
		// Pivot layers cycle through −1 … layer; odd clusters have a vs_ratio
		// above every τ_f used here, even ones below.
		pl := int32(k%(p.Layer+2)) - 1
		vsr := float32(0.25 + 0.5*float64(k%2))
		c.meta = append(c.meta, pl, int32(rng.IntN(hq)), int32(rng.IntN(50)), int32(math.Float32bits(vsr)))
		for i := 0; i < 2; i++ {
			c.refs = append(c.refs, noisy(tmpl[3*k+i])...)
		}
	}
	return c
}

// TestPlanGatesAndDecide checks PlanGates and PlanDecide, and their fusion
// PlanRoles, against the float64 gates and the reference roles.
func TestPlanGatesAndDecide(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	seen := map[int32]bool{}
	base := PlanParams{Hq: 6, NumLayers: 4, N: 300, B: 32, K: 3, TauQ: 0.35, TauS: 0.35, Delta: 0.45, TauF: 0.5, BudLo: 2, BudHi: 10}
	for i, c := range []struct {
		mut   func(p *PlanParams)
		zeros bool
	}{
		{func(p *PlanParams) {}, false},
		{func(p *PlanParams) { p.UseQuery = true }, false},
		{func(p *PlanParams) { p.UseQuery, p.Exclusion, p.Layer = true, 1, 2 }, false},
		{func(p *PlanParams) { p.Exclusion, p.Layer, p.ExclDist = 0, 3, 1 }, false},
		{func(p *PlanParams) { p.Exclusion, p.Layer, p.ExclDist, p.UseQuery = 0, 1, 2, true }, false},
		{func(p *PlanParams) { p.Exclusion, p.Layer = 2, 2 }, false},
		{func(p *PlanParams) { p.NaNCompat, p.UseQuery, p.Layer = true, true, 2 }, true},
		{func(p *PlanParams) { p.Layer, p.DenseAll = 1, true }, false},
		{func(p *PlanParams) { p.K, p.Hq, p.N, p.UseQuery = 0, 64, 100, true }, false},
		{func(p *PlanParams) { p.Hq, p.K, p.N, p.B, p.Layer, p.BudLo, p.BudHi = 40, 7, 1000, 16, 3, 4, 9 }, false},
		{func(p *PlanParams) { p.Hq, p.K, p.Layer, p.Exclusion, p.TauS = 48, 4, 3, 1, 0.5 }, false},
		{func(p *PlanParams) { p.Hq, p.K, p.Layer, p.Exclusion, p.TauS = 64, 6, 3, 1, 0.9 }, false},
		{func(p *PlanParams) { p.Hq, p.K, p.Layer, p.Exclusion, p.TauS = 64, 8, 3, 2, 0.4 }, false},
		{func(p *PlanParams) { p.Hq, p.K, p.Layer, p.TauS, p.Delta = 48, 4, 3, 0.5, 0.6 }, false},
	} {
		p := base
		c.mut(&p)
		p.Cap = max(1, min(p.Hq, 3))
		p.Chunks = (min(p.Hq, max(p.K, 1)) + p.Cap - 1) / p.Cap
		p.CapPad = p.Cap + 1
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			pc := newPlanCase(rng, p, c.zeros)
			hq := p.Hq
			gates := emptyI32(t, d, 8*hq)
			vT, sT, aT := uploadF32(t, d, pc.v), uploadF32(t, d, pc.s), uploadF32(t, d, pc.pooled)
			cmap, meta := uploadI32(t, d, pc.cmap), uploadI32(t, d, pc.meta)
			refs := uploadF32(t, d, pc.refs)
			opRun(t, d, func(r *runtime.Recorder) error {
				return PlanGates(r, gates, vT, sT, aT, cmap, meta, refs, p)
			}, gates)
			g := downloadI32(t, gates)
			want := RefPlanGates(pc.v, pc.s, pc.pooled, pc.cmap, pc.meta, pc.refs, p)
			for h := 0; h < hq; h++ {
				for j := 0; j < 4; j++ {
					got := float64(math.Float32frombits(uint32(g[8*h+j])))
					nan := uint32(g[8*h+4])>>j&1 != 0
					if nan != math.IsNaN(want[h][j]) || nan != math.IsNaN(got) {
						t.Fatalf("head %d gate %d: %v (NaN bit %v), want %v", h, j, got, nan, want[h][j])
					}
					if !nan && math.Abs(got-want[h][j]) > 1e-5*max(1, want[h][j]) {
						t.Fatalf("head %d gate %d: %v, want %v", h, j, got, want[h][j])
					}
				}
			}
			// Roles from the GPU's gate words, so that the comparison is exact.
			counts := uploadI32(t, d, pc.counts)
			hplan, pivots := emptyI32(t, d, 4*hq), emptyI32(t, d, p.Chunks*p.CapPad)
			ind, stats := emptyI32(t, d, p.Chunks*PlanIndirectWords), emptyI32(t, d, p.NumLayers*hq*PlanStatWords)
			opRun(t, d, func(r *runtime.Recorder) error {
				return PlanDecide(r, gates, counts, cmap, vT, sT, meta, refs, hplan, pivots, ind, stats, p)
			}, hplan, pivots, ind, stats)
			wMeta, wRefs := append([]int32(nil), pc.meta...), append([]float32(nil), pc.refs...)
			ref := RefPlanDecide(g, pc.counts, pc.cmap, pc.v, pc.s, wMeta, wRefs, p)
			compareI32(t, "hplan", downloadI32(t, hplan), ref.HPlan)
			compareI32(t, "pivots", downloadI32(t, pivots), ref.Pivots)
			compareI32(t, "indirect", downloadI32(t, ind), ref.Indirect)
			st := downloadI32(t, stats)
			compareI32(t, "stats", st[p.Layer*hq*PlanStatWords:(p.Layer+1)*hq*PlanStatWords], ref.Stats)
			compareI32(t, "meta", downloadI32(t, meta), wMeta)
			gr := download(t, refs)
			for i := range wRefs {
				if math.Float32bits(gr[i]) != math.Float32bits(wRefs[i]) {
					t.Fatalf("refs[%d] = %v, want %v", i, gr[i], wRefs[i])
				}
			}
			// The fused kernel (PlanRoles) on fresh copies of meta and refs:
			// its gates (from the statistics' gate bits) as PlanGates', its
			// roles as the reference's from those gates.
			meta2, refs2 := uploadI32(t, d, pc.meta), uploadF32(t, d, pc.refs)
			hplan2, pivots2 := emptyI32(t, d, 4*hq), emptyI32(t, d, p.Chunks*p.CapPad)
			ind2, stats2 := emptyI32(t, d, p.Chunks*PlanIndirectWords), emptyI32(t, d, p.NumLayers*hq*PlanStatWords)
			opRun(t, d, func(r *runtime.Recorder) error {
				return PlanRoles(r, counts, vT, sT, aT, cmap, meta2, refs2, hplan2, pivots2, ind2, stats2, p)
			}, hplan2, pivots2, ind2, stats2)
			st2 := downloadI32(t, stats2)[p.Layer*hq*PlanStatWords : (p.Layer+1)*hq*PlanStatWords]
			g2 := make([]int32, 8*hq)
			for h := 0; h < hq; h++ {
				for j := 0; j < 4; j++ {
					bits := st2[h*PlanStatWords+PlanStatGate0+j]
					g2[8*h+j] = bits
					got := float64(math.Float32frombits(uint32(bits)))
					if math.IsNaN(got) {
						g2[8*h+4] |= 1 << j
					}
					if p.DenseAll {
						continue
					}
					if math.IsNaN(got) != math.IsNaN(want[h][j]) || !math.IsNaN(got) && math.Abs(got-want[h][j]) > 1e-5*max(1, want[h][j]) {
						t.Fatalf("roles: head %d gate %d: %v, want %v", h, j, got, want[h][j])
					}
				}
			}
			wMeta2, wRefs2 := append([]int32(nil), pc.meta...), append([]float32(nil), pc.refs...)
			ref2 := RefPlanDecide(g2, pc.counts, pc.cmap, pc.v, pc.s, wMeta2, wRefs2, p)
			compareI32(t, "roles: hplan", downloadI32(t, hplan2), ref2.HPlan)
			compareI32(t, "roles: pivots", downloadI32(t, pivots2), ref2.Pivots)
			compareI32(t, "roles: indirect", downloadI32(t, ind2), ref2.Indirect)
			compareI32(t, "roles: stats", st2, ref2.Stats)
			compareI32(t, "roles: meta", downloadI32(t, meta2), wMeta2)
			gr2 := download(t, refs2)
			for i := range wRefs2 {
				if math.Float32bits(gr2[i]) != math.Float32bits(wRefs2[i]) {
					t.Fatalf("roles: refs[%d] = %v, want %v", i, gr2[i], wRefs2[i])
				}
			}
			methods := map[int32]int{}
			for h := 0; h < hq; h++ {
				methods[ref.Stats[h*PlanStatWords+PlanStatReason]]++
				seen[ref.Stats[h*PlanStatWords+PlanStatReason]] = true
			}
			t.Logf("reasons %v", methods)
		})
	}
	for r := int32(PlanReasonNone); r <= PlanReasonShares; r++ {
		if !seen[r] {
			t.Errorf("no head took reason %d: the cases do not cover every role", r)
		}
	}
}

func TestPlanQueryAwareCut(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		hq, nb int
		gamma  float64
		ties   bool
	}{
		{2, 1, 0.9, false}, {3, 5, 0.5, true}, {3, 33, 0.9, false}, {4, 40, 0.95, true},
		{2, 40, 1, false}, {2, 70, 0.2, false}, {1, 9, 0.999, true}, {2, 2, 0.75, false},
	} {
		t.Run(fmt.Sprintf("hq%d_nb%d_g%v", c.hq, c.nb, c.gamma), func(t *testing.T) {
			p := PlanParams{Hq: c.hq, NumLayers: 1, N: c.nb * 16, B: 16, Gamma: c.gamma}
			nb, nbw := p.NB(), p.NBW()
			m := make([]float32, c.hq*nb*nb)
			hplan := make([]int32, 4*c.hq)
			for h := 0; h < c.hq; h++ {
				hplan[4*h] = int32(h % 2 * PlanModeQueryAware)
				if c.hq == 1 {
					hplan[0] = PlanModeQueryAware
				}
				for r := 0; r < nb; r++ {
					copy(m[(h*nb+r)*nb:], randDist(rng, r+1, r > 2, c.ties))
				}
				if nb == 2 { // sorted 1, ½, ½: at γ = ¾ the sum meets γ·nb exactly after the first ½
					copy(m[h*nb*nb:], []float32{1, 0, 0.5, 0.5})
				}
			}
			out := emptyI32(t, d, c.hq*nb*nbw)
			opRun(t, d, func(r *runtime.Recorder) error {
				return PlanQueryAwareCut(r, out, uploadF32(t, d, m), uploadI32(t, d, hplan), p)
			}, out)
			got := downloadI32(t, out)
			want := RefPlanQueryAwareCut(m, hplan, p)
			for h := 0; h < c.hq; h++ {
				g, w := got[h*nb*nbw:(h+1)*nb*nbw], want[h*nb*nbw:(h+1)*nb*nbw]
				if hplan[4*h] != PlanModeQueryAware {
					for i := range g {
						if uint32(g[i]) != PoisonBits {
							t.Fatalf("head %d (not query-aware) was written", h)
						}
					}
					continue
				}
				compareI32(t, fmt.Sprintf("head %d", h), g, w)
			}
		})
	}
}

// rowCoverCase is one case of TestPlanRowCoverAndPivot: nb blocks, z
// pivots in capSlots slots, γ, tied map values, the over-count vs_ratio.
type rowCoverCase struct {
	nb, z    int
	gamma    float64
	ties     bool
	compat   bool
	capSlots int
}

// TestPlanRowCoverAndPivot checks the row cover, with each cut forced
// (rank and bisection), and vs_ratio against the references.
func TestPlanRowCoverAndPivot(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []rowCoverCase{
		{1, 1, 0.9, false, false, 2}, {6, 2, 0.9, true, true, 3}, {33, 3, 0.95, false, false, 3},
		{40, 2, 1, false, true, 4}, {70, 1, 0.5, true, false, 2}, {150, 1, 0.8, true, false, 1},
	} {
		for _, cut := range []int{cutRank, cutBisect} {
			testPlanRowCover(t, d, rng, c, cut)
		}
	}
}

// testPlanRowCover runs case c with cut (cutRank or cutBisect) forced.
func testPlanRowCover(t *testing.T, d *runtime.Device, rng *rand.Rand, c rowCoverCase, cut int) {
	t.Run(fmt.Sprintf("nb%d_z%d_g%v_rank%v", c.nb, c.z, c.gamma, cut == cutRank), func(t *testing.T) {
		const hq, k = 5, 4
		p := PlanParams{Hq: hq, NumLayers: 3, Layer: 1, N: c.nb * 16, B: 16, K: k, Gamma: c.gamma, Cap: c.capSlots, VSRatioCompat: c.compat}
		nb, nbw := p.NB(), p.NBW()
		maps := make([]float32, c.capSlots*nb*nb)
		for x := 0; x < c.capSlots; x++ {
			for r := 0; r < nb; r++ {
				copy(maps[(x*nb+r)*nb:], randDist(rng, r+1, r > 1, c.ties))
			}
			if nb > 2 { // the running sum meets γ·Σ exactly at γ = ½
				copy(maps[(x*nb+1)*nb:], []float32{0.5, 0.5})
				copy(maps[(x*nb+2)*nb:], []float32{0.25, 0.5, 0.25})
			}
		}
		hplan := make([]int32, 4*hq)
		pivots := make([]int32, c.capSlots)
		for i := range pivots {
			pivots[i] = -1
		}
		for x, h := range rng.Perm(hq)[:c.z] {
			pivots[x] = int32(h)
		}
		for h := 0; h < hq; h++ {
			hplan[4*h+1] = int32(h % k)
		}
		for x := 0; x < c.z; x++ { // distinct clusters for the pivots of one layer
			hplan[4*pivots[x]+1] = int32(x)
		}
		vsbits := make([]int32, hq*2*nbw)
		for i := range vsbits {
			vsbits[i] = int32(rng.Uint32())
		}
		for h := 0; h < hq; h++ { // no bits past nb
			for w := 0; w < 2; w++ {
				row := vsbits[(2*h+w)*nbw : (2*h+w+1)*nbw]
				if nb%32 != 0 {
					row[nbw-1] &= int32(uint32(1)<<(nb%32) - 1)
				}
			}
		}
		counts := uploadI32(t, d, []int32{9, 9, 9, int32(nb), int32(c.z), 1, int32(c.z), 1, 1})
		pattern, rowstats := emptyI32(t, d, k*nb*nbw), emptyI32(t, d, c.capSlots*nb*4)
		meta := uploadI32(t, d, make([]int32, 4*k))
		stats := emptyI32(t, d, p.NumLayers*hq*PlanStatWords)
		mapsT, hplanT, pivT := uploadF32(t, d, maps), uploadI32(t, d, hplan), uploadI32(t, d, pivots)
		opRun(t, d, func(r *runtime.Recorder) error {
			if err := planRowCover(r, cut, counts, PlanIndirectRowCover, mapsT, hplanT, pivT, uploadI32(t, d, vsbits), pattern, rowstats, p); err != nil {
				return err
			}
			return PlanPivot(r, counts, PlanIndirectPivot, rowstats, pivT, hplanT, meta, stats, p)
		}, pattern, rowstats, stats)
		wantPat := make([]int32, k*nb*nbw)
		wantRS := RefPlanRowCover(maps, hplan, pivots, vsbits, wantPat, c.z, p)
		gotPat, gotRS := downloadI32(t, pattern), downloadI32(t, rowstats)
		gotMeta, gotStats := downloadI32(t, meta), downloadI32(t, stats)
		for x := 0; x < c.z; x++ {
			h := int(pivots[x])
			ci := int(hplan[4*h+1])
			compareI32(t, fmt.Sprintf("pattern of cluster %d", ci), gotPat[ci*nb*nbw:(ci+1)*nb*nbw], wantPat[ci*nb*nbw:(ci+1)*nb*nbw])
			var sum [2]float64
			var blocks int
			for r := 0; r < nb; r++ {
				o := (x*nb + r) * 4
				for j := 0; j < 2; j++ {
					g := float64(math.Float32frombits(uint32(gotRS[o+j])))
					if math.Abs(g-wantRS[o+j]) > 1e-5*(1+math.Abs(wantRS[o+j])) {
						t.Fatalf("slot %d row %d term %d: %v, want %v", x, r, j, g, wantRS[o+j])
					}
					sum[j] += wantRS[o+j]
				}
				if gotRS[o+2] != int32(wantRS[o+2]) {
					t.Fatalf("slot %d row %d: %d pattern blocks, want %v", x, r, gotRS[o+2], wantRS[o+2])
				}
				blocks += int(wantRS[o+2])
			}
			ratio := sum[0] / float64(nb)
			if c.compat {
				ratio = sum[1] / float64(nb)
			}
			gr := float64(math.Float32frombits(uint32(gotMeta[4*ci+3])))
			if math.Abs(gr-ratio) > 1e-5*(1+ratio) || gotMeta[4*ci+2] != int32(blocks) {
				t.Fatalf("cluster %d: vs_ratio %v blocks %d, want %v and %d", ci, gr, gotMeta[4*ci+2], ratio, blocks)
			}
			o := (p.Layer*hq + h) * PlanStatWords
			if gotStats[o+PlanStatVSRatio] != gotMeta[4*ci+3] || gotStats[o+PlanStatPattern] != int32(blocks) || gotStats[o+PlanStatPivotDone] != 1 {
				t.Fatalf("head %d statistics %v", h, gotStats[o:o+PlanStatWords])
			}
		}
		// Slots past z are not dispatched: their rows stay poisoned.
		for x := c.z; x < c.capSlots; x++ {
			if uint32(gotRS[x*nb*4]) != PoisonBits {
				t.Fatalf("slot %d (past z = %d) was written", x, c.z)
			}
		}
	})
}

func TestPlanUnionAndCSR(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		hq, nb, vsRows, mode int
		noQA                 bool
	}{
		{1, 1, 2, -1, false}, {4, 5, 2, -1, false}, {3, 33, 3, -1, false}, {5, 64, 2, -1, false}, {6, 64, 2, -1, true},
		{3, 70, 3, PlanModeVS, false}, {2, 40, 2, PlanModeAll, false}, {70, 3, 2, -1, false}, {3, 150, 2, -1, false},
	} {
		t.Run(fmt.Sprintf("hq%d_nb%d_vs%d_mode%d_noqa%v", c.hq, c.nb, c.vsRows, c.mode, c.noQA), func(t *testing.T) {
			const k = 3
			nb, nbw := c.nb, (c.nb+31)/32
			p := UnionParams{Hq: c.hq, NB: nb, VSRows: c.vsRows, Mode: c.mode, K: k, NoQueryAware: c.noQA}
			rnd := func(n int, density uint32) []int32 {
				out := make([]int32, n)
				for i := range out {
					for b := 0; b < 32; b++ {
						if rng.Uint32N(100) < density {
							out[i] |= int32(uint32(1) << b)
						}
					}
				}
				return out
			}
			hplan := make([]int32, 4*c.hq)
			for h := 0; h < c.hq; h++ {
				hplan[4*h], hplan[4*h+1] = int32(rng.IntN(4)), int32(rng.IntN(k))
			}
			vsbits, pattern, qabits := rnd(c.hq*c.vsRows*nbw, 10), rnd(k*nb*nbw, 20), rnd(c.hq*nb*nbw, 20)
			hplanT, vsT, patT, qaT := uploadI32(t, d, hplan), uploadI32(t, d, vsbits), uploadI32(t, d, pattern), uploadI32(t, d, qabits)
			counter := uploadI32(t, d, []int32{0})
			// PlanUnion, PlanScan and PlanCompact; PlanUnionScan and
			// PlanCompact; then PlanUnionCSR's one dispatch twice (the
			// counter must come back to 0 each time).
			const apart, scanned, csr = 0, 1, 2
			for run, how := range []int{apart, scanned, csr, csr} {
				rowbits, rowcnt := emptyI32(t, d, c.hq*nb*nbw), emptyI32(t, d, c.hq*nb)
				rowPtr, cols := emptyI32(t, d, c.hq*nb+1), emptyI32(t, d, c.hq*nb*(nb+1)/2)
				const layers, layer = 3, 1
				stats := emptyI32(t, d, layers*c.hq*PlanStatWords)
				opRun(t, d, func(r *runtime.Recorder) error {
					switch how {
					case csr:
						return planUnionCSR(r, compactFused, rowbits, rowcnt, hplanT, vsT, patT, qaT, rowPtr, cols, stats, counter, layer, p)
					case scanned:
						if err := PlanUnionScan(r, rowbits, rowcnt, hplanT, vsT, patT, qaT, rowPtr, stats, counter, layer, p); err != nil {
							return err
						}
					default:
						if err := PlanUnion(r, rowbits, rowcnt, hplanT, vsT, patT, qaT, p); err != nil {
							return err
						}
						if err := PlanScan(r, rowPtr, rowcnt, stats, c.hq, nb, layer); err != nil {
							return err
						}
					}
					return PlanCompact(r, cols, rowbits, rowPtr, c.hq, nb)
				}, rowbits, rowcnt, rowPtr, cols, stats)
				what := fmt.Sprintf("run %d (%s): ", run, [...]string{"apart", "union and scan", "one dispatch"}[how])
				wantBits, wantCnt := RefPlanUnion(hplan, vsbits, pattern, qabits, p)
				gotBits := downloadI32(t, rowbits)
				for h := 0; h < c.hq; h++ {
					for r := 0; r < nb; r++ {
						o := (h*nb + r) * nbw
						compareI32(t, fmt.Sprintf("%shead %d row %d", what, h, r), gotBits[o:o+r/32+1], wantBits[o:o+r/32+1])
					}
				}
				compareI32(t, what+"rowcnt", downloadI32(t, rowcnt), wantCnt)
				wantPtr, wantCols := RefPlanCSR(wantBits, c.hq, nb)
				compareI32(t, what+"rowPtr", downloadI32(t, rowPtr), wantPtr)
				compareI32(t, what+"cols", downloadI32(t, cols), wantCols)
				st := downloadI32(t, stats)
				for h := 0; h < c.hq; h++ {
					want := wantPtr[(h+1)*nb] - wantPtr[h*nb]
					if got := st[(layer*c.hq+h)*PlanStatWords+PlanStatBlocks]; got != want {
						t.Fatalf("%shead %d: %d blocks in the statistics, want %d", what, h, got, want)
					}
				}
				if got := downloadI32(t, counter); got[0] != 0 {
					t.Fatalf("%scounter left at %d, want 0", what, got[0])
				}
			}
		})
	}
}

// TestPlanSelectUnionCSR checks the SharePrefill plan's VS selection
// folded into the union (plan_union_csr_vs) and its two-dispatch form
// (TopKBits, PlanUnionCSR) against the references: vsbits as RefTopKBits,
// then the union and the CSR lists from them. The block estimates have
// ties, zeros and a −0; the budgets run from −1 to nb+1; nb 257 is the
// fused form's bound (256 candidates, one per invocation).
func TestPlanSelectUnionCSR(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct{ hq, nb int }{{1, 1}, {3, 2}, {5, 33}, {8, 64}, {2, 100}, {2, 257}} {
		for _, mode := range []int{compactFused, compactSeparate} {
			t.Run(fmt.Sprintf("hq%d_nb%d_fused%v", c.hq, c.nb, mode == compactFused), func(t *testing.T) {
				const k, layers, layer = 3, 2, 1
				hq, nb := c.hq, c.nb
				nbw := (nb + 31) / 32
				var v, s []float32
				for h := 0; h < hq; h++ {
					v = append(v, randDist(rng, nb, true, h%2 == 0)...)
					s = append(s, randDist(rng, nb, true, h%2 == 1)...)
				}
				v[0] = float32(math.Copysign(0, -1))
				hplan := make([]int32, 4*hq)
				for h := 0; h < hq; h++ {
					hplan[4*h], hplan[4*h+1] = int32(rng.IntN(4)), int32(rng.IntN(k))
					hplan[4*h+2], hplan[4*h+3] = int32(rng.IntN(nb+3)-1), int32(rng.IntN(nb+3)-1)
				}
				rnd := func(n int) []int32 {
					out := make([]int32, n)
					for i := range out {
						out[i] = int32(rng.Uint32() & rng.Uint32() & rng.Uint32())
					}
					return out
				}
				pattern, qabits := rnd(k*nb*nbw), rnd(hq*nb*nbw)
				vsbits, rowbits, rowcnt := emptyI32(t, d, hq*2*nbw), emptyI32(t, d, hq*nb*nbw), emptyI32(t, d, hq*nb)
				rowPtr, cols := emptyI32(t, d, hq*nb+1), emptyI32(t, d, hq*nb*(nb+1)/2)
				stats, counter := emptyI32(t, d, layers*hq*PlanStatWords), uploadI32(t, d, []int32{0})
				p := UnionParams{Hq: hq, NB: nb, VSRows: 2, Mode: -1, K: k}
				vT, sT, hplanT := uploadF32(t, d, v), uploadF32(t, d, s), uploadI32(t, d, hplan)
				patT, qaT := uploadI32(t, d, pattern), uploadI32(t, d, qabits)
				opRun(t, d, func(r *runtime.Recorder) error {
					return planSelectUnionCSR(r, mode, vsbits, vT, sT, rowbits, rowcnt, hplanT, patT, qaT, rowPtr, cols, stats, counter, layer, p)
				}, vsbits, rowbits, rowcnt, rowPtr, cols, stats)
				tp := TopKParams{Rows: hq, Stride: nb, Len: [2]int{nb, nb}, Forced: [2]int{1, 1}, Words: nbw, KFromBuf: true, KStride: 4, KOff: 2}
				wantVS := RefTopKBits(v, s, hplan, tp)
				compareI32(t, "vsbits", downloadI32(t, vsbits), wantVS)
				wantBits, wantCnt := RefPlanUnion(hplan, wantVS, pattern, qabits, p)
				gotBits := downloadI32(t, rowbits)
				for h := 0; h < hq; h++ {
					for r := 0; r < nb; r++ {
						o := (h*nb + r) * nbw
						compareI32(t, fmt.Sprintf("head %d row %d", h, r), gotBits[o:o+r/32+1], wantBits[o:o+r/32+1])
					}
				}
				compareI32(t, "rowcnt", downloadI32(t, rowcnt), wantCnt)
				wantPtr, wantCols := RefPlanCSR(wantBits, hq, nb)
				compareI32(t, "rowPtr", downloadI32(t, rowPtr), wantPtr)
				compareI32(t, "cols", downloadI32(t, cols), wantCols)
				st := downloadI32(t, stats)
				for h := 0; h < hq; h++ {
					if got, want := st[(layer*hq+h)*PlanStatWords+PlanStatBlocks], wantPtr[(h+1)*nb]-wantPtr[h*nb]; got != want {
						t.Fatalf("head %d: %d blocks in the statistics, want %d", h, got, want)
					}
				}
				if got := downloadI32(t, counter); got[0] != 0 {
					t.Fatalf("counter left at %d, want 0", got[0])
				}
			})
		}
	}
}

// TestPlanFusedBounds: the folded forms refuse sizes past their bounds
// (the rank cut past planRankMaxBlocks, the selection in the union past
// planSelectMaxBlocks, the selection outside the SharePrefill plan's
// union) with an error that names the limit, before recording anything.
func TestPlanFusedBounds(t *testing.T) {
	d := gputest.Device(t)
	x := emptyI32(t, d, 4)
	err := d.Run(func(r *runtime.Recorder) error {
		p := PlanParams{Hq: 1, NumLayers: 1, N: 300 * 16, B: 16, K: 1, Gamma: 0.9, Cap: 1}
		return planRowCover(r, cutRank, x, 0, empty(t, d, runtime.F32, 300*300), x, x, emptyI32(t, d, 2*10), emptyI32(t, d, 300*10), emptyI32(t, d, 300*4), p)
	})
	if err == nil || !strings.Contains(err.Error(), "256 blocks") {
		t.Errorf("rank cut at 300 blocks: error %v, want one naming its 256-block limit", err)
	}
	for _, c := range []struct {
		p    UnionParams
		want string
	}{
		{UnionParams{Hq: 1, NB: 300, VSRows: 2, Mode: -1}, "257 blocks"},
		{UnionParams{Hq: 1, NB: 4, VSRows: 3, Mode: -1}, "VS rows"},
		{UnionParams{Hq: 1, NB: 4, VSRows: 2, Mode: PlanModeVS}, "VS rows"},
	} {
		err := d.Run(func(r *runtime.Recorder) error {
			return planSelectUnionCSR(r, compactFused, x, nil, nil, x, x, x, x, x, x, x, x, x, 0, c.p)
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %q", c.p, err, c.want)
		}
	}
}

func TestPlanVSBlocks(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		hq, n, b, tile int
		single         bool
	}{
		{1, 1, 32, 64, false}, {2, 50, 32, 64, false}, {2, 128, 64, 64, false}, {3, 300, 32, 16, false},
		{2, 1000, 64, 48, false}, {2, 257, 128, 64, false},
		// One kept column and one kept offset per head, at every position
		// 0…hq−1: every tile boundary of the mapping rule is met exactly.
		{40, 300, 32, 16, true}, {70, 200, 64, 64, true},
	} {
		t.Run(fmt.Sprintf("hq%d_n%d_b%d_t%d", c.hq, c.n, c.b, c.tile), func(t *testing.T) {
			nwt := (c.n + 31) / 32
			nb := (c.n + c.b - 1) / c.b
			nbw := (nb + 31) / 32
			tok := make([]int32, c.hq*2*nwt)
			for i := 0; i < c.hq*2; i++ {
				if c.single {
					setBit(tok[i*nwt:(i+1)*nwt], (i/2)%c.n)
					continue
				}
				for j := 0; j < c.n; j++ {
					if rng.IntN(40) == 0 {
						setBit(tok[i*nwt:(i+1)*nwt], j)
					}
				}
			}
			out := emptyI32(t, d, c.hq*3*nbw)
			opRun(t, d, func(r *runtime.Recorder) error {
				return PlanVSBlocks(r, out, uploadI32(t, d, tok), c.hq, c.n, c.b, c.tile)
			}, out)
			compareI32(t, "vsbits", downloadI32(t, out), RefPlanVSBlocks(tok, c.hq, c.n, c.b, c.tile))
		})
	}
}

// TestBlockMapIndirect: the slots below the GPU-written count equal
// BlockMap's maps of the same heads; the slots past it are not written.
// The grid width is the one PlanDecide writes (PlanParams.BlockMapGroups:
// kpw 1 at nb 4, 2 at nb 32) or nb (extra workgroups leave at once).
func TestBlockMapIndirect(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, p := range []EstParams{{S: 100, B: 32, Hq: 4, Hkv: 2, D: 8}, {S: 250, B: 8, Hq: 4, Hkv: 2, D: 16}} {
		t.Run(caseName(p), func(t *testing.T) {
			_, _, q, k := estInputs(t, d, rng, p)
			lse := uploadF32(t, d, make([]float32, p.Hq*p.S))
			if err := d.Run(func(r *runtime.Recorder) error {
				return FlashAttention(r, empty(t, d, runtime.F16, p.S*p.Hq*p.D), lse, q, k, k, AttnParams{Hq: p.Hq, Hkv: p.Hkv, D: p.D, Sq: p.S, Skv: p.S, Causal: true})
			}); err != nil {
				t.Fatal(err)
			}
			nb := p.NB()
			g := (PlanParams{N: p.S, B: p.B}).BlockMapGroups()
			if kpw := blockMapIndirectBlocksPerGroup(nb); g != (nb+kpw-1)/kpw {
				t.Fatalf("BlockMapGroups %d, want ⌈%d/%d⌉", g, nb, kpw)
			}
			t.Logf("nb %d: grid width %d", nb, g)
			const slots = 3
			heads := uploadI32(t, d, []int32{2, 0, 3})
			want := empty(t, d, runtime.F32, slots*nb*nb)
			opRun(t, d, func(r *runtime.Recorder) error { return BlockMap(r, want, q, k, lse, heads, p) }, want)
			w := download(t, want)
			for _, width := range []int{g, nb} {
				got := empty(t, d, runtime.F32, slots*nb*nb)
				counts := uploadI32(t, d, []int32{int32(width), int32(nb), 2})
				opRun(t, d, func(r *runtime.Recorder) error {
					return BlockMapIndirect(r, counts, 0, got, q, k, lse, heads, p)
				}, got)
				g := download(t, got)
				for i := 0; i < 2*nb*nb; i++ {
					if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
						t.Fatalf("width %d: element %d: %v, want %v", width, i, g[i], w[i])
					}
				}
				if math.Float32bits(g[2*nb*nb]) != PoisonBits {
					t.Fatalf("width %d: slot 2 (past the count) was written", width)
				}
			}
		})
	}
}
