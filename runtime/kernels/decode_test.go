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

// refNormMatVec is xn·Wᵀ (+ b) in float64 with xn the float64 RMSNorm
// rounded to f16.
func refNormMatVec(x, nw, w, b []float32, m, n, k int) []float64 {
	xn := RefRMSNorm(x, nw, 1e-5)
	for i, v := range xn {
		xn[i] = float64(runtime.RoundF16([]float32{float32(v)})[0])
	}
	y := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			if b != nil {
				s = float64(b[j])
			}
			for e := 0; e < k; e++ {
				s += xn[i*k+e] * float64(w[j*k+e])
			}
			y[i*n+j] = s
		}
	}
	return y
}

// fusedShape is a decode shape: M rows, K inputs, the N of up to three
// matrices.
type fusedShape struct{ M, K, N0, N1, N2 int }

// fusedShapes are awkward decode shapes: M rows, K inputs (multiples of 8
// take the 16-byte path), and the N of up to three matrices.
var fusedShapes = []fusedShape{
	{1, 3, 1, 0, 0}, {1, 64, 130, 7, 7}, {2, 100, 5, 65, 0}, {3, 136, 65, 17, 17},
	{4, 257, 3, 130, 1}, {4, 8, 2, 2, 2}, {1, 512, 512, 128, 128},
}

// TestNormMatVec: the fused RMSNorm and up to three mat-vecs (q, k and v of
// a decode step) against the float64 reference, outputs poisoned, f16 and
// f32 outputs, with and without biases.
func TestNormMatVec(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for i, s := range fusedShapes {
		for _, ydt := range []runtime.DType{runtime.F16, runtime.F32} {
			checkNormMatVec(t, d, rng, s, ydt, i%2 == 0)
		}
	}
}

// checkNormMatVec runs NormMatVec on shape s (biases on every other matrix,
// starting with the first when bias0) against the float64 reference.
func checkNormMatVec(t *testing.T, d *runtime.Device, rng *rand.Rand, s fusedShape, ydt runtime.DType, bias0 bool) {
	t.Helper()
	xv := gputest.Normal(rng, s.M*s.K, 2)
	nv := gputest.Normal(rng, s.K, 1)
	x := shaped(t, d, runtime.F32, xv, s.M, s.K)
	nw := shaped(t, d, runtime.F32, nv, s.K)
	var outs []MatVecOut
	var wants, scales [][]float64
	for j, n := range []int{s.N0, s.N1, s.N2} {
		if n == 0 {
			continue
		}
		wv := runtime.RoundF16(gputest.Normal(rng, n*s.K, 1/math.Sqrt(float64(s.K))))
		var bv []float32
		o := MatVecOut{W: shaped(t, d, runtime.F16, wv, n, s.K), Y: shaped(t, d, ydt, nil, s.M, n)}
		if (j%2 == 0) == bias0 {
			bv = gputest.Normal(rng, n, 0.5)
			o.Bias = shaped(t, d, runtime.F32, bv, n)
		}
		outs = append(outs, o)
		wants = append(wants, refNormMatVec(xv, nv, wv, bv, s.M, n, s.K))
		scales = append(scales, refNormMatVec(absF32(xv), absF32(nv), absF32(wv), absF32(bv), s.M, n, s.K))
	}
	name := fmt.Sprintf("M=%d K=%d N=%d/%d/%d y=%s", s.M, s.K, s.N0, s.N1, s.N2, ydt)
	if err := d.Run(func(r *runtime.Recorder) error {
		for _, o := range outs {
			if err := Poison(r, o.Y); err != nil {
				return err
			}
		}
		return NormMatVec(r, x, nw, 1e-5, outs...)
	}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for j, o := range outs {
		if e := gputest.ScaledErr(download(t, o.Y), wants[j], scales[j]); !(e <= normTol(ydt)) {
			// Against the terms' magnitude: a single output of K = 3 whose
			// terms cancel failed ‖got−want‖/‖want‖ at 1.01e-3 on the H100.
			t.Errorf("%s: output %d: error %.3g of the terms' magnitude > %.3g", name, j, e, normTol(ydt))
		}
	}
}

// firstApart is the first index where a and b differ by more than
// rel·max(|a|, |b|) + abs, -1 if none; equal bits (the poison of rows left
// alone) agree, a NaN against anything else, or a length mismatch (index
// 0), counts as apart.
// f16Step is the spacing of f16 values at |v| (the subnormal spacing below
// the normal range).
func f16Step(v float64) float64 {
	v = math.Abs(v)
	if v < 0x1p-14 {
		return 0x1p-24
	}
	_, e := math.Frexp(v) // v = f·2^e, f in [0.5, 1)
	return math.Ldexp(1, e-11)
}

// partner is the index of the element that element i of rows of heads of
// dimension d rotates with (i ± d/2 within its head).
func partner(i, d int) int {
	if i%d < d/2 {
		return i + d/2
	}
	return i - d/2
}

// rotStepsApart returns the first index where two rotated f16 outputs a and
// b differ by more than one f16 step of each unrotated input of the pair
// (pre, the float64 reference of the values before rotation, heads of
// dimension d) plus one step of the output, scaled by 1.01; -1 if none.
// This is how far apart two rotations of inputs that rounded to
// neighbouring f16 values can land.
func rotStepsApart(a, b []float32, pre []float64, d int) int {
	if len(a) != len(b) || len(pre) < len(a) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) == math.Float32bits(b[i]) {
			continue
		}
		m := math.Max(math.Abs(float64(a[i])), math.Abs(float64(b[i])))
		lim := 1.01 * (f16Step(pre[i]) + f16Step(pre[partner(i, d)]) + f16Step(m))
		if !(math.Abs(float64(a[i])-float64(b[i])) <= lim) {
			return i
		}
	}
	return -1
}

// absF32 is |v| elementwise (nil for nil).
func absF32(v []float32) []float32 {
	if v == nil {
		return nil
	}
	a := make([]float32, len(v))
	for i, x := range v {
		a[i] = float32(math.Abs(float64(x)))
	}
	return a
}

// TestNormMatVecSwiGLU: the fused RMSNorm, gate and up mat-vecs and SwiGLU
// against the float64 reference, output poisoned.
func TestNormMatVecSwiGLU(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, s := range fusedShapes {
		checkSwiGLU(t, d, rng, s)
	}
}

// refNormSwiGLU is SiLU(xn·gᵀ) ⊙ (xn·uᵀ) in float64 (xn as refNormMatVec's)
// for x [m, k] and gate and up [f, k].
func refNormSwiGLU(xv, nv, gv, uv []float32, m, f, k int) []float64 {
	g := refNormMatVec(xv, nv, gv, nil, m, f, k)
	u := refNormMatVec(xv, nv, uv, nil, m, f, k)
	want := make([]float64, len(g))
	for i := range want {
		want[i] = RefSiLU(g[i]) * u[i]
	}
	return want
}

// runNormSwiGLU poisons act and records NormMatVecSwiGLU into it.
func runNormSwiGLU(d *runtime.Device, act, x, nw, wg, wu *runtime.Tensor) error {
	return d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, act); err != nil {
			return err
		}
		return NormMatVecSwiGLU(r, act, x, nw, 1e-5, wg, wu)
	})
}

// runMatVecAdd records MatVecAdd into y and, with unfused, the sequence it
// replaces into yu: MatVec into tmp (poisoned first), then AddInPlace.
func runMatVecAdd(d *runtime.Device, y, yu, tmp, x, w, b *runtime.Tensor, unfused bool) error {
	return d.Run(func(r *runtime.Recorder) error {
		if err := MatVecAdd(r, y, x, w, b); err != nil || !unfused {
			return err
		}
		if err := Poison(r, tmp); err != nil {
			return err
		}
		if err := MatVec(r, tmp, x, w, b); err != nil {
			return err
		}
		return AddInPlace(r, yu, tmp)
	})
}

// checkSwiGLU runs NormMatVecSwiGLU on shape s (F = s.N0) against the
// float64 reference.
func checkSwiGLU(t *testing.T, d *runtime.Device, rng *rand.Rand, s fusedShape) {
	t.Helper()
	f := s.N0
	xv := gputest.Normal(rng, s.M*s.K, 2)
	nv := gputest.Normal(rng, s.K, 1)
	gv := runtime.RoundF16(gputest.Normal(rng, f*s.K, 2/math.Sqrt(float64(s.K))))
	uv := runtime.RoundF16(gputest.Normal(rng, f*s.K, 1/math.Sqrt(float64(s.K))))
	x := shaped(t, d, runtime.F32, xv, s.M, s.K)
	nw := shaped(t, d, runtime.F32, nv, s.K)
	wg := shaped(t, d, runtime.F16, gv, f, s.K)
	wu := shaped(t, d, runtime.F16, uv, f, s.K)
	act := shaped(t, d, runtime.F16, nil, s.M, f)
	want := refNormSwiGLU(xv, nv, gv, uv, s.M, f, s.K)
	if err := runNormSwiGLU(d, act, x, nw, wg, wu); err != nil {
		t.Fatal(err)
	}
	// Against what a relative perturbation of the terms moves act by
	// (first order: |SiLU(g)|·Σ|xn·u| + |SiLU'(g)|·Σ|xn·g|·|u|), as
	// checkNormMatVec measures against the terms' magnitude: with K = 3 one
	// normalised input rounding to the other neighbouring f16 is a large
	// relative change of a g or u whose terms cancel, which SiLU can amplify
	// further where g < 0.
	g := refNormMatVec(xv, nv, gv, nil, s.M, f, s.K)
	u := refNormMatVec(xv, nv, uv, nil, s.M, f, s.K)
	gA := refNormMatVec(absF32(xv), absF32(nv), absF32(gv), nil, s.M, f, s.K)
	uA := refNormMatVec(absF32(xv), absF32(nv), absF32(uv), nil, s.M, f, s.K)
	scale := make([]float64, len(want))
	for i := range scale {
		sig := 1 / (1 + math.Exp(-g[i]))
		dsilu := sig * (1 + g[i]*(1-sig))
		scale[i] = math.Abs(RefSiLU(g[i]))*uA[i] + math.Abs(dsilu)*gA[i]*math.Abs(u[i])
	}
	if e := gputest.ScaledErr(download(t, act), want, scale); !(e <= normTol(runtime.F16)) {
		t.Errorf("M=%d K=%d F=%d: error %.3g of the terms' magnitude > %.3g", s.M, s.K, f, e, normTol(runtime.F16))
	}
}

// TestGemvTuned: the f16 mat-vec kernels under other workgroup shapes
// (Tuning.Gemv, SHAREPREFILL_GEMV) against the float64 references, and a
// shape whose reduction buffer does not fit shared memory is an error
// naming the knob.
func TestGemvTuned(t *testing.T) {
	rng := gputest.Rand(t)
	for _, g := range []runtime.Gemv{{WG: 32, Rows: 3}, {WG: 64, Rows: 1}, {WG: 256, Rows: 2}} {
		t.Run(fmt.Sprintf("WG=%d,R=%d", g.WG, g.Rows), func(t *testing.T) {
			d := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{Gemv: g}})
			for i, s := range []fusedShape{{3, 136, 65, 17, 17}, {1, 512, 130, 7, 7}, {4, 257, 3, 130, 1}} {
				checkNormMatVec(t, d, rng, s, runtime.F16, i%2 == 0)
				checkSwiGLU(t, d, rng, s)
			}
		})
	}
	d := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{Gemv: runtime.Gemv{WG: 1024, Rows: 8}}})
	x := shaped(t, d, runtime.F32, nil, 4, 64)
	nw := shaped(t, d, runtime.F32, gputest.Normal(rng, 64, 1), 64)
	w := shaped(t, d, runtime.F16, nil, 8, 64)
	act := shaped(t, d, runtime.F16, nil, 4, 8)
	err := d.Run(func(r *runtime.Recorder) error { return NormMatVecSwiGLU(r, act, x, nw, 1e-5, w, w) })
	if err == nil || !strings.Contains(err.Error(), "SHAREPREFILL_GEMV") {
		t.Errorf("WG 1024 × rows 8: error %v, want one naming SHAREPREFILL_GEMV", err)
	}
}

// TestMatVecAdd: y += x·Wᵀ (+ b) against the float64 reference, and against
// MatMul into a temporary followed by AddInPlace (the unfused sequence it
// replaces) bit for bit.
func TestMatVecAdd(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for i, s := range fusedShapes {
		n := s.N0
		xv := runtime.RoundF16(gputest.Normal(rng, s.M*s.K, 1))
		wv := runtime.RoundF16(gputest.Normal(rng, n*s.K, 1/math.Sqrt(float64(s.K))))
		y0 := gputest.Normal(rng, s.M*n, 3)
		var bv []float32
		x := shaped(t, d, runtime.F16, xv, s.M, s.K)
		w := shaped(t, d, runtime.F16, wv, n, s.K)
		var b *runtime.Tensor
		if i%2 == 1 {
			bv = gputest.Normal(rng, n, 0.5)
			b = shaped(t, d, runtime.F32, bv, n)
		}
		want := RefMatMul(xv, wv, bv, s.M, n, s.K)
		for j := range want {
			want[j] += float64(y0[j])
		}
		y := shaped(t, d, runtime.F32, y0, s.M, n)
		yu := shaped(t, d, runtime.F32, y0, s.M, n)
		tmp := shaped(t, d, runtime.F32, nil, s.M, n)
		if err := runMatVecAdd(d, y, yu, tmp, x, w, b, true); err != nil {
			t.Fatal(err)
		}
		got := download(t, y)
		name := fmt.Sprintf("M=%d K=%d N=%d bias=%v", s.M, s.K, n, b != nil)
		if e := gputest.RelErr(got, want); !(e <= mmTol(runtime.F32)) {
			t.Errorf("%s: relative error %.3g > %.3g", name, e, mmTol(runtime.F32))
		}
		if j := gputest.FirstBitDiff(got, download(t, yu)); j >= 0 {
			t.Errorf("%s: element %d differs from MatVec + AddInPlace", name, j)
		}
	}
}

// TestRopeKV: the fused RoPE and KV append at a position read from a buffer
// equals Rope on q and k and copies into the (poisoned) caches at that
// position, bit for bit, including the rows it must leave alone; and the
// float64 reference within tolerance.
func TestRopeKV(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const ctx = 40
	for _, c := range []struct{ m, hq, hkv, hd, p, pos0 int }{
		{1, 8, 2, 64, 0, 0}, {1, 8, 2, 64, 39, 0}, {2, 3, 1, 8, 17, 5}, {3, 4, 4, 72, 30, 1}, {4, 2, 1, 256, 3, 33},
	} {
		name := fmt.Sprintf("M=%d Hq=%d Hkv=%d D=%d P=%d pos0=%d", c.m, c.hq, c.hkv, c.hd, c.p, c.pos0)
		invv := RopeInvFreqF32(500000, c.hd, nil)
		qv := runtime.RoundF16(gputest.Normal(rng, c.m*c.hq*c.hd, 1))
		kv := runtime.RoundF16(gputest.Normal(rng, c.m*c.hkv*c.hd, 1))
		vv := runtime.RoundF16(gputest.Normal(rng, c.m*c.hkv*c.hd, 1))
		inv := shaped(t, d, runtime.F32, invv, len(invv))
		k := shaped(t, d, runtime.F16, kv, c.m, c.hkv, c.hd)
		v := shaped(t, d, runtime.F16, vv, c.m, c.hkv, c.hd)
		pos := uploadI32(t, d, []int32{int32(c.p)})
		qa := shaped(t, d, runtime.F16, qv, c.m, c.hq, c.hd)
		qb := shaped(t, d, runtime.F16, qv, c.m, c.hq, c.hd)
		kt := shaped(t, d, runtime.F16, kv, c.m, c.hkv, c.hd)
		kca, vca := empty(t, d, runtime.F16, ctx*c.hkv*c.hd), empty(t, d, runtime.F16, ctx*c.hkv*c.hd)
		kcb, vcb := empty(t, d, runtime.F16, ctx*c.hkv*c.hd), empty(t, d, runtime.F16, ctx*c.hkv*c.hd)
		at := c.p + c.pos0
		rows := min(c.m, ctx-at) // rows that fit the cache
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := Rope(r, qa, qa, inv, c.hq, at); err != nil {
				return err
			}
			if err := Rope(r, kt, kt, inv, c.hkv, at); err != nil {
				return err
			}
			n := uint64(rows * c.hkv * c.hd * 2)
			off := uint64(at * c.hkv * c.hd * 2)
			if err := r.CopyBytes(kca, off, kt, 0, n); err != nil {
				return err
			}
			if err := r.CopyBytes(vca, off, v, 0, n); err != nil {
				return err
			}
			return RopeKV(r, qb, k, v, inv, kcb, vcb, pos, c.hq, c.hkv, c.pos0)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameRopeAppend(t, name, "Rope and a copy", qa, qb, kca, kcb, vca, vcb)
		if e := gputest.RelErr(download(t, qb), RefRope(qv, invv, c.hq, at)); e > 2e-3 {
			t.Errorf("%s: q relative error %.3g", name, e)
		}
		got := download(t, kcb)[at*c.hkv*c.hd : (at+rows)*c.hkv*c.hd]
		if e := gputest.RelErr(got, RefRope(kv, invv, c.hkv, at)[:len(got)]); e > 2e-3 {
			t.Errorf("%s: K cache relative error %.3g", name, e)
		}
	}
}

// TestRopeQKV: prefill's RoPE and KV append from one stacked q|k|v matrix
// equals RopeKV on the three column ranges copied apart — the rotated q
// (into a poisoned output), both (poisoned) caches, rows past the caches
// left alone, bit for bit — and leaves its input unchanged, at awkward
// sizes (odd head dims, GQA groups of 1 to 4, rows past the cache).
func TestRopeQKV(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const ctx = 40
	for _, c := range []struct{ m, hq, hkv, hd, p, pos0 int }{
		{1, 8, 2, 64, 0, 0}, {7, 8, 2, 64, 3, 30}, {5, 3, 1, 6, 0, 2}, {3, 4, 4, 72, 30, 1}, {9, 2, 1, 256, 3, 25},
	} {
		name := fmt.Sprintf("M=%d Hq=%d Hkv=%d D=%d P=%d pos0=%d", c.m, c.hq, c.hkv, c.hd, c.p, c.pos0)
		nq, nkv := c.hq*c.hd, c.hkv*c.hd
		stride := nq + 2*nkv
		invv := RopeInvFreqF32(500000, c.hd, nil)
		xv := runtime.RoundF16(gputest.Normal(rng, c.m*stride, 1))
		var qv, kv, vv []float32
		for r := 0; r < c.m; r++ {
			row := xv[r*stride : (r+1)*stride]
			qv, kv, vv = append(qv, row[:nq]...), append(kv, row[nq:nq+nkv]...), append(vv, row[nq+nkv:]...)
		}
		inv := shaped(t, d, runtime.F32, invv, len(invv))
		pos := uploadI32(t, d, []int32{int32(c.p)})
		x := shaped(t, d, runtime.F16, xv, c.m, stride)
		qa := shaped(t, d, runtime.F16, qv, c.m, c.hq, c.hd)
		k := shaped(t, d, runtime.F16, kv, c.m, c.hkv, c.hd)
		v := shaped(t, d, runtime.F16, vv, c.m, c.hkv, c.hd)
		qb := empty(t, d, runtime.F16, c.m*nq)
		kca, vca := empty(t, d, runtime.F16, ctx*nkv), empty(t, d, runtime.F16, ctx*nkv)
		kcb, vcb := empty(t, d, runtime.F16, ctx*nkv), empty(t, d, runtime.F16, ctx*nkv)
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := RopeKV(r, qa, k, v, inv, kca, vca, pos, c.hq, c.hkv, c.pos0); err != nil {
				return err
			}
			return RopeQKV(r, qb, x, inv, kcb, vcb, pos, c.hq, c.hkv, c.pos0)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameRopeAppend(t, name, "RopeKV", qa, qb, kca, kcb, vca, vcb)
		if i := gputest.FirstBitDiff(download(t, x), xv); i >= 0 {
			t.Errorf("%s: input element %d changed", name, i)
		}
	}
	// Misuse: a stacked input of the wrong width.
	bad := empty(t, d, runtime.F16, 3*(8*64+2*2*64)+1)
	q := empty(t, d, runtime.F16, 3*8*64)
	inv := shaped(t, d, runtime.F32, RopeInvFreqF32(500000, 64, nil), 32)
	kc, vc := empty(t, d, runtime.F16, ctx*2*64), empty(t, d, runtime.F16, ctx*2*64)
	pos := uploadI32(t, d, []int32{0})
	err := d.Run(func(r *runtime.Recorder) error { return RopeQKV(r, q, bad, inv, kc, vc, pos, 8, 2, 0) })
	if err == nil || !strings.Contains(err.Error(), "rope qkv") {
		t.Errorf("wrong input width: %v", err)
	}
}

// TestNormMatVecRopeKV: the q, k and v mat-vecs with RoPE and the KV
// append in their epilogue equal NormMatVec into q, k and v followed by
// RopeKV — the V cache bit for bit; q and the K cache within one f16 step
// of each unrotated input of the pair plus one of the output (rotStepsApart):
// both paths round the mat-vec sums to f16 before rotating them, and on the
// H100 the two kernels add the products in a different order (the compiler
// contracts them differently), so a sum near a rounding boundary may round
// to the neighbouring f16 value, which the rotation carries into both
// outputs of the pair (seen: 7e-4 apart on values near 0.034 whose inputs
// were near 1; lavapipe agrees bit for bit) — both caches poisoned, rows
// past the caches left alone, at awkward sizes (head dims 6 to 256, G of 1
// to 5, K not a multiple of 8, rows past the cache), with and without
// biases; and the float64 reference within tolerance.
func TestNormMatVecRopeKV(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const ctx = 40
	for i, c := range []struct{ m, hq, hkv, hd, k, p int }{
		{1, 8, 2, 64, 512, 39}, {1, 8, 2, 64, 512, 0}, {2, 3, 1, 8, 100, 17}, {3, 4, 4, 72, 136, 30},
		{4, 2, 1, 256, 257, 37}, {1, 5, 1, 6, 24, 11}, {2, 1, 1, 2, 3, 5},
	} {
		name := fmt.Sprintf("M=%d Hq=%d Hkv=%d D=%d K=%d P=%d", c.m, c.hq, c.hkv, c.hd, c.k, c.p)
		nq, nkv := c.hq*c.hd, c.hkv*c.hd
		invv := RopeInvFreqF32(10000, c.hd, nil)
		xv := gputest.Normal(rng, c.m*c.k, 2)
		nv := gputest.Normal(rng, c.k, 1)
		x := shaped(t, d, runtime.F32, xv, c.m, c.k)
		nw := shaped(t, d, runtime.F32, nv, c.k)
		inv := shaped(t, d, runtime.F32, invv, len(invv))
		pos := uploadI32(t, d, []int32{int32(c.p)})
		ws := make([]MatVecOut, 3)
		vals := make([][]float32, 3)
		biases := make([][]float32, 3)
		for j, n := range []int{nq, nkv, nkv} {
			vals[j] = runtime.RoundF16(gputest.Normal(rng, n*c.k, 1/math.Sqrt(float64(c.k))))
			ws[j].W = shaped(t, d, runtime.F16, vals[j], n, c.k)
			if (i+j)%2 == 0 {
				biases[j] = gputest.Normal(rng, n, 0.5)
				ws[j].Bias = shaped(t, d, runtime.F32, biases[j], n)
			}
		}
		qa, qb := shaped(t, d, runtime.F16, nil, c.m, nq), shaped(t, d, runtime.F16, nil, c.m, nq)
		ka, va := shaped(t, d, runtime.F16, nil, c.m, nkv), shaped(t, d, runtime.F16, nil, c.m, nkv)
		kca, vca := empty(t, d, runtime.F16, ctx*nkv), empty(t, d, runtime.F16, ctx*nkv)
		kcb, vcb := empty(t, d, runtime.F16, ctx*nkv), empty(t, d, runtime.F16, ctx*nkv)
		if err := d.Run(func(r *runtime.Recorder) error {
			for _, y := range []*runtime.Tensor{qa, qb, ka, va} {
				if err := Poison(r, y); err != nil {
					return err
				}
			}
			if err := NormMatVec(r, x, nw, 1e-5, MatVecOut{Y: qa, W: ws[0].W, Bias: ws[0].Bias},
				MatVecOut{Y: ka, W: ws[1].W, Bias: ws[1].Bias}, MatVecOut{Y: va, W: ws[2].W, Bias: ws[2].Bias}); err != nil {
				return err
			}
			if err := RopeKV(r, qa, ka, va, inv, kca, vca, pos, c.hq, c.hkv, 0); err != nil {
				return err
			}
			return NormMatVecRopeKV(r, x, nw, 1e-5, MatVecOut{Y: qb, W: ws[0].W, Bias: ws[0].Bias},
				ws[1], ws[2], inv, kcb, vcb, pos, c.hq, c.hkv)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, pair := range []struct {
			what   string
			a, b   *runtime.Tensor
			rotate bool
		}{{"q", qa, qb, true}, {"K cache", kca, kcb, true}, {"V cache", vca, vcb, false}} {
			a, b := download(t, pair.a), download(t, pair.b)
			if !pair.rotate {
				if j := gputest.FirstBitDiff(a, b); j >= 0 {
					t.Errorf("%s: %s element %d differs from NormMatVec and RopeKV", name, pair.what, j)
				}
				continue
			}
			pre, off := refNormMatVec(xv, nv, vals[0], biases[0], c.m, nq, c.k), 0
			if pair.what == "K cache" { // the rows written; the others as poisoned
				rows := min(c.m, ctx-c.p)
				pre, off = refNormMatVec(xv, nv, vals[1], biases[1], c.m, nkv, c.k)[:rows*nkv], c.p*nkv
				if j := gputest.FirstBitDiff(append(a[:off:off], a[off+rows*nkv:]...), append(b[:off:off], b[off+rows*nkv:]...)); j >= 0 {
					t.Errorf("%s: K cache outside the written rows differs (element %d of the rest)", name, j)
				}
				a, b = a[off:off+rows*nkv], b[off:off+rows*nkv]
			}
			if j := rotStepsApart(a, b, pre, c.hd); j >= 0 {
				t.Errorf("%s: %s element %d: %g against NormMatVec and RopeKV's %g (unrotated %g, partner %g)", name, pair.what, j+off, b[j], a[j], pre[j], pre[partner(j, c.hd)])
			}
		}
		rows := min(c.m, ctx-c.p)
		heads := []int{c.hq, c.hkv}
		for j, got := range [][]float32{download(t, qb), download(t, kcb)[c.p*nkv : (c.p+rows)*nkv]} {
			n := []int{nq, nkv}[j]
			y := refNormMatVec(xv, nv, vals[j], biases[j], c.m, n, c.k)
			y32 := make([]float32, len(y))
			for e, v := range y {
				y32[e] = float32(v)
			}
			want := RefRope(runtime.RoundF16(y32), invv, heads[j], c.p)
			if e := gputest.RelErr(got, want[:len(got)]); e > 2e-3 {
				t.Errorf("%s: %s relative error %.3g", name, []string{"q", "K cache"}[j], e)
			}
		}
	}
}

// TestDecodeAttentionAt: decode attention (attn_decode2 where it applies,
// and attn_decode) at positions read from a buffer,
// on a grid planned for the longest cache, equals the push-constant kernel
// with the same plan bit for bit (the empty splits past the cache's end
// change nothing), and the float64 reference.
func TestDecodeAttentionAt(t *testing.T) {
	rng := gputest.Rand(t)
	for _, tu := range []runtime.Tuning{{}, {DecodeAttnSplitKV1: true}} {
		checkDecodeAttentionAt(t, gputest.Open(t, runtime.Options{Tuning: tu}), rng, tu.DecodeAttnSplitKV1)
	}
}

// checkDecodeAttentionAt is TestDecodeAttentionAt on d; split says that
// every case's plan splits its cache (attn_decode's short splits).
func checkDecodeAttentionAt(t *testing.T, d *runtime.Device, rng *rand.Rand, split bool) {
	t.Helper()
	for _, c := range []struct {
		hq, hkv, hd, sq, maxSkv int
		dt                      runtime.DType
		scratch                 bool
	}{
		{8, 2, 64, 1, 300, runtime.F16, true},
		{8, 2, 64, 1, 300, runtime.F32, false},
		{4, 4, 32, 2, 130, runtime.F32, true},
		{6, 2, 8, 4, 520, runtime.F16, true},
	} {
		pmax := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.maxSkv, Q0: c.maxSkv - c.sq, Causal: true}
		in := newAttnInputs(t, d, rng, pmax, 3)
		var scratch *runtime.Tensor
		if c.scratch {
			n, err := DecodeScratchMax(d, pmax)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 && split {
				t.Fatalf("%v: no split", pmax)
			}
			if n > 0 {
				scratch = decodeScratchFor(t, d, c.hkv, n)
			}
		}
		pl, err := attnPlanDecode(d, pmax)
		if err != nil {
			t.Fatal(err)
		}
		dyn := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.sq, Q0: 0, Causal: true}
		for _, p := range []int{0, 1, 63, c.maxSkv/2 + 1, c.maxSkv - c.sq} {
			at := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: p + c.sq, Q0: p, Causal: true}
			name := fmt.Sprintf("%v (longest %d) out=%s scratch=%v", at, c.maxSkv, c.dt, c.scratch)
			pos := uploadI32(t, d, []int32{int32(p)})
			oa, la := attnOut(t, d, at, c.dt)
			ob, lb := attnOut(t, d, at, c.dt)
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := decodeAttention(r, oa, la, in.tq, in.tk, in.tv, scratch, nil, at, pl); err != nil {
					return err
				}
				return DecodeAttentionAt(r, ob, lb, in.tq, in.tk, in.tv, scratch, pos, dyn, c.maxSkv)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if i := gputest.FirstBitDiff(download(t, oa), download(t, ob)); i >= 0 {
				t.Errorf("%s: O element %d differs from the push-constant kernel", name, i)
			}
			if i := gputest.FirstBitDiff(download(t, la), download(t, lb)); i >= 0 {
				t.Errorf("%s: LSE element %d differs from the push-constant kernel", name, i)
			}
			wo, wl := RefAttention(in.q, in.k, in.v, at)
			checkAttn(t, name, ob, lb, wo, wl)
		}
	}
}

// TestDecodeKernelErrors: the fused kernels reject what they cannot take.
func TestDecodeKernelErrors(t *testing.T) {
	d := gputest.Device(t)
	x := shaped(t, d, runtime.F32, nil, 5, 8)
	x1 := shaped(t, d, runtime.F32, nil, 1, 8)
	x16 := shaped(t, d, runtime.F16, nil, 1, 8)
	nw := shaped(t, d, runtime.F32, nil, 8)
	w := shaped(t, d, runtime.F16, nil, 4, 8)
	w32 := shaped(t, d, runtime.F32, nil, 4, 8)
	y := shaped(t, d, runtime.F16, nil, 5, 4)
	y1 := shaped(t, d, runtime.F16, nil, 1, 4)
	y32 := shaped(t, d, runtime.F32, nil, 1, 4)
	inv := shaped(t, d, runtime.F32, nil, 2)    // D 4
	kc := shaped(t, d, runtime.F16, nil, 10, 4) // 10 rows of one KV head
	kc32 := shaped(t, d, runtime.F32, nil, 10, 4)
	pos := shaped(t, d, runtime.I32, nil, 1)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	wkv := MatVecOut{W: w}
	rope := func(q, k MatVecOut, kCache, p *runtime.Tensor, heads int) error {
		return NormMatVecRopeKV(r, x1, nw, 1e-5, q, k, wkv, inv, kCache, kc, p, heads, 1)
	}
	if err := rope(MatVecOut{Y: y1, W: w}, wkv, kc, pos, 1); err != nil {
		t.Errorf("rope: a valid call: %v", err)
	}
	for name, err := range map[string]error{
		"rope: k output":    rope(MatVecOut{Y: y1, W: w}, MatVecOut{Y: y1, W: w}, kc, pos, 1),
		"rope: heads":       rope(MatVecOut{Y: y1, W: w}, wkv, kc, pos, 2),
		"rope: f32 cache":   rope(MatVecOut{Y: y1, W: w}, wkv, kc32, pos, 1),
		"rope: nil pos":     rope(MatVecOut{Y: y1, W: w}, wkv, kc, nil, 1),
		"rope: f32 q":       rope(MatVecOut{Y: y32, W: w}, wkv, kc, pos, 1),
		"rope: 5 rows of x": NormMatVecRopeKV(r, x, nw, 1e-5, MatVecOut{Y: y, W: w}, wkv, wkv, inv, kc, kc, pos, 1, 1),
		"5 rows":            NormMatVec(r, x, nw, 1e-5, MatVecOut{Y: y, W: w}),
		"no outputs":        NormMatVec(r, x1, nw, 1e-5),
		"f32 weight":        NormMatVec(r, x1, nw, 1e-5, MatVecOut{Y: y1, W: w32}),
		"mixed outputs":     NormMatVec(r, x1, nw, 1e-5, MatVecOut{Y: y1, W: w}, MatVecOut{Y: y32, W: w}),
		"short norm":        NormMatVec(r, x1, w, 1e-5, MatVecOut{Y: y1, W: w}),
		"f16 x for norm":    NormMatVecSwiGLU(r, y1, x16, nw, 1e-5, w, w),
		"f16 accumulator":   MatVecAdd(r, y1, x16, w, nil),
		"f32 x for add":     MatVecAdd(r, y32, x1, w, nil),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if MatVecFusable(d, w32) || !MatVecFusable(d, w) {
		t.Error("MatVecFusable: f32 weights are not fusable, f16 ones are")
	}
}

// normTol is mmTol for mat-vecs of an RMS-normalised x: the normalised
// inputs are computed in f32 (rsqrt within 2 ulp, then two products) and
// rounded to f16, and where the device's f32 value lies on the other side
// of an f16 rounding boundary than the float64 reference's, that element
// moves by one f16 ulp (2^-11 relative). With a handful of outputs a
// cancelling dot product magnifies that relative to the result: 2.7e-5 on
// lavapipe (K 257, N 3, seed 1617782488488277228), 2.1e-4 on an H100 (K
// 100 and 257, f32 outputs, 2026-12-07). An indexing or scaling error is
// O(1).
func normTol(ydt runtime.DType) float64 { return max(mmTol(ydt), 1e-3) }

// sameRopeAppend reports where the q, K cache and V cache of a RoPE-and-append
// (qb, kcb, vcb) differ in any bit from those of ref (qa, kca, vca).
func sameRopeAppend(t *testing.T, name, ref string, qa, qb, kca, kcb, vca, vcb *runtime.Tensor) {
	t.Helper()
	for _, pair := range []struct {
		what string
		a, b *runtime.Tensor
	}{{"q", qa, qb}, {"K cache", kca, kcb}, {"V cache", vca, vcb}} {
		if i := gputest.FirstBitDiff(download(t, pair.a), download(t, pair.b)); i >= 0 {
			t.Errorf("%s: %s element %d differs from %s", name, pair.what, i, ref)
		}
	}
}
