package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// qkCases are awkward shapes for qk_cm.comp: S below, at and off a multiple
// of B; B not a multiple of 16; GQA ratios 1, 2 and 4; D 64 and 128; row
// tiles TR of 16, 32, 64 and 128, several K tiles per block and several row
// passes per block. On a CPU device (scripts/test-coopmat-lavapipe.sh),
// where lavapipe takes about 15 s to compile one module of qk_cm.comp at
// D = 64 and a minute at D = 128 (the emulated fragments), only the cases
// marked cpu run: GQA 1 and 4, D 64 and 128, S off a multiple of B, partial
// subgroup strips, TR 16, 32, 64 and 128, two K tiles per block, two row
// passes per block (B 256), a window of fewer than 16 rows (B 8).
var qkCases = []struct {
	p   EstParams
	cpu bool
}{
	{EstParams{S: 17, B: 64, Hq: 4, Hkv: 1, D: 64}, false},
	{EstParams{S: 100, B: 32, Hq: 4, Hkv: 4, D: 64}, true},
	{EstParams{S: 130, B: 40, Hq: 4, Hkv: 1, D: 128}, true},
	{EstParams{S: 257, B: 64, Hq: 4, Hkv: 1, D: 128}, false},
	{EstParams{S: 300, B: 128, Hq: 8, Hkv: 2, D: 64}, false},
	{EstParams{S: 300, B: 128, Hq: 2, Hkv: 1, D: 64}, true},
	{EstParams{S: 530, B: 256, Hq: 2, Hkv: 1, D: 64}, true},
	{EstParams{S: 70, B: 16, Hq: 4, Hkv: 1, D: 128}, false},
	{EstParams{S: 45, B: 8, Hq: 2, Hkv: 1, D: 64}, true},
}

// qkTestCases are the qkCases for d (checked by qkSetup).
func qkTestCases(d *runtime.Device) []EstParams {
	var l []EstParams
	for _, c := range qkCases {
		if c.cpu || !cpuDevice(d) {
			l = append(l, c.p)
		}
	}
	return l
}

// qkEach runs f, as a subtest per case of qkTestCases, on a device with
// cooperative matrices (cmDevice), after qkSetup, with fresh f16-rounded
// inputs (estInputs).
func qkEach(t *testing.T, op string, f func(t *testing.T, d *runtime.Device, rng *rand.Rand, p EstParams, qv, kv []float32, q, k *runtime.Tensor)) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	for _, p := range qkTestCases(d) {
		t.Run(caseName(p), func(t *testing.T) {
			qkSetup(t, d, p, op)
			qv, kv, q, k := estInputs(t, d, rng, p)
			f(t, d, rng, p, qv, kv, q, k)
		})
	}
}

// qkSetup fails unless op ("blockmap" or "estimate") has a
// cooperative-matrix tile for p on d and its calls take the qk_cm modules
// (checkQKShaders).
func qkSetup(t *testing.T, d *runtime.Device, p EstParams, op string) {
	t.Helper()
	tile, ok := qkTileFor(op, d.Caps(), d.Info().MaxWorkgroupInvocations, p.D, p.B)
	if !ok {
		t.Fatalf("%s: no cooperative-matrix tile for D=%d B=%d on this device", op, p.D, p.B)
	}
	t.Logf("%s tile %v", op, tile)
	checkQKShaders(t, d, p, op)
}

// qkEntryTol bounds, entry by entry, the relative difference between the
// cooperative-matrix and the scalar block maps and estimates. Scores differ
// by a few f32 ulps (s·1e-7 for |s| ≲ 30), which moves each exp(s − ℓ) by
// as much relatively; 1e-4 leaves room for a tensor core's truncating
// accumulation. A γ-cover over a row (cumulative sums against γ·Σ) can then
// differ from the scalar kernel's only where a cumulative sum lies within
// 1e-4 relative of the threshold.
const qkEntryTol = 1e-4

// checkEntries fails unless every got[i] is within tol·|want[i]| of want[i]
// (exact zeros stay exact; NaN fails).
func checkEntries(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		if math.IsNaN(d) || d > tol*math.Abs(w) {
			t.Errorf("%s: entry %d is %v, want %v ± %g relative", what, i, got[i], want[i], tol)
			return
		}
		if w != 0 && d/math.Abs(w) > worst {
			worst, at = d/math.Abs(w), i
		}
	}
	t.Logf("%s: largest relative entry difference %.3g (entry %d)", what, worst, at)
}

// qkLSE returns the f32 dense LSE of p's inputs and its float64 widening.
func qkLSE(t *testing.T, d *runtime.Device, qv, kv []float32, p EstParams) (*runtime.Tensor, []float64) {
	l64 := RefLSE(qv, kv, p)
	l32 := make([]float32, len(l64))
	for i, x := range l64 {
		l32[i] = float32(x)
	}
	return upload(t, d, runtime.F32, l32), gputest.F64(l32)
}

// checkQKShaders: on a device with cooperative matrices, op's calls
// ("blockmap" or "estimate") take the qk_cm modules both by default and
// when forced, and the scalar modules when forced.
func checkQKShaders(t *testing.T, d *runtime.Device, p EstParams, op string) {
	t.Helper()
	type kernels func(variant string) ([]*runtime.Kernel, error)
	get := map[string]kernels{
		"blockmap": func(variant string) ([]*runtime.Kernel, error) {
			r, err := d.NewRecorder()
			if err != nil {
				return nil, err
			}
			defer r.Release()
			a, err := blockMapKernel("block map", r, false, p, variant, false)
			if err != nil {
				return nil, err
			}
			b, err := blockMapKernel("block map", r, true, p, variant, false)
			return []*runtime.Kernel{a, b}, err
		},
		"estimate": func(variant string) ([]*runtime.Kernel, error) {
			a, b, _, err := estScoreKernels("estimate", d, p, variant, false, false, false)
			return []*runtime.Kernel{a, b}, err
		},
	}[op]
	want := map[string][]string{
		"blockmap": {"blockmap_cm_dense", "blockmap_cm_csr", "blockmap_dense", "blockmap_csr"},
		"estimate": {"est_last_cm_stats", "est_last_cm_vs", "est_last_stats", "est_last_vs"},
	}[op]
	for i, variant := range []string{"", "coopmat", "scalar"} {
		ks, err := get(variant)
		if err != nil {
			t.Fatalf("%s variant %q: %v", op, variant, err)
		}
		w := want[:2]
		if i == 2 {
			w = want[2:]
		}
		for j, k := range ks {
			if k.Desc().Shader != w[j] {
				t.Errorf("%s variant %q runs %s, want %s", op, variant, k.Desc().Shader, w[j])
			}
		}
	}
}

// TestBlockMapCoopMat compares the cooperative-matrix block map with the
// scalar kernel (entry by entry, qkEntryTol) and with the float64 reference,
// in its dense, CSR and indirect forms, on outputs poisoned with NaN: every
// head in a scrambled order, a repeat, and a head index out of range (NaN
// rows); CSR lists with holes, empty rows, a missing diagonal and columns
// out of range; an indirect count below the slots.
func TestBlockMapCoopMat(t *testing.T) {
	qkEach(t, "blockmap", func(t *testing.T, d *runtime.Device, rng *rand.Rand, p EstParams, qv, kv []float32, q, k *runtime.Tensor) {
		lse, lse64 := qkLSE(t, d, qv, kv, p)
		nb := p.NB()
		valid := rng.Perm(p.Hq)
		valid = append(valid, valid[0])
		h32 := make([]int32, 0, len(valid)+1)
		for _, h := range valid {
			h32 = append(h32, int32(h))
		}
		h32 = append(h32, int32(p.Hq)) // out of range: NaN rows
		heads := uploadI32(t, d, h32)
		nh, nv := len(h32), len(valid)*nb*nb
		want := RefBlockMap(qv, kv, lse64, valid, p)

		dense := func(variant string) []float32 {
			out := empty(t, d, runtime.F32, nh*nb*nb)
			opRun(t, d, func(r *runtime.Recorder) error { return blockMap(r, variant, out, q, k, lse, heads, p) }, out)
			return download(t, out)
		}
		cm, sc := dense("coopmat"), dense("scalar")
		if e := gputest.RelErr(cm[:nv], want); e > estTol {
			t.Errorf("Â coopmat: relative error %.3g > %g", e, estTol)
		}
		if e := gputest.RelErr(sc[:nv], want); e > estTol {
			t.Errorf("Â scalar: relative error %.3g > %g", e, estTol)
		}
		checkEntries(t, "Â coopmat vs scalar", cm[:nv], sc[:nv], qkEntryTol)
		checkRowSums(t, "Â coopmat", cm[:nv], nb, func(r int) int { return r%nb + 1 }, 1e-5)
		for r := 0; r < nb; r++ {
			for c := 0; c < nb; c++ {
				x := cm[nv+r*nb+c]
				if (c > r && x != 0) || (c <= r && !math.IsNaN(float64(x))) {
					t.Fatalf("out-of-range head: Â[%d,%d] = %v, want NaN on and below the diagonal, 0 above", r, c, x)
				}
			}
		}

		// CSR: random subsets of the causal blocks (some rows empty, the
		// diagonal not always listed) and columns outside [0, nb).
		var rowPtr, cols []int32
		listed := make([]bool, nh*nb*nb)
		for x := 0; x < nh; x++ {
			for r := 0; r < nb; r++ {
				rowPtr = append(rowPtr, int32(len(cols)))
				if rng.IntN(5) == 0 {
					continue
				}
				for c := 0; c <= r; c++ {
					if rng.IntN(3) != 0 {
						cols = append(cols, int32(c))
						listed[(x*nb+r)*nb+c] = true
					}
				}
				if rng.IntN(4) == 0 {
					cols = append(cols, -1, int32(nb))
				}
			}
			rowPtr = append(rowPtr, int32(len(cols)))
		}
		rp, ct := uploadI32(t, d, rowPtr), uploadI32(t, d, cols)
		csr := func(variant string) []float32 {
			out := empty(t, d, runtime.F32, nh*nb*nb)
			opRun(t, d, func(r *runtime.Recorder) error {
				return blockMapCSR(r, variant, out, q, k, lse, heads, rp, ct, p)
			}, out)
			return download(t, out)
		}
		cmc, scc := csr("coopmat"), csr("scalar")
		wantc := make([]float64, nv)
		for i := range wantc {
			if listed[i] {
				wantc[i] = want[i]
			}
		}
		if e := gputest.RelErr(cmc[:nv], wantc); e > estTol {
			t.Errorf("Â (CSR) coopmat: relative error %.3g > %g", e, estTol)
		}
		checkEntries(t, "Â (CSR) coopmat vs scalar", cmc[:nv], scc[:nv], qkEntryTol)
		for i := nv; i < len(cmc); i++ {
			if x := cmc[i]; listed[i] != math.IsNaN(float64(x)) || (!listed[i] && x != 0) {
				t.Fatalf("out-of-range head (CSR): entry %d = %v (listed %v), want NaN where listed, else 0", i-nv, x, listed[i])
			}
		}

		// Indirect: the count stops one slot short of the heads; that slot
		// keeps its poison, the others equal the dense form bit for bit.
		z := nh - 1
		counts := uploadI32(t, d, []int32{int32(nb), int32(nb), int32(z)})
		out := empty(t, d, runtime.F32, nh*nb*nb)
		opRun(t, d, func(r *runtime.Recorder) error {
			return blockMapIndirect(r, "coopmat", counts, 0, out, q, k, lse, heads, p)
		}, out)
		ind := download(t, out)
		for i := 0; i < z*nb*nb; i++ {
			if math.Float32bits(ind[i]) != math.Float32bits(cm[i]) {
				t.Fatalf("indirect: entry %d = %v, want the dense form's %v", i, ind[i], cm[i])
			}
		}
		for i := z * nb * nb; i < len(ind); i++ {
			if math.Float32bits(ind[i]) != PoisonBits {
				t.Fatalf("indirect: entry %d of slot %d (past the count) was written", i, z)
			}
		}
	})
}

// TestLastBlockEstimatesCoopMat compares the estimate with cooperative-matrix
// score passes with the scalar passes (entry by entry, qkEntryTol) and
// with the float64 reference, workspace and outputs poisoned with NaN. The
// cooperative-matrix passes run with the automatic count of key blocks per
// workgroup and with 1, 2, 3 (not dividing nb = 4) and more than nb (K
// tiles prefetched across key blocks), and with 2 without the K-tile
// prefetch; every run gives the same bits as one block per workgroup.
func TestLastBlockEstimatesCoopMat(t *testing.T) {
	qkEach(t, "estimate", func(t *testing.T, d *runtime.Device, rng *rand.Rand, p EstParams, qv, kv []float32, q, k *runtime.Tensor) {
		nb := p.NB()
		ws := estWorkspace(t, d, p)
		runCfg := func(c estCfg) [4][]float32 {
			v, s := empty(t, d, runtime.F32, p.Hq*p.S), empty(t, d, runtime.F32, p.Hq*p.S)
			vb, sb := empty(t, d, runtime.F32, p.Hq*nb), empty(t, d, runtime.F32, p.Hq*nb)
			opRun(t, d, func(r *runtime.Recorder) error {
				return lastBlockEstimates(r, c, ws, v, s, vb, sb, q, k, p)
			}, v, s, vb, sb, ws.stats, ws.lse, ws.spart)
			return [4][]float32{download(t, v), download(t, s), download(t, vb), download(t, sb)}
		}
		run := func(variant string, kpw int) [4][]float32 { return runCfg(estCfg{variant: variant, kpw: kpw}) }
		names := [4]string{"v", "s", "vBlk", "sBlk"}
		cm, sc := run("coopmat", 1), run("scalar", 0)
		wv, wsl, wvb, wsb := RefLastBlock(qv, kv, p)
		for i, c := range []struct {
			want []float64
			n    int
		}{{wv, p.S}, {wsl, p.S}, {wvb, nb}, {wsb, nb}} {
			if e := gputest.RelErr(cm[i], c.want); e > estTol {
				t.Errorf("%s coopmat: relative error %.3g > %g", names[i], e, estTol)
			}
			checkEntries(t, names[i]+" coopmat vs scalar", cm[i], sc[i], qkEntryTol)
			checkRowSums(t, names[i]+" coopmat", cm[i], c.n, func(int) int { return c.n }, 1e-5)
		}
		for _, kpw := range []int{0, 2, 3, nb + 2} {
			got := run("coopmat", kpw)
			for i := range got {
				if !slices.Equal(got[i], cm[i]) { // NaN (a block left out) is unequal too
					checkEntries(t, fmt.Sprintf("%s coopmat, %d blocks per workgroup, vs 1", names[i], kpw), got[i], cm[i], 0)
					t.Errorf("%s coopmat: %d key blocks per workgroup differ from 1", names[i], kpw)
				}
			}
		}
		// Without the K-tile prefetch (SHAREPREFILL_EST_PREFETCH=off): the
		// same bits.
		off := runCfg(estCfg{variant: "coopmat", kpw: 2, noPrefetch: true})
		for i := range off {
			if !slices.Equal(off[i], cm[i]) {
				checkEntries(t, names[i]+" coopmat without prefetch vs with", off[i], cm[i], 0)
				t.Errorf("%s coopmat: the passes without K-tile prefetch differ from those with it", names[i])
			}
		}
	})
}

// TestEstBlocksPerGroup: the automatic count of key blocks per workgroup of
// the estimate's cooperative-matrix passes keeps at least estMinGroups
// workgroups and at most estMaxBlocksPerGroup blocks each; a tuned count
// wins, within [1, nb].
func TestEstBlocksPerGroup(t *testing.T) {
	for _, c := range []struct{ nb, hq, tuned, want int }{
		{64, 8, 0, 2},    // bench-lm-8k at 8K: 512 blocks, 256 workgroups
		{128, 8, 0, 4},   // 16K
		{256, 8, 0, 8},   // 32K
		{1024, 32, 0, 8}, // capped
		{3, 2, 0, 1},     // too few blocks
		{40, 8, 0, 1},    // 320 workgroups, two each would leave 160
		{64, 8, 3, 3},
		{4, 8, 9, 4},
		{0, 8, 0, 1},
	} {
		got := estBlocksPerGroup(c.nb, c.hq, c.tuned)
		if got != c.want {
			t.Errorf("estBlocksPerGroup(nb %d, Hq %d, tuned %d) = %d, want %d", c.nb, c.hq, c.tuned, got, c.want)
		}
		if c.tuned == 0 && got > 1 && (c.nb+got-1)/got*c.hq < estMinGroups {
			t.Errorf("nb %d, Hq %d: %d blocks per workgroup leave fewer than %d workgroups", c.nb, c.hq, got, estMinGroups)
		}
	}
}

// TestQKTileFor: the cooperative-matrix tile needs the capability, a
// subgroup size that divides 256, D a multiple of 16 and shared memory for
// the tile; TR covers the block up to 128 and TC shrinks to fit.
func TestQKTileFor(t *testing.T) {
	big := runtime.Caps{CoopMat: true, SubgroupSize: 32, MaxSharedMemory: 48 << 10}
	for _, c := range []struct {
		op   string
		caps runtime.Caps
		d, b int
		want qkTile
		ok   bool
	}{
		{"blockmap", big, 128, 128, qkTile{128, 64}, true},
		{"blockmap", big, 128, 64, qkTile{64, 64}, true},
		{"blockmap", big, 64, 40, qkTile{64, 64}, true},
		{"blockmap", big, 64, 32, qkTile{32, 32}, true},
		{"blockmap", big, 128, 1024, qkTile{128, 64}, true},
		{"blockmap", big, 64, 8, qkTile{16, 16}, true},
		{"estimate", big, 128, 128, qkTile{128, 32}, true},
		{"estimate", big, 128, 64, qkTile{64, 64}, true},
		{"blockmap", big, 72, 128, qkTile{}, false},                                                        // D not a multiple of 16
		{"blockmap", runtime.Caps{SubgroupSize: 32, MaxSharedMemory: 48 << 10}, 128, 128, qkTile{}, false}, // no coopmat
		{"blockmap", runtime.Caps{CoopMat: true, SubgroupSize: 24, MaxSharedMemory: 48 << 10}, 128, 128, qkTile{}, false},
		{"blockmap", runtime.Caps{CoopMat: true, SubgroupSize: 32, MaxSharedMemory: 16 << 10}, 128, 128, qkTile{128, 16}, true},
		{"blockmap", runtime.Caps{CoopMat: true, SubgroupSize: 32, MaxSharedMemory: 8 << 10}, 128, 128, qkTile{}, false},
		{"estimate", runtime.Caps{CoopMat: true, SubgroupSize: 32, MaxSharedMemory: 48 << 10}, 1024, 1024, qkTile{}, false},
	} {
		got, ok := qkTileFor(c.op, c.caps, 1024, c.d, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("qkTileFor(%s, %+v, D=%d, B=%d) = %v, %v; want %v, %v", c.op, c.caps, c.d, c.b, got, ok, c.want, c.ok)
		}
		if ok && qkShared(c.op, got, c.d, c.b)+512 > int(c.caps.MaxSharedMemory) {
			t.Errorf("%v does not fit %d bytes", got, c.caps.MaxSharedMemory)
		}
	}
	if _, ok := qkTileFor("blockmap", big, 64, 128, 128); ok {
		t.Error("a 128-row tile of 4 subgroups of 32 was taken with 64 invocations per workgroup")
	}
}

// TestQKKernelNames: BlockMapKernel and EstimateKernel name the variant
// the calls run (scalar for D not a multiple of 16), and forcing a variant
// the device lacks, or an unknown one, is an error.
func TestQKKernelNames(t *testing.T) {
	d := gputest.Device(t)
	p := EstParams{S: 100, B: 64, Hq: 4, Hkv: 1, D: 64}
	odd := p
	odd.D = 72
	for _, c := range []struct {
		op   string
		name func(*runtime.Device, EstParams) string
	}{{"blockmap", BlockMapKernel}, {"estimate", EstimateKernel}} {
		want := "scalar 16x16"
		if tile, ok := qkTileFor(c.op, d.Caps(), d.Info().MaxWorkgroupInvocations, p.D, p.B); ok {
			want = tile.String()
		}
		if got := c.name(d, p); got != want {
			t.Errorf("%s kernel for D=64: %q, want %q", c.op, got, want)
		}
		if got := c.name(d, odd); got != "scalar 16x16" {
			t.Errorf("%s kernel for D=72: %q, want scalar 16x16", c.op, got)
		}
	}
	_, _, q, k := estInputs(t, d, gputest.Rand(t), p)
	lse := empty(t, d, runtime.F32, p.Hq*p.S)
	heads := uploadI32(t, d, []int32{0})
	out := empty(t, d, runtime.F32, p.NB()*p.NB())
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := blockMap(r, "tensor", out, q, k, lse, heads, p); err == nil || !strings.Contains(err.Error(), `"tensor"`) {
		t.Errorf("unknown variant: %v, want an error naming it", err)
	}
	if !d.Caps().CoopMat {
		if err := blockMap(r, "coopmat", out, q, k, lse, heads, p); !errors.Is(err, runtime.ErrMissingFeature) {
			t.Errorf("coopmat forced without cooperative matrices: %v, want ErrMissingFeature", err)
		}
	}
}
