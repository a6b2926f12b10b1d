package kernels

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestFlashAttentionCoopMat compares the cooperative-matrix kernel with the
// float64 reference and with the scalar kernel: causal and not, GQA, chunked
// prefill (Q0 > 0), sizes that leave partial row tiles, partial subgroup
// tiles and partial KV tiles, every tile configuration that fits.
func TestFlashAttentionCoopMat(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	cases := []struct {
		p  AttnParams
		dt runtime.DType
	}{
		{AttnParams{Hq: 4, Hkv: 1, D: 128, Sq: 1, Skv: 1, Causal: true}, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 100, Skv: 100, Causal: true}, runtime.F32},
		{AttnParams{Hq: 8, Hkv: 2, D: 128, Sq: 257, Skv: 257, Causal: true}, runtime.F16},
		{AttnParams{Hq: 2, Hkv: 2, D: 128, Sq: 70, Skv: 300, Q0: 230, Causal: true}, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 4, D: 32, Sq: 50, Skv: 130}, runtime.F16},
		{AttnParams{Hq: 4, Hkv: 1, D: 128, Sq: 1500, Skv: 1500, Causal: true}, runtime.F16},
		// bench-lm-8k's heads, partial tiles; then scales the folded
		// exponent (optFoldScale) must not take.
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 517, Skv: 517, Causal: true}, runtime.F16},
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 300, Skv: 300, Causal: true, Scale: -0.2}, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 90, Skv: 200, Q0: 110, Causal: true, Scale: 1}, runtime.F32},
	}
	if cpuDevice(d) {
		// lavapipe (scripts/test-coopmat-lavapipe.sh): small heads, short rows.
		cases = []struct {
			p  AttnParams
			dt runtime.DType
		}{
			{AttnParams{Hq: 4, Hkv: 1, D: 32, Sq: 1, Skv: 1, Causal: true}, runtime.F32},
			{AttnParams{Hq: 4, Hkv: 2, D: 16, Sq: 100, Skv: 100, Causal: true}, runtime.F16},
			{AttnParams{Hq: 2, Hkv: 2, D: 32, Sq: 40, Skv: 90, Q0: 50, Causal: true}, runtime.F32},
			{AttnParams{Hq: 2, Hkv: 1, D: 16, Sq: 33, Skv: 70}, runtime.F16},
			{AttnParams{Hq: 2, Hkv: 1, D: 32, Sq: 40, Skv: 40, Causal: true, Scale: -0.3}, runtime.F32},
		}
	}
	for _, c := range cases {
		p := c.p
		in := newAttnInputs(t, d, rng, p, 3)
		wo, wl := RefAttention(in.q, in.k, in.v, p)
		so, sl := attnOut(t, d, p, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error {
			tl, err := ChooseAttnTiles(d, p.D, 0)
			if err != nil {
				return err
			}
			return flashAttention(r, so, sl, in.tq, in.tk, in.tv, p, tl)
		}); err != nil {
			t.Fatal(err)
		}
		scalar := download(t, so)
		for _, tl := range cmAttnTestTiles(d, p.D, 0) {
			name := fmt.Sprintf("%v out=%s tiles=%v", p, c.dt, tl)
			o, lse := attnOut(t, d, p, c.dt)
			if err := d.Run(func(r *runtime.Recorder) error {
				return flashAttentionCM(r, o, lse, in.tq, in.tk, in.tv, p, tl)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkAttn(t, name, o, lse, wo, wl)
			if e := gputest.RelErr(download(t, o), gputest.F64(scalar)); !(e <= attnOTol) {
				t.Errorf("%s: differs from the scalar kernel by %.3g", name, e)
			}
		}
		// No LSE binding.
		o, _ := attnOut(t, d, p, c.dt)
		if err := d.Run(func(r *runtime.Recorder) error {
			return FlashAttentionCoopMat(r, o, nil, in.tq, in.tk, in.tv, p)
		}); err != nil {
			t.Fatal(err)
		}
		checkAttn(t, fmt.Sprintf("%v no LSE", p), o, nil, wo, nil)
	}
}

// TestSparseAttentionCoopMat: random block lists (always column 0 and the
// diagonal), the diagonal alone, empty lists, block sizes 32..128.
func TestSparseAttentionCoopMat(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	cases := []struct {
		p       AttnParams
		B       int
		density float64
		dt      runtime.DType
	}{
		{AttnParams{Hq: 4, Hkv: 1, D: 128, Sq: 300, Skv: 300, Causal: true}, 64, 0.3, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 128, Sq: 600, Skv: 600, Causal: true}, 128, 0.5, runtime.F16},
		{AttnParams{Hq: 2, Hkv: 1, D: 64, Sq: 150, Skv: 150, Causal: true}, 32, -1, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 128, Sq: 90, Skv: 250, Q0: 160, Causal: true}, 32, 0.4, runtime.F32},
	}
	if cpuDevice(d) {
		// lavapipe: the last two cases with small heads.
		cases = cases[2:]
		cases[0].p.D = 32
		cases[1].p.D, cases[1].dt = 16, runtime.F16
	}
	for _, c := range cases {
		p, B := c.p, c.B
		name := fmt.Sprintf("%v B=%d density=%g", p, B, c.density)
		in := newAttnInputs(t, d, rng, p, 0)
		nb := (p.Skv + B - 1) / B
		rp, cl := randomCSR(rng, p.Hq, nb, c.density)
		trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
		wo, wl := RefSparseAttention(in.q, in.k, in.v, rp, cl, p, B)
		o, lse := attnOut(t, d, p, c.dt)
		if err := d.Run(func(r *runtime.Recorder) error {
			return SparseAttentionCoopMat(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkAttn(t, name, o, lse, wo, wl)
		if c.density >= 0 && c.density < 1 && nb > 2 {
			do, _ := RefAttention(in.q, in.k, in.v, p)
			if e := gputest.RelErr(download(t, o), do); e < 10*attnOTol {
				t.Errorf("%s: sparse output is too close to dense (%.3g): lists not applied?", name, e)
			}
		}
		// Every kernel and tile that divides the block.
		for _, tl := range cmAttnTestTiles(d, p.D, B) {
			o, lse := attnOut(t, d, p, c.dt)
			if err := d.Run(func(r *runtime.Recorder) error {
				return sparseAttentionCM(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B, tl)
			}); err != nil {
				t.Fatalf("%s tiles=%v: %v", name, tl, err)
			}
			checkAttn(t, fmt.Sprintf("%s tiles=%v", name, tl), o, lse, wo, wl)
		}
	}
	// Empty lists for query block 1 of every head: O = 0, LSE = -Inf there.
	p := AttnParams{Hq: 2, Hkv: 1, D: 32, Sq: 100, Skv: 100, Causal: true}
	B := 32
	in := newAttnInputs(t, d, rng, p, 0)
	nb := (p.Skv + B - 1) / B
	rp, cl := []int32{0}, []int32{}
	for h := 0; h < p.Hq; h++ {
		for r := 0; r < nb; r++ {
			if r != 1 {
				for c := 0; c <= r; c++ {
					cl = append(cl, int32(c))
				}
			}
			rp = append(rp, int32(len(cl)))
		}
	}
	wo, wl := RefSparseAttention(in.q, in.k, in.v, rp, cl, p, B)
	trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
	for _, tl := range cmAttnTestTiles(d, p.D, B) {
		o, lse := attnOut(t, d, p, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error {
			return sparseAttentionCM(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B, tl)
		}); err != nil {
			t.Fatal(err)
		}
		checkAttn(t, fmt.Sprintf("empty rows tiles=%v", tl), o, lse, wo, wl)
	}
}

// cpuDevice reports a CPU implementation (lavapipe), where the tests keep
// to small problems.
func cpuDevice(d *runtime.Device) bool { return d.Info().Type == runtime.TypeCPU }

// cpuAttnTestTiles are the configurations a CPU device tests: lavapipe's
// default (attn_cmr 128×32), the smallest attn_cmr tile, two row fragments
// and the shared-memory reductions (attn_cmr-cv 32×16), the folded scale,
// and attn_cm1's smallest tile for CPU drivers of subgroups 16–64. A cold
// shader cache took 406 s for TestFlashAttentionCoopMat with two more
// (attn_cmr 64×32, with two row fragments and with the shared-memory
// reductions); the GPU runs every configuration.
var cpuAttnTestTiles = []cmAttnTiles{
	{BR: 128, BC: 32, RF: 1, Kind: "cmr"},
	{BR: 32, BC: 16, RF: 1, Kind: "cmr"},
	{BR: 32, BC: 16, RF: 2, Kind: "cmr-cv", Generic: true},
	{BR: 32, BC: 16, RF: 1, Kind: "cmr", Generic: true, Opt: optFoldScale},
	{BR: 32, BC: 16},
}

// cmAttnTestTiles: the configurations that fit d for head dim D (and whose
// BR and BC divide block B, when B > 0) among every configuration of the
// preference and tuning lists, attn_cmr with two row fragments per
// subgroup, and attn_cmr forced onto its shared-memory reductions (the path
// of accumulator layouts the register reductions do not cover); on a CPU
// device, those of cpuAttnTestTiles.
func cmAttnTestTiles(d *runtime.Device, D, B int) []cmAttnTiles {
	all := append(append([]cmAttnTiles(nil), cmAttnTileList...), cmAttnTuned...)
	all = append(all,
		cmAttnTiles{BR: 64, BC: 32, RF: 2, Kind: "cmr"},
		cmAttnTiles{BR: 64, BC: 32, RF: 2, Kind: "cmr-cv"},
		cmAttnTiles{BR: 64, BC: 32, RF: 1, Kind: "cmr", Generic: true},
		cmAttnTiles{BR: 32, BC: 16, RF: 2, Kind: "cmr-cv", Generic: true},
		cmAttnTiles{BR: 64, BC: 32, RF: 2, Kind: "cmr", Opt: optFoldScale},
		cmAttnTiles{BR: 32, BC: 16, RF: 1, Kind: "cmr", Generic: true, Opt: optFoldScale},
	)
	var l []cmAttnTiles
	for _, tl := range all {
		// On a CPU device every new pipeline compiles for a minute or more
		// (the CI's cooperative-matrix stage would outgrow its budget), so
		// it runs cpuAttnTestTiles only; the GPU runs them all.
		if cpuDevice(d) && !slices.Contains(cpuAttnTestTiles, tl) {
			continue
		}
		if tl.valid(d, D) && (B == 0 || B%tl.BR == 0 && B%tl.BC == 0) {
			l = append(l, tl)
		}
	}
	return l
}

// TestCMAttnTiles runs everywhere: the shared-memory formula keeps the
// preferred tile of each kernel under NVIDIA's 48 KiB for D = 128.
func TestCMAttnTiles(t *testing.T) {
	seen := map[string]bool{}
	for _, tl := range append(append([]cmAttnTiles(nil), cmAttnTileList...), cmAttnTuned...) {
		if seen[tl.kind()] {
			continue
		}
		seen[tl.kind()] = true
		if s := cmAttnShared(tl, 128); s+512 > 48<<10 {
			t.Errorf("tile %v needs %d bytes for D=128", tl, s)
		}
	}
}

// TestCM2Fold: the GQA fold attn_cm2 takes is the largest power of two up to
// the tile's Fold that divides the heads per KV head and BR.
func TestCM2Fold(t *testing.T) {
	for _, c := range []struct {
		t       cmAttnTiles
		hq, hkv int
		want    int
	}{
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2", Fold: 4}, 32, 8, 4},
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2", Fold: 4}, 16, 8, 2},
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2", Fold: 4}, 8, 8, 1},
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2", Fold: 8}, 28, 4, 1},
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2", Fold: 8}, 64, 8, 8},
		{cmAttnTiles{BR: 16, BC: 16, Kind: "cm2", Fold: 8}, 64, 2, 8},
		{cmAttnTiles{BR: 128, BC: 128, Kind: "cm2"}, 32, 8, 1},
		{cmAttnTiles{BR: 128, BC: 32, Kind: "cm1", Fold: 4}, 32, 8, 1},
	} {
		if got := cm2Fold(c.t, AttnParams{Hq: c.hq, Hkv: c.hkv}); got != c.want {
			t.Errorf("cm2Fold(%v, Hq=%d, Hkv=%d) = %d, want %d", c.t, c.hq, c.hkv, got, c.want)
		}
	}
}

// TestCMAttnOpt: the variant names round-trip, kinds take only their
// variants, and the folded exponent is dropped for scales outside
// [minFoldScale2, 1], where it would be wrong (c ≤ 0) or could overflow.
func TestCMAttnOpt(t *testing.T) {
	for _, c := range []struct {
		in   string
		want cmAttnOpt
	}{{"", 0}, {"fs", optFoldScale}, {"pipe", optPipe}, {"fs+pipe", optFoldScale | optPipe}, {"pipe+fs", optFoldScale | optPipe}} {
		got, err := parseCMAttnOpt(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseCMAttnOpt(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if (optFoldScale | optPipe).String() != "fs+pipe" {
		t.Errorf("String = %q, want fs+pipe", (optFoldScale | optPipe).String())
	}
	for _, in := range []string{"fast", "fs+", "fs pipe"} {
		if _, err := parseCMAttnOpt(in); err == nil {
			t.Errorf("parseCMAttnOpt(%q): no error", in)
		}
	}
	if a := optPipe.allowed("cmr"); a != optFoldScale {
		t.Errorf("cmr allows %v, want fs", a)
	}
	if a := optPipe.allowed("cm1"); a != 0 {
		t.Errorf("cm1 allows %v, want none", a)
	}
	both := optFoldScale | optPipe
	for _, c := range []struct {
		scale2 float32
		want   uint32
	}{
		{0.125 * 1.4426950, uint32(both)},
		{1, uint32(both)},
		{minFoldScale2, uint32(both)},
		{1.0001, uint32(optPipe)},
		{0, uint32(optPipe)},
		{-0.2, uint32(optPipe)},
		{minFoldScale2 / 2, uint32(optPipe)},
		{float32(math.NaN()), uint32(optPipe)},
	} {
		if got := both.spec(c.scale2); got != c.want {
			t.Errorf("spec(%g) = %d, want %d", c.scale2, got, c.want)
		}
	}
}

// TestCMAttnForHeadDim: a default tile adds its small-head-dim variants
// at head dims up to 64 only, keeping the variants it has; the first cm2
// default folds the scale there.
func TestCMAttnForHeadDim(t *testing.T) {
	tile := cmAttnTiles{BR: 128, BC: 128, RF: 1, Kind: "cm2", Opt: optPipe, OptSmallD: optFoldScale}
	for _, c := range []struct {
		d    int
		want cmAttnOpt
	}{{16, optPipe | optFoldScale}, {64, optPipe | optFoldScale}, {80, optPipe}, {128, optPipe}} {
		if got := tile.forHeadDim(c.d).Opt; got != c.want {
			t.Errorf("head dim %d: variants %v, want %v", c.d, got, c.want)
		}
	}
	if first := cmAttnTileList[0]; first.Kind != "cm2" || first.forHeadDim(64).Opt != optFoldScale || first.forHeadDim(128).Opt != 0 {
		t.Errorf("first default tile %+v: want cm2 folding the scale at head dim 64 only", first)
	}
}
