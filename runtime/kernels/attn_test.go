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

const (
	attnOTol   = 2e-3 // relative (L2) error of O
	attnLSETol = 1e-4 // absolute error of LSE
)

// attnInputs are f16-rounded random Q, K, V and their device tensors.
type attnInputs struct {
	q, k, v    []float32
	tq, tk, tv *runtime.Tensor
}

func newAttnInputs(t *testing.T, d *runtime.Device, rng *rand.Rand, p AttnParams, extraKV int) attnInputs {
	t.Helper()
	var in attnInputs
	in.q = runtime.RoundF16(gputest.Normal(rng, p.Sq*p.Hq*p.D, 1.5))
	in.k = runtime.RoundF16(gputest.Normal(rng, (p.Skv+extraKV)*p.Hkv*p.D, 1))
	in.v = runtime.RoundF16(gputest.Normal(rng, (p.Skv+extraKV)*p.Hkv*p.D, 1))
	in.tq = upload(t, d, runtime.F16, in.q)
	in.tk = upload(t, d, runtime.F16, in.k)
	in.tv = upload(t, d, runtime.F16, in.v)
	return in
}

// attnOut makes poisoned O and LSE tensors.
func attnOut(t *testing.T, d *runtime.Device, p AttnParams, dt runtime.DType) (o, lse *runtime.Tensor) {
	return empty(t, d, dt, p.Sq*p.Hq*p.D), empty(t, d, runtime.F32, p.Hq*p.Sq)
}

// checkAttn compares O (relative) and LSE (absolute, −Inf must match).
func checkAttn(t *testing.T, name string, o, lse *runtime.Tensor, wantO, wantL []float64) {
	t.Helper()
	if e := gputest.RelErr(download(t, o), wantO); !(e <= attnOTol) {
		t.Errorf("%s: O relative error %.3g > %.3g", name, e, attnOTol)
	}
	if lse == nil {
		return
	}
	got := download(t, lse)
	worst, at := 0.0, -1
	for i, w := range wantL {
		g := float64(got[i])
		var e float64
		switch {
		case math.IsInf(w, -1) && math.IsInf(g, -1):
		case math.IsInf(w, -1) || math.IsNaN(g) || math.IsInf(g, 0):
			e = math.Inf(1)
		default:
			e = math.Abs(g - w)
		}
		if e > worst || at < 0 {
			worst, at = e, i
		}
	}
	if !(worst <= attnLSETol) {
		t.Errorf("%s: LSE error %.3g > %.3g (element %d: got %v, want %v)", name, worst, attnLSETol, at, got[at], wantL[at])
	}
}

func TestFlashAttention(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cases := []struct {
		p  AttnParams
		dt runtime.DType
	}{
		{AttnParams{Hq: 1, Hkv: 1, D: 8, Sq: 1, Skv: 1, Causal: true}, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 7, Skv: 7, Causal: true}, runtime.F32},
		{AttnParams{Hq: 8, Hkv: 2, D: 8, Sq: 257, Skv: 257, Causal: true}, runtime.F16},
		{AttnParams{Hq: 4, Hkv: 2, D: 128, Sq: 100, Skv: 100, Causal: false}, runtime.F32},
		{AttnParams{Hq: 1, Hkv: 1, D: 128, Sq: 520, Skv: 520, Causal: true}, runtime.F16},
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 33, Skv: 300, Q0: 267, Causal: true}, runtime.F32},           // last chunk
		{AttnParams{Hq: 4, Hkv: 2, D: 12, Sq: 50, Skv: 90, Q0: 20, Causal: true, Scale: 0.3}, runtime.F32}, // middle chunk: keys past the queries unused
		{AttnParams{Hq: 4, Hkv: 1, D: 64, Sq: 40, Skv: 77, Causal: false}, runtime.F16},                    // cross attention shape
	}
	for _, c := range cases {
		name := fmt.Sprintf("%v out=%s", c.p, c.dt)
		in := newAttnInputs(t, d, rng, c.p, 3)
		o, lse := attnOut(t, d, c.p, c.dt)
		if err := d.Run(func(r *runtime.Recorder) error { return FlashAttention(r, o, lse, in.tq, in.tk, in.tv, c.p) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wo, wl := RefAttention(in.q, in.k, in.v, c.p)
		checkAttn(t, name, o, lse, wo, wl)
	}
}

// TestFlashAttentionTiles runs one problem with every tile configuration that
// fits the device (threads per row from 4 to 64, partial tiles everywhere).
func TestFlashAttentionTiles(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p := AttnParams{Hq: 4, Hkv: 2, D: 16, Sq: 75, Skv: 75, Causal: true}
	in := newAttnInputs(t, d, rng, p, 0)
	wo, wl := RefAttention(in.q, in.k, in.v, p)
	tiles := append([]AttnTiles{{64, 1, 64}, {128, 4, 32}}, attnPrefillTiles...)
	ran := 0
	for _, tl := range tiles {
		if !tl.valid(d, p.D) {
			continue
		}
		ran++
		o, lse := attnOut(t, d, p, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error { return flashAttention(r, o, lse, in.tq, in.tk, in.tv, p, tl) }); err != nil {
			t.Fatalf("tiles %+v: %v", tl, err)
		}
		checkAttn(t, fmt.Sprintf("tiles %+v", tl), o, lse, wo, wl)
	}
	if ran < 6 {
		t.Errorf("only %d tile configurations fit", ran)
	}
}

// TestFlashAttentionNoLSE: lse nil writes O only.
func TestFlashAttentionNoLSE(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p := AttnParams{Hq: 2, Hkv: 1, D: 32, Sq: 19, Skv: 19, Causal: true}
	in := newAttnInputs(t, d, rng, p, 0)
	o, _ := attnOut(t, d, p, runtime.F32)
	if err := d.Run(func(r *runtime.Recorder) error { return FlashAttention(r, o, nil, in.tq, in.tk, in.tv, p) }); err != nil {
		t.Fatal(err)
	}
	wo, _ := RefAttention(in.q, in.k, in.v, p)
	checkAttn(t, "no lse", o, nil, wo, nil)
}

// TestChunkedPrefill: two calls with query offsets equal one call.
func TestChunkedPrefill(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct{ S, cut, hq, hkv, dim int }{{130, 64, 4, 2, 64}, {61, 17, 2, 2, 8}} {
		full := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.dim, Sq: c.S, Skv: c.S, Causal: true}
		in := newAttnInputs(t, d, rng, full, 0)
		o, lse := attnOut(t, d, full, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error { return FlashAttention(r, o, lse, in.tq, in.tk, in.tv, full) }); err != nil {
			t.Fatal(err)
		}
		oneO, oneL := download(t, o), download(t, lse)
		// Chunks: queries [0, cut) against keys [0, cut), then [cut, S) against all.
		p1 := full
		p1.Sq, p1.Skv = c.cut, c.cut
		p2 := full
		p2.Sq, p2.Q0 = c.S-c.cut, c.cut
		qsz := c.hq * c.dim
		q1 := upload(t, d, runtime.F16, in.q[:c.cut*qsz])
		q2 := upload(t, d, runtime.F16, in.q[c.cut*qsz:])
		o1, l1 := attnOut(t, d, p1, runtime.F32)
		o2, l2 := attnOut(t, d, p2, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := FlashAttention(r, o1, l1, q1, in.tk, in.tv, p1); err != nil {
				return err
			}
			return FlashAttention(r, o2, l2, q2, in.tk, in.tv, p2)
		}); err != nil {
			t.Fatal(err)
		}
		gotO := append(download(t, o1), download(t, o2)...)
		if e := gputest.RelErr(gotO, gputest.F64(oneO)); !(e <= 1e-6) {
			t.Errorf("S=%d cut=%d: chunked O differs from one call by %.3g", c.S, c.cut, e)
		}
		gl1, gl2 := download(t, l1), download(t, l2)
		for h := 0; h < c.hq; h++ {
			for i := 0; i < c.S; i++ {
				g := gl1[h*c.cut+min(i, c.cut-1)]
				if i >= c.cut {
					g = gl2[h*(c.S-c.cut)+i-c.cut]
				}
				if w := oneL[h*c.S+i]; !(math.Abs(float64(g-w)) <= 1e-5) {
					t.Fatalf("S=%d cut=%d: LSE[h=%d,i=%d] chunked %v, one call %v", c.S, c.cut, h, i, g, w)
				}
			}
		}
	}
}

// causalCSR lists, for every head and query block r, the blocks 0..r.
func causalCSR(hq, nb int) (rowPtr, cols []int32) {
	rowPtr = []int32{0}
	for h := 0; h < hq; h++ {
		for r := 0; r < nb; r++ {
			for c := 0; c <= r; c++ {
				cols = append(cols, int32(c))
			}
			rowPtr = append(rowPtr, int32(len(cols)))
		}
	}
	return rowPtr, cols
}

// randomCSR keeps column 0 and the diagonal and every other causal block with
// probability density (density < 0: the diagonal alone).
func randomCSR(rng *rand.Rand, hq, nb int, density float64) (rowPtr, cols []int32) {
	rowPtr = []int32{0}
	for h := 0; h < hq; h++ {
		for r := 0; r < nb; r++ {
			for c := 0; c < r; c++ {
				if density >= 0 && (c == 0 || rng.Float64() < density) {
					cols = append(cols, int32(c))
				}
			}
			cols = append(cols, int32(r))
			rowPtr = append(rowPtr, int32(len(cols)))
		}
	}
	return rowPtr, cols
}

func uploadI32(t *testing.T, d *runtime.Device, v []int32) *runtime.Tensor {
	t.Helper()
	x, err := d.NewTensor(runtime.I32, max(len(v), 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	if len(v) > 0 {
		if err := x.UploadI32(v); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// TestSparseAttentionAllBlocks: every causal block listed equals dense attention.
func TestSparseAttentionAllBlocks(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		p AttnParams
		B int
	}{
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 257, Skv: 257, Causal: true}, 64},
		{AttnParams{Hq: 8, Hkv: 2, D: 8, Sq: 100, Skv: 100, Causal: true}, 32},
		{AttnParams{Hq: 2, Hkv: 2, D: 128, Sq: 130, Skv: 130, Causal: true}, 32},
	} {
		p, B := c.p, c.B
		name := fmt.Sprintf("%v B=%d", p, B)
		in := newAttnInputs(t, d, rng, p, 0)
		nb := (p.Skv + B - 1) / B
		rp, cl := causalCSR(p.Hq, nb)
		trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
		od, ld := attnOut(t, d, p, runtime.F32)
		os, ls := attnOut(t, d, p, runtime.F32)
		tl, err := ChooseAttnTiles(d, p.D, B)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := flashAttention(r, od, ld, in.tq, in.tk, in.tv, p, tl); err != nil {
				return err
			}
			return SparseAttention(r, os, ls, in.tq, in.tk, in.tv, trp, tcl, p, B)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The scalar dense kernel with the sparse kernel's tiles visits blocks
		// in the same order: the results agree to rounding. On devices with
		// cooperative matrices SparseAttention runs attn_cm1, which rounds P
		// to f16 before P·V, so there the bound is the f16 one.
		oTol, lTol := 1e-6, 1e-6
		if d.Caps().CoopMat && p.D%16 == 0 {
			oTol, lTol = attnOTol, 1e-3
		}
		dO, sO := download(t, od), download(t, os)
		if e := gputest.RelErr(sO, gputest.F64(dO)); !(e <= oTol) {
			t.Errorf("%s: sparse (all blocks) differs from dense: %.3g", name, e)
		}
		dl, sl := download(t, ld), download(t, ls)
		for i := range dl {
			if !(math.Abs(float64(dl[i]-sl[i])) <= lTol) {
				t.Fatalf("%s: LSE %d: sparse %v, dense %v", name, i, sl[i], dl[i])
			}
		}
		wo, wl := RefAttention(in.q, in.k, in.v, p)
		checkAttn(t, name+" vs reference", os, ls, wo, wl)
	}
}

func TestSparseAttentionRandom(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	type tc struct {
		p       AttnParams
		B       int
		density float64
		dt      runtime.DType
	}
	cases := []tc{
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 257, Skv: 257, Causal: true}, 32, 0.3, runtime.F32},
		{AttnParams{Hq: 8, Hkv: 2, D: 8, Sq: 300, Skv: 300, Causal: true}, 64, 0.5, runtime.F16},
		{AttnParams{Hq: 2, Hkv: 1, D: 128, Sq: 200, Skv: 200, Causal: true}, 64, 0.2, runtime.F32},
		{AttnParams{Hq: 4, Hkv: 2, D: 32, Sq: 150, Skv: 150, Causal: true}, 32, -1, runtime.F32}, // diagonal only
		{AttnParams{Hq: 4, Hkv: 2, D: 32, Sq: 90, Skv: 250, Q0: 160, Causal: true}, 32, 0.4, runtime.F32},
		{AttnParams{Hq: 1, Hkv: 1, D: 8, Sq: 1, Skv: 1, Causal: true}, 32, 0.5, runtime.F32},
	}
	for _, c := range cases {
		p, B := c.p, c.B
		name := fmt.Sprintf("%v B=%d density=%g", p, B, c.density)
		in := newAttnInputs(t, d, rng, p, 0)
		nb := (p.Skv + B - 1) / B
		rp, cl := randomCSR(rng, p.Hq, nb, c.density)
		trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
		o, lse := attnOut(t, d, p, c.dt)
		if err := d.Run(func(r *runtime.Recorder) error {
			return SparseAttention(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wo, wl := RefSparseAttention(in.q, in.k, in.v, rp, cl, p, B)
		checkAttn(t, name, o, lse, wo, wl)
		// The sparse result must differ from dense, or the test proves nothing.
		if c.density >= 0 && c.density < 1 && nb > 2 {
			do, _ := RefAttention(in.q, in.k, in.v, p)
			if e := gputest.RelErr(download(t, o), do); e < 10*attnOTol {
				t.Errorf("%s: sparse output is too close to dense (%.3g): lists not applied?", name, e)
			}
		}
	}
}

// TestSparseAttentionEmptyRows: rows without any block give O = 0, LSE = −Inf;
// small query tiles (Br < B) share a row's list.
func TestSparseAttentionEmptyRows(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p := AttnParams{Hq: 2, Hkv: 1, D: 16, Sq: 100, Skv: 100, Causal: true}
	B := 32 // nb = 4
	// head 0: block 1 empty, others diagonal + 0; head 1: block 0 empty, block 3 lists 1 only.
	rp := []int32{0, 1, 1, 3, 5, 5, 6, 8, 9}
	cl := []int32{0, 0, 2, 0, 3, 1, 0, 2, 1}
	in := newAttnInputs(t, d, rng, p, 0)
	trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
	wo, wl := RefSparseAttention(in.q, in.k, in.v, rp, cl, p, B)
	for _, tl := range []AttnTiles{{32, 8, 8}, {64, 16, 32}, {128, 32, 32}} {
		if !tl.valid(d, p.D) {
			continue
		}
		o, lse := attnOut(t, d, p, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error {
			return sparseAttention(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B, tl)
		}); err != nil {
			t.Fatal(err)
		}
		checkAttn(t, fmt.Sprintf("tiles %+v", tl), o, lse, wo, wl)
		got := download(t, o)
		for i := 32; i < 64; i++ { // head 0, block 1
			for x := 0; x < p.D; x++ {
				if v := got[(i*p.Hq+0)*p.D+x]; v != 0 {
					t.Fatalf("empty row %d: O = %v, want 0", i, v)
				}
			}
		}
	}
}

// TestSparseAttentionNonCausal: without the causal mask a list may name
// blocks right of the diagonal, in any order.
func TestSparseAttentionNonCausal(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p := AttnParams{Hq: 2, Hkv: 1, D: 16, Sq: 110, Skv: 110}
	B := 32 // nb = 4
	rp := []int32{0, 2, 3, 4, 5, 6, 6, 7, 11}
	cl := []int32{0, 3, 2, 1, 0, 1, 3, 3, 0, 1, 2}
	in := newAttnInputs(t, d, rng, p, 0)
	trp, tcl := uploadI32(t, d, rp), uploadI32(t, d, cl)
	o, lse := attnOut(t, d, p, runtime.F16)
	if err := d.Run(func(r *runtime.Recorder) error {
		return SparseAttention(r, o, lse, in.tq, in.tk, in.tv, trp, tcl, p, B)
	}); err != nil {
		t.Fatal(err)
	}
	wo, wl := RefSparseAttention(in.q, in.k, in.v, rp, cl, p, B)
	checkAttn(t, "non-causal sparse", o, lse, wo, wl)
}

func TestDecodeAttention(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cases := []struct {
		p       AttnParams
		dt      runtime.DType
		scratch bool
	}{
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 300, Q0: 299, Causal: true}, runtime.F32, true},
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 300, Q0: 299, Causal: true}, runtime.F16, false},
		{AttnParams{Hq: 4, Hkv: 4, D: 128, Sq: 1, Skv: 100, Q0: 99, Causal: true}, runtime.F16, true},
		{AttnParams{Hq: 1, Hkv: 1, D: 8, Sq: 1, Skv: 1, Q0: 0, Causal: true}, runtime.F32, true},
		{AttnParams{Hq: 8, Hkv: 2, D: 8, Sq: 1, Skv: 520, Q0: 519, Causal: true}, runtime.F32, true},
		{AttnParams{Hq: 8, Hkv: 1, D: 32, Sq: 3, Skv: 130, Q0: 127, Causal: true}, runtime.F32, true}, // 3 draft tokens
		{AttnParams{Hq: 4, Hkv: 2, D: 64, Sq: 2, Skv: 64, Q0: 10, Causal: true}, runtime.F32, true},   // cache longer than the queries see
		{AttnParams{Hq: 4, Hkv: 1, D: 64, Sq: 2, Skv: 150, Q0: 3, Causal: false}, runtime.F32, true},  // every key for every query
		// The reduction's thread layouts: D/4 not dividing its 64 threads,
		// D/4 = 64 (a thread per channel), more splits than threads.
		{AttnParams{Hq: 4, Hkv: 2, D: 80, Sq: 1, Skv: 700, Q0: 699, Causal: true}, runtime.F16, true},
		{AttnParams{Hq: 2, Hkv: 1, D: 256, Sq: 1, Skv: 300, Q0: 299, Causal: true}, runtime.F32, true},
		{AttnParams{Hq: 2, Hkv: 1, D: 8, Sq: 1, Skv: 9000, Q0: 8999, Causal: true}, runtime.F32, true},
	}
	split := false
	for _, c := range cases {
		in := newAttnInputs(t, d, rng, c.p, 5)
		wo, wl := RefAttention(in.q, in.k, in.v, c.p)
		// The device's choice (attn_decode where it takes p), then the
		// scalar reference kernel with attn_reduce.
		def, err := attnPlanDecode(d, c.p)
		if err != nil {
			t.Fatal(err)
		}
		scalar, err := attnPlanDecodeScalar(d, c.p)
		if err != nil {
			t.Fatal(err)
		}
		for _, pl := range []attnDecodePlan{def, scalar} {
			name := fmt.Sprintf("%v out=%s scratch=%v attn_decode=%v", c.p, c.dt, c.scratch, pl.one)
			o, lse := attnOut(t, d, c.p, c.dt)
			var scratch *runtime.Tensor
			if n := pl.scratchLen(d, c.p); c.scratch && n > 0 {
				split = split || !pl.one
				scratch = decodeScratchFor(t, d, c.p.Hkv, n)
			}
			if err := d.Run(func(r *runtime.Recorder) error {
				if pl == def {
					return DecodeAttention(r, o, lse, in.tq, in.tk, in.tv, scratch, c.p)
				}
				return decodeAttention(r, o, lse, in.tq, in.tk, in.tv, scratch, nil, c.p, pl)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkAttn(t, name, o, lse, wo, wl)
		}
		if c.p.Skv == 9000 && scalar.splits <= attnReduceLocal {
			t.Errorf("%v: %d scalar splits; the case is there for more splits than attn_reduce's %d threads", c.p, scalar.splits, attnReduceLocal)
		}
	}
	if !split {
		t.Error("no case used the scalar kernel's split-KV path")
	}
}

func TestAttentionErrors(t *testing.T) {
	d := gputest.Device(t)
	p := AttnParams{Hq: 4, Hkv: 2, D: 8, Sq: 5, Skv: 5, Causal: true}
	q := empty(t, d, runtime.F16, 5*4*8)
	kv := empty(t, d, runtime.F16, 5*2*8)
	o := empty(t, d, runtime.F32, 5*4*8)
	lse := empty(t, d, runtime.F32, 4*5)
	q32 := empty(t, d, runtime.F32, 5*4*8)
	rp := empty(t, d, runtime.I32, 4*1+1)
	cl := empty(t, d, runtime.I32, 4)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	bad := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want an error", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	p3 := p
	p3.Hkv = 3
	bad("Hq not a multiple of Hkv", FlashAttention(r, o, lse, q, kv, kv, p3))
	p6 := p
	p6.D = 6
	bad("D=6", FlashAttention(r, o, lse, q, kv, kv, p6))
	bad("f32 q", FlashAttention(r, o, lse, q32, kv, kv, p))
	bad("short lse", FlashAttention(r, o, o, q, kv, kv, p))
	pl := p
	pl.Skv = 6
	bad("k shorter than Skv", FlashAttention(r, o, lse, q, kv, kv, pl))
	// SparseAttention takes exactly the block sizes CheckBlockSize does,
	// with its error.
	for _, b := range []int{0, 4, 7, 8, 12, 16, 24, 32} {
		err, want := SparseAttention(r, o, lse, q, kv, kv, rp, cl, p, b), CheckBlockSize(b)
		if (err == nil) != (want == nil) || want != nil && !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("block size %d: %v; CheckBlockSize: %v", b, err, want)
		}
	}
	bad("rowPtr too short", SparseAttention(r, o, lse, q, kv, kv, cl, cl, p, 32))
	pq := p
	pq.Q0 = 3
	bad("Q0 not a multiple of B", SparseAttention(r, o, lse, q, kv, kv, rp, cl, pq, 32))
	bad("scratch too short", DecodeAttention(r, o, lse, q, kv, kv, cl, p))
}

// TestDecodeScratchMax: the scratch DecodeScratchMax sizes for a cache of up
// to Skv tokens holds what every shorter cache needs, and is not larger than
// the largest of those.
func TestDecodeScratchMax(t *testing.T) {
	d := gputest.Device(t)
	for _, p := range []AttnParams{
		{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 3000, Causal: true},
		{Hq: 32, Hkv: 8, D: 128, Sq: 4, Skv: 2100, Causal: true},
		{Hq: 4, Hkv: 4, D: 8, Sq: 2, Skv: 70, Causal: true},
		{Hq: 1, Hkv: 1, D: 8, Sq: 1, Skv: 1, Causal: true},
	} {
		p.Q0 = p.Skv - p.Sq
		most, err := DecodeScratchMax(d, p)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for skv := p.Sq; skv <= p.Skv; skv++ {
			q := p
			q.Skv, q.Q0 = skv, skv-p.Sq
			n, err := DecodeScratchLen(d, q)
			if err != nil {
				t.Fatal(err)
			}
			if n > most {
				t.Fatalf("%v: cache of %d tokens needs %d scratch elements, more than DecodeScratchMax %d", p, skv, n, most)
			}
			seen = max(seen, n)
		}
		if seen != most {
			t.Errorf("%v: DecodeScratchMax %d, but the largest need is %d", p, most, seen)
		}
	}
}

func TestCheckBlockSize(t *testing.T) {
	for _, tc := range []struct {
		b  int
		ok bool
	}{
		{-8, false}, {0, false}, {1, false}, {4, false}, {7, false},
		{MinBlockSize, true}, {12, false}, {16, true}, {24, false},
		{128, true}, {1000, false}, {1024, true}, {1 << 20, true},
	} {
		err := CheckBlockSize(tc.b)
		if (err == nil) != tc.ok {
			t.Errorf("CheckBlockSize(%d) = %v, want ok %v", tc.b, err, tc.ok)
		}
	}
}
