package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// estCases cover S ∈ {1, 50, 100, 257, 600, 4200}, B ∈ {32, 64}, Hq/Hkv ∈
// {1/1, 4/2, 4/1}, D ∈ {8, 64}: S < B, S a multiple of B, S not a multiple of B,
// one partial block, many blocks.
var estCases = []EstParams{
	{S: 1, B: 32, Hq: 1, Hkv: 1, D: 8},
	{S: 1, B: 64, Hq: 4, Hkv: 2, D: 64},
	{S: 50, B: 32, Hq: 4, Hkv: 2, D: 8},
	{S: 50, B: 64, Hq: 4, Hkv: 1, D: 64},
	{S: 64, B: 32, Hq: 4, Hkv: 2, D: 8},
	{S: 100, B: 32, Hq: 4, Hkv: 1, D: 8},
	{S: 100, B: 64, Hq: 1, Hkv: 1, D: 64},
	{S: 257, B: 32, Hq: 4, Hkv: 2, D: 64},
	{S: 257, B: 64, Hq: 4, Hkv: 1, D: 8},
	{S: 600, B: 64, Hq: 4, Hkv: 2, D: 64},
	{S: 600, B: 32, Hq: 1, Hkv: 1, D: 8},
	// 132 blocks: more than one batch of statistics per invocation in the
	// fused ℓ tail (est_lse.glsl: LSE_BATCH 16, 8 invocations a row at B 32
	// and 256 invocations).
	{S: 4200, B: 32, Hq: 1, Hkv: 1, D: 8},
}

const estTol = 1e-4

func caseName(p EstParams) string {
	return fmt.Sprintf("S%d_B%d_H%d-%d_D%d", p.S, p.B, p.Hq, p.Hkv, p.D)
}

// estInputs returns f16-rounded Q [S,Hq,D] and K [S,Hkv,D] and their tensors.
// A per-head bias on a few keys makes the distributions non-uniform.
func estInputs(t *testing.T, d *runtime.Device, rng *rand.Rand, p EstParams) (qv, kv []float32, q, k *runtime.Tensor) {
	t.Helper()
	qv = runtime.RoundF16(gputest.Normal(rng, p.S*p.Hq*p.D, 1.5))
	kv = runtime.RoundF16(gputest.Normal(rng, p.S*p.Hkv*p.D, 1.5))
	return qv, kv, upload(t, d, runtime.F16, qv), upload(t, d, runtime.F16, kv)
}

func estWorkspace(t *testing.T, d *runtime.Device, p EstParams) *EstWorkspace {
	t.Helper()
	ws, err := NewEstWorkspace(d, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ws.Free)
	return ws
}

// checkRowSums checks that every row of length n (the first valid(r)
// entries) of x sums to 1 within tol.
func checkRowSums(t *testing.T, what string, x []float32, n int, valid func(row int) int, tol float64) {
	t.Helper()
	for r := 0; r < len(x)/n; r++ {
		var s float64
		for _, e := range x[r*n : r*n+valid(r)] {
			s += float64(e)
		}
		if math.IsNaN(s) || math.Abs(s-1) > tol {
			t.Errorf("%s: row %d sums to %.8f, want 1 ± %g", what, r, s, tol)
			return
		}
	}
}

// TestLastBlockEstimates checks the estimate against the float64 reference
// with ℓ and the slash sums combined by separate passes and inside the
// score passes (twice in one submission, workspace poisoned before each:
// the fused passes' counters must be back at 0 for the second), and that
// the fused slash combination gives the separate pass's s bit for bit.
func TestLastBlockEstimates(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, p := range estCases {
		qv, kv, q, k := estInputs(t, d, rng, p)
		wv, wsl, wvb, wsb := RefLastBlock(qv, kv, p)
		var sepS []float32 // s of the separate passes
		for _, mode := range []struct {
			name       string
			lse, slash int
			reps       int
		}{{"separate", lseSeparate, slashSeparate, 1}, {"fused", lseFused, slashFused, 2}, {"fused-slash", lseSeparate, slashFused, 2}} {
			t.Run(caseName(p)+"/"+mode.name, func(t *testing.T) {
				nb := p.NB()
				v, s := empty(t, d, runtime.F32, p.Hq*p.S), empty(t, d, runtime.F32, p.Hq*p.S)
				vb, sb := empty(t, d, runtime.F32, p.Hq*nb), empty(t, d, runtime.F32, p.Hq*nb)
				ws := estWorkspace(t, d, p)
				if err := d.Run(func(r *runtime.Recorder) error {
					for range mode.reps {
						for _, x := range []*runtime.Tensor{ws.stats, ws.lse, ws.spart, v, s, vb, sb} {
							if err := Poison(r, x); err != nil {
								return err
							}
						}
						if err := lastBlockEstimates(r, estCfg{lse: mode.lse, slash: mode.slash}, ws, v, s, vb, sb, q, k, p); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					name string
					got  *runtime.Tensor
					want []float64
					n    int
				}{{"v", v, wv, p.S}, {"s", s, wsl, p.S}, {"vBlk", vb, wvb, nb}, {"sBlk", sb, wsb, nb}} {
					got := download(t, c.got)
					e := gputest.RelErr(got, c.want)
					t.Logf("%s: relative error %.3g", c.name, e)
					if !(e <= estTol) {
						t.Errorf("%s: relative error %.3g > %g", c.name, e, estTol)
					}
					checkRowSums(t, c.name, got, c.n, func(int) int { return c.n }, 1e-5)
					if c.name != "s" {
						continue
					}
					if mode.slash == slashSeparate {
						sepS = got
					} else if mode.lse == lseSeparate && sepS != nil && !slices.Equal(got, sepS) {
						checkEntries(t, "s fused vs separate", got, sepS, 0)
						t.Errorf("s: the fused slash combination differs from the separate pass")
					}
				}
			})
		}
	}
}

func TestPooledEstimate(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, p := range estCases {
		t.Run(caseName(p), func(t *testing.T) {
			qv, kv, q, k := estInputs(t, d, rng, p)
			nb := p.NB()
			a := empty(t, d, runtime.F32, p.Hq*nb)
			m := empty(t, d, runtime.F32, p.Hq*nb*nb)
			ws := estWorkspace(t, d, p)
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := PooledEstimate(r, ws, a, q, k, p); err != nil {
					return err
				}
				return PooledBlockScores(r, ws, m, q, k, p)
			}); err != nil {
				t.Fatal(err)
			}
			ga, gm := download(t, a), download(t, m)
			if e := gputest.RelErr(ga, RefPooledEstimate(qv, kv, p)); e > estTol {
				t.Errorf("â: relative error %.3g > %g", e, estTol)
			}
			if e := gputest.RelErr(gm, RefPooledBlockScores(qv, kv, p)); e > estTol {
				t.Errorf("M: relative error %.3g > %g", e, estTol)
			}
			checkRowSums(t, "â", ga, nb, func(int) int { return nb }, 1e-5)
			checkRowSums(t, "M", gm, nb, func(r int) int { return r%nb + 1 }, 1e-5)
			for h := 0; h < p.Hq; h++ {
				for r := 0; r < nb; r++ {
					for c := r + 1; c < nb; c++ {
						if x := gm[(h*nb+r)*nb+c]; x != 0 {
							t.Fatalf("M[%d][%d,%d] = %v above the diagonal, want 0", h, r, c, x)
						}
					}
				}
			}
		})
	}
}

func TestBlockMap(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, p := range estCases {
		t.Run(caseName(p), func(t *testing.T) {
			qv, kv, q, k := estInputs(t, d, rng, p)
			nb := p.NB()
			lse64 := RefLSE(qv, kv, p)
			lse32 := make([]float32, len(lse64))
			for i, x := range lse64 {
				lse32[i] = float32(x)
			}
			lse := upload(t, d, runtime.F32, lse32)
			// Every head once, in a scrambled order, plus a repeat.
			heads := rng.Perm(p.Hq)
			heads = append(heads, heads[0])
			h32 := make([]int32, len(heads))
			for i, h := range heads {
				h32[i] = int32(h)
			}
			ht, err := d.NewTensor(runtime.I32, len(h32))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ht.Free)
			if err := ht.UploadI32(h32); err != nil {
				t.Fatal(err)
			}
			out := empty(t, d, runtime.F32, len(heads)*nb*nb)
			if err := d.Run(func(r *runtime.Recorder) error { return BlockMap(r, out, q, k, lse, ht, p) }); err != nil {
				t.Fatal(err)
			}
			got := download(t, out)
			want := RefBlockMap(qv, kv, gputest.F64(lse32), heads, p)
			e := gputest.RelErr(got, want)
			t.Logf("Â: relative error %.3g", e)
			if e > estTol {
				t.Errorf("Â: relative error %.3g > %g", e, estTol)
			}
			checkRowSums(t, "Â", got, nb, func(r int) int { return r%nb + 1 }, 1e-5)
			for x := range heads {
				for r := 0; r < nb; r++ {
					for c := r + 1; c < nb; c++ {
						if v := got[(x*nb+r)*nb+c]; v != 0 {
							t.Fatalf("Â[%d][%d,%d] = %v above the diagonal, want 0", x, r, c, v)
						}
					}
				}
			}

			// CSR variant over a random causal subset (diagonal always listed).
			var rowPtr, cols []int32
			listed := make([]bool, len(heads)*nb*nb)
			for x := range heads {
				for r := 0; r < nb; r++ {
					rowPtr = append(rowPtr, int32(len(cols)))
					for c := 0; c <= r; c++ {
						if c == r || rng.IntN(2) == 0 {
							cols = append(cols, int32(c))
							listed[(x*nb+r)*nb+c] = true
						}
					}
				}
				rowPtr = append(rowPtr, int32(len(cols)))
			}
			rp, err := d.NewTensor(runtime.I32, len(rowPtr))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rp.Free)
			ct, err := d.NewTensor(runtime.I32, len(cols))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ct.Free)
			if err := rp.UploadI32(rowPtr); err != nil {
				t.Fatal(err)
			}
			if err := ct.UploadI32(cols); err != nil {
				t.Fatal(err)
			}
			outc := empty(t, d, runtime.F32, len(heads)*nb*nb)
			if err := d.Run(func(r *runtime.Recorder) error { return BlockMapCSR(r, outc, q, k, lse, ht, rp, ct, p) }); err != nil {
				t.Fatal(err)
			}
			wantc := make([]float64, len(want))
			for i := range want {
				if listed[i] {
					wantc[i] = want[i]
				}
			}
			if e := gputest.RelErr(download(t, outc), wantc); e > estTol {
				t.Errorf("Â (CSR): relative error %.3g > %g", e, estTol)
			}
		})
	}
}

// refCoverAmbiguous reports whether the sorted-prefix sums of x come within
// tol·Σx of γ·Σx, where f32 summation on the GPU may legitimately flip the
// count by one.
func refCoverAmbiguous(x []float64, gamma, tol float64) bool {
	v := append([]float64(nil), x...)
	var total float64
	for _, e := range v {
		total += e
	}
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if v[j] > v[i] {
				v[i], v[j] = v[j], v[i]
			}
		}
	}
	var s float64
	for _, e := range v {
		s += e
		if math.Abs(s-gamma*total) <= tol*total {
			return true
		}
	}
	return false
}

func TestCoverCounts(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	type cover struct {
		name  string
		hq, n int
		gamma float32
		gen   func(h, n int) []float32
	}
	dist := func(x []float32) []float32 { // normalise to sum 1
		var s float64
		for _, e := range x {
			s += float64(e)
		}
		for i := range x {
			x[i] = float32(float64(x[i]) / s)
		}
		return x
	}
	random := func(h, n int) []float32 { // heavy-tailed, no ties (almost surely)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Exp(3 * rng.NormFloat64()))
		}
		return dist(x)
	}
	// Planted tie: 4 entries of 1/8 and 16 of 1/32 (sum 1, exact in f32),
	// padded with zeros and shuffled. γ = 0.9 crosses inside the 1/32
	// group (k = 4 + 12 + 1 = 17); γ = 0.75 lands exactly on a prefix sum
	// (0.5 + 8/32), which stays ≤ γ, so the next entry crosses (k = 13).
	tie := func(h, n int) []float32 {
		x := make([]float32, n)
		for i := 0; i < 4; i++ {
			x[i] = 1.0 / 8
		}
		for i := 4; i < 20; i++ {
			x[i] = 1.0 / 32
		}
		rng.Shuffle(n, func(i, j int) { x[i], x[j] = x[j], x[i] })
		return x
	}
	// Exact hit: {1/2, 1/4, 1/4} and zeros at γ = 1/2. F(t) = Σ x·[x ≥ t]
	// equals γ·Σx exactly for t ∈ (1/4, 1/2], so the crossing value is 1/4
	// only if the search keeps F(t) > γ·Σx strict (k = 2: 1/2 stays within
	// γ, the first 1/4 crosses).
	exact := func(h, n int) []float32 {
		x := make([]float32, n)
		x[0], x[1], x[2] = 0.5, 0.25, 0.25
		rng.Shuffle(n, func(i, j int) { x[i], x[j] = x[j], x[i] })
		return x
	}
	uniform := func(h, n int) []float32 { // all tied
		x := make([]float32, n)
		for i := range x {
			x[i] = 1 / float32(n)
		}
		return x
	}
	wide := func(h, n int) []float32 { // spans ~60 binary exponents
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Exp(8 * rng.NormFloat64()))
		}
		return dist(x)
	}
	// One spike holding most of the mass over tiny entries (and zeros).
	spike := func(h, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			if i%3 != 0 {
				x[i] = float32(rng.Float64() * 1e-6)
			}
		}
		x[rng.IntN(n)] = 1
		return dist(x)
	}
	// Near-uniform: most entries in one or two exponent bins, so
	// est_cover_hist's crossing bin holds more than a small CAP and its
	// bracket is gathered mid-search.
	flat := func(h, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Exp(0.05 * rng.NormFloat64()))
		}
		return dist(x)
	}
	zeros := func(h, n int) []float32 { return make([]float32, n) }
	// Ties across many entries of a few values in different exponent
	// bins: crossing inside a tied group that spans chunks.
	steps := func(h, n int) []float32 {
		x := make([]float32, n)
		vals := []float32{0.75, 0.5, 0.375, 0.0625, 0.046875}
		for i := range x {
			x[i] = vals[rng.IntN(len(vals))]
		}
		return x
	}
	cases := []cover{
		{"random/n1", 2, 1, 0.9, random},
		{"random/n50", 4, 50, 0.9, random},
		{"random/n257", 3, 257, 0.95, random},
		{"random/n600", 4, 600, 0.5, random},
		{"random/n4099", 2, 4099, 0.9, random},
		{"random/n9001", 2, 9001, 0.9, random},
		{"random/gamma1", 2, 100, 1, random},
		{"random/gamma0", 2, 100, 0, random},
		{"tie/0.9", 3, 40, 0.9, tie},
		{"tie/0.75", 3, 40, 0.75, tie},
		{"exact/0.5", 2, 37, 0.5, exact},
		{"uniform/n256", 2, 256, 0.9, uniform},
		{"uniform/n3001", 2, 3001, 0.9, uniform},
		{"uniform/n9001", 1, 9001, 0.9, uniform},
		{"flat/n3001", 2, 3001, 0.9, flat},
		{"wide/n5003", 3, 5003, 0.9, wide},
		{"wide/gamma0.01", 2, 2047, 0.01, wide},
		{"random/gamma0.999", 2, 3333, 0.999, random},
		{"spike/n4097", 2, 4097, 0.9, spike},
		{"spike/n1", 1, 1, 0.5, spike},
		{"zeros/n700", 2, 700, 0.9, zeros},
		{"steps/n6007", 2, 6007, 0.8, steps},
		{"random/heads9", 9, 1500, 0.9, random},
	}
	// Every kernel: the device's choice, the bins with subgroup sums and
	// with the shared-memory tree, at a local size whose register cache
	// (16 entries per invocation) does not hold n = 4099 or 9001, and the
	// 15-probe reference.
	cfgs := []struct {
		name string
		cfg  coverCfg
	}{
		{"default", coverCfg{}},
		{"bins-tree-64", coverCfg{variant: "bins", local: 64, noSubgroup: true}},
		{"bins-128", coverCfg{variant: "bins", local: 128}},
		{"probes", coverCfg{variant: "probes"}},
		{"sg", coverCfg{variant: "sg"}},
		// est_cover_sg with 64 cached entries: longer vectors read the
		// rest from global memory.
		{"sg-64-cache64", coverCfg{variant: "sg", local: 64, cache: 64}},
		// est_cover_sg walking every entry in every pass: the same counts
		// as sg to the bit (checked below).
		{"sg-scan", coverCfg{variant: "sg-scan"}},
		{"sg-scan-64-cache64", coverCfg{variant: "sg-scan", local: 64, cache: 64}},
		// est_cover_hist at its default chunk (1024: one chunk for short
		// vectors), at chunks of 256 (many chunks, the last partial) and
		// of 300 entries with 16 gathered entries, so that a crossing bin
		// of more entries is re-read from the vector each pass.
		{"hist", coverCfg{variant: "hist"}},
		{"hist-64-chunk256", coverCfg{variant: "hist", local: 64, chunk: 256}},
		{"hist-32-chunk300-cache16", coverCfg{variant: "hist", local: 32, chunk: 300, cache: 16}},
	}
	for _, c := range cases {
		byCfg := map[string][]int32{}
		vv := make([]float32, 0, c.hq*c.n)
		sv := make([]float32, 0, c.hq*c.n)
		for h := 0; h < c.hq; h++ {
			vv = append(vv, c.gen(h, c.n)...)
			sv = append(sv, c.gen(h, c.n)...)
		}
		v, s := upload(t, d, runtime.F32, vv), upload(t, d, runtime.F32, sv)
		for _, cf := range cfgs {
			t.Run(c.name+"/"+cf.name, func(t *testing.T) {
				p := EstParams{Hq: c.hq, S: c.n}
				ws := coverWorkspace(t, d, c.hq, c.n, cf.cfg.chunk)
				counts, err := d.NewTensor(runtime.I32, 2*c.hq)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(counts.Free)
				run := func() []int32 {
					t.Helper()
					if err := d.Run(func(r *runtime.Recorder) error {
						if err := Poison(r, counts); err != nil {
							return err
						}
						return coverCounts(r, cf.cfg, ws, counts, v, s, c.gamma, p)
					}); err != nil {
						t.Fatal(err)
					}
					got, err := counts.DownloadI32()
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
				got := run()
				byCfg[cf.name] = got
				// Deterministic: a second run (counters reset by the
				// first, outputs poisoned again) gives the same counts.
				if again := run(); !slices.Equal(got, again) {
					t.Errorf("second run: counts %v, first %v", again, got)
				}
				for h := 0; h < c.hq; h++ {
					for w, x := range [][]float32{vv[h*c.n : (h+1)*c.n], sv[h*c.n : (h+1)*c.n]} {
						want := RefCoverCount(gputest.F64(x), float64(c.gamma))
						g := int(got[2*h+w])
						if g == want {
							continue
						}
						if abs(g-want) == 1 && refCoverAmbiguous(gputest.F64(x), float64(c.gamma), 1e-6) {
							t.Logf("head %d vec %d: got %d, want %d (boundary within f32 rounding)", h, w, g, want)
							continue
						}
						t.Errorf("head %d vec %d: count %d, want %d", h, w, g, want)
					}
				}
				if c.name == "tie/0.9" || c.name == "tie/0.75" || c.name == "exact/0.5" {
					want := int32(17)
					switch c.gamma {
					case 0.75:
						want = 13
					case 0.5:
						want = 2
					}
					for i, g := range got {
						if g != want {
							t.Errorf("count %d = %d, want %d", i, g, want)
						}
					}
				}
			})
		}
		// Dropping the entries below the bracket changes no sum: sg and
		// sg-scan agree exactly, also where a count is off the reference's
		// by one.
		for _, pair := range [][2]string{{"sg", "sg-scan"}, {"sg-64-cache64", "sg-scan-64-cache64"}} {
			a, b := byCfg[pair[0]], byCfg[pair[1]]
			if a != nil && b != nil && !slices.Equal(a, b) {
				t.Errorf("%s: %s counts %v, %s %v", c.name, pair[0], a, pair[1], b)
			}
		}
	}
}

// coverWorkspace returns an estimate workspace whose est_cover_hist
// scratch holds n entries of hq heads at chunks of chunk entries (0: the
// default).
func coverWorkspace(t *testing.T, d *runtime.Device, hq, n, chunk int) *EstWorkspace {
	t.Helper()
	sw := n
	if chunk > 0 {
		chunks := (n + chunk - 1) / chunk
		if chunks > coverHistMaxChunks {
			t.Fatalf("%d chunks of %d entries: more than a workspace holds", chunks, chunk)
		}
		sw = max(n, chunks*coverHistMinChunk)
	}
	return estWorkspace(t, d, EstParams{Hq: hq, Hkv: hq, D: 1, S: sw, B: 1})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestEstShapeErrors(t *testing.T) {
	d := gputest.Device(t)
	p := EstParams{S: 50, B: 32, Hq: 4, Hkv: 2, D: 8}
	nb := p.NB()
	q := empty(t, d, runtime.F16, p.S*p.Hq*p.D)
	k := empty(t, d, runtime.F16, p.S*p.Hkv*p.D)
	kBad := empty(t, d, runtime.F16, p.S*p.Hkv*p.D+1)
	qF32 := empty(t, d, runtime.F32, p.S*p.Hq*p.D)
	a := empty(t, d, runtime.F32, p.Hq*nb)
	v := empty(t, d, runtime.F32, p.Hq*p.S)
	ci := empty(t, d, runtime.I32, 2*p.Hq)
	small := estWorkspace(t, d, EstParams{S: 10, B: 32, Hq: 4, Hkv: 2, D: 8})
	ws := estWorkspace(t, d, p)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	check := func(name string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	check("bad GQA", PooledEstimate(r, ws, a, q, k, EstParams{S: 50, B: 32, Hq: 4, Hkv: 3, D: 8}))
	check("k length", PooledEstimate(r, ws, a, q, kBad, p))
	check("q dtype", PooledEstimate(r, ws, a, qF32, k, p))
	check("small workspace", PooledEstimate(r, small, a, q, k, p))
	check("a length", PooledEstimate(r, ws, v, q, k, p))
	check("v as vBlk", LastBlockEstimates(r, ws, v, v, v, a, q, k, p))
	check("counts dtype", CoverCounts(r, ws, a, v, v, 0.9, p))
	check("gamma NaN", CoverCounts(r, ws, ci, v, v, float32(math.NaN()), p))
	check("hist without workspace", coverCounts(r, coverCfg{variant: "hist"}, nil, ci, v, v, 0.9, p))
	check("hist small workspace", coverCounts(r, coverCfg{variant: "hist", chunk: 1}, ws, ci, v, v, 0.9, p))
	check("hist local size", coverCounts(r, coverCfg{variant: "hist", local: 8}, ws, ci, v, v, 0.9, p))
	check("heads dtype", BlockMap(r, a, q, k, v, a, p))
}
