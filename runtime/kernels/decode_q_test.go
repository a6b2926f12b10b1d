package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref/quantref"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// The fused decode mat-vecs with block-quantized weights (decode_q.go)
// against float64 references on the dequantized blocks. Each distinct
// (module, M, rows per workgroup, shared-memory layout) is a pipeline that
// lavapipe compiles once, so the cases are few and each covers several
// awkward things at once.

// fqTol is the bound on the relative error of a fused quantized mat-vec:
// the 1e-3 for either output. An f32 output moves only where the
// kernel's RMS scale rounds an xn element to the other f16 neighbour (one
// f16 ulp, 2^-11 relative, of that element), but a device's rsqrt does
// that for several elements (NVIDIA's: 2.1e-4 at K 4352, N 7 on an H100),
// and a short dot product with cancellation magnifies it; an indexing or
// scaling error is O(1).
func fqTol(runtime.DType) float64 { return 1e-3 }

// qWeight is a random quantized weight on the device and its dequantized
// values; its block scales are below scale (elements below 64·scale/moderate).
func qWeight(t *testing.T, d *runtime.Device, rng *rand.Rand, dt runtime.DType, n, k int, scale float64) (*runtime.Tensor, []float32) {
	t.Helper()
	w, b := quantWeight(t, d, rng, dt, n, k, scale)
	v, err := quantref.Dequantize(dt, b, n*k)
	if err != nil {
		t.Fatal(err)
	}
	return w, v
}

// TestNormMatVecQuant: RMSNorm fused into up to three quantized mat-vecs
// (q, k and v of a decode step), outputs poisoned: a mixed layer (Q4_K q and
// k with a Q6_K v: two dispatches), Q8_0 with f32 outputs and biases at
// M = 3, and M·K past the shared-memory copy of xn (each product normalises
// x as it reads it), against the float64 reference. N is not a multiple of
// the rows per workgroup.
func TestNormMatVecQuant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		m, k int
		dts  []runtime.DType
		ns   []int
		ydt  runtime.DType
		bias []bool
	}{
		{1, 512, []runtime.DType{runtime.Q4_K, runtime.Q4_K, runtime.Q6_K}, []int{130, 33, 65}, runtime.F16, []bool{false, true, false}},
		{3, 96, []runtime.DType{runtime.Q8_0, runtime.Q8_0}, []int{37, 5}, runtime.F32, []bool{true, true}},
		{4, 17 * 256, []runtime.DType{runtime.Q4_K}, []int{7}, runtime.F32, []bool{false}},
	} {
		name := fmt.Sprintf("M=%d K=%d %v N=%v y=%s", c.m, c.k, c.dts, c.ns, c.ydt)
		xv := gputest.Normal(rng, c.m*c.k, 2)
		nv := gputest.Normal(rng, c.k, 1)
		x := shaped(t, d, runtime.F32, xv, c.m, c.k)
		nw := shaped(t, d, runtime.F32, nv, c.k)
		var outs []MatVecOut
		var wants [][]float64
		for j, dt := range c.dts {
			n := c.ns[j]
			w, wv := qWeight(t, d, rng, dt, n, c.k, moderate)
			o := MatVecOut{W: w, Y: shaped(t, d, c.ydt, nil, c.m, n)}
			var bv []float32
			if c.bias[j] {
				bv = gputest.Normal(rng, n, 0.5)
				o.Bias = shaped(t, d, runtime.F32, bv, n)
			}
			outs = append(outs, o)
			wants = append(wants, refNormMatVec(xv, nv, wv, bv, c.m, n, c.k))
		}
		if !MatVecFusable(d, outs[0].W) {
			t.Fatalf("%s: MatVecFusable false for %s", name, c.dts[0])
		}
		before := d.Counters()
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
		types := len(groupByType(outs))
		if got := d.Counters().Sub(before).Dispatches; got != uint64(len(outs)+types) { // the poisons, then a dispatch per type
			t.Errorf("%s: %d dispatches, want %d poisons and %d mat-vecs", name, got, len(outs), types)
		}
		for j, o := range outs {
			if e := gputest.RelErr(download(t, o.Y), wants[j]); !(e <= fqTol(c.ydt)) {
				t.Errorf("%s: output %d (%s): relative error %.3g > %.3g", name, j, c.dts[j], e, fqTol(c.ydt))
			}
		}
	}
}

// TestNormMatVecSwiGLUQuant: RMSNorm, quantized gate and up mat-vecs and
// SwiGLU in one dispatch, per type, output poisoned; and the error for a
// gate and an up of different types.
func TestNormMatVecSwiGLUQuant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		dt      runtime.DType
		m, k, f int
	}{
		{runtime.Q4_K, 2, 768, 37}, {runtime.Q6_K, 1, 256, 129}, {runtime.Q8_0, 4, 160, 9},
	} {
		name := fmt.Sprintf("%s M=%d K=%d F=%d", c.dt, c.m, c.k, c.f)
		xv := gputest.Normal(rng, c.m*c.k, 2)
		nv := gputest.Normal(rng, c.k, 1)
		x := shaped(t, d, runtime.F32, xv, c.m, c.k)
		nw := shaped(t, d, runtime.F32, nv, c.k)
		// Elements below 1: gate and up of tens, their product within f16.
		wg, gv := qWeight(t, d, rng, c.dt, c.f, c.k, moderate/64)
		wu, uv := qWeight(t, d, rng, c.dt, c.f, c.k, moderate/64)
		act := shaped(t, d, runtime.F16, nil, c.m, c.f)
		want := refNormSwiGLU(xv, nv, gv, uv, c.m, c.f, c.k)
		if err := runNormSwiGLU(d, act, x, nw, wg, wu); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e := gputest.RelErr(download(t, act), want); !(e <= fqTol(runtime.F16)) {
			t.Errorf("%s: relative error %.3g > %.3g", name, e, fqTol(runtime.F16))
		}
	}
	x := shaped(t, d, runtime.F32, make([]float32, 256), 1, 256)
	nw := shaped(t, d, runtime.F32, make([]float32, 256), 256)
	wg, _ := qWeight(t, d, rng, runtime.Q4_K, 3, 256, moderate)
	wu, _ := qWeight(t, d, rng, runtime.Q6_K, 3, 256, moderate)
	act := shaped(t, d, runtime.F16, nil, 1, 3)
	if err := d.Run(func(r *runtime.Recorder) error { return NormMatVecSwiGLU(r, act, x, nw, 1e-5, wg, wu) }); err == nil {
		t.Error("gate Q4_K, up Q6_K: no error")
	}
}

// TestMatVecAddQuant: y += x·Wᵀ (+ b) with a quantized W against the
// float64 reference, and for Q4_K against MatVec into a temporary followed
// by AddInPlace (the sequence it replaces) bit for bit.
func TestMatVecAddQuant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		dt      runtime.DType
		m, n, k int
		bias    bool
	}{
		{runtime.Q4_K, 1, 130, 512, true}, {runtime.Q6_K, 2, 33, 768, false}, {runtime.Q8_0, 3, 65, 224, true},
	} {
		name := fmt.Sprintf("%s M=%d N=%d K=%d bias=%v", c.dt, c.m, c.n, c.k, c.bias)
		xv := runtime.RoundF16(gputest.Normal(rng, c.m*c.k, 1))
		x := shaped(t, d, runtime.F16, xv, c.m, c.k)
		w, wv := qWeight(t, d, rng, c.dt, c.n, c.k, moderate)
		var bv []float32
		var b *runtime.Tensor
		if c.bias {
			bv = gputest.Normal(rng, c.n, 0.5)
			b = shaped(t, d, runtime.F32, bv, c.n)
		}
		y0 := gputest.Normal(rng, c.m*c.n, 3)
		want := RefMatMul(xv, wv, bv, c.m, c.n, c.k)
		for j := range want {
			want[j] += float64(y0[j])
		}
		y := shaped(t, d, runtime.F32, y0, c.m, c.n)
		yu := shaped(t, d, runtime.F32, y0, c.m, c.n)
		tmp := shaped(t, d, runtime.F32, nil, c.m, c.n)
		unfused := c.dt == runtime.Q4_K
		if err := runMatVecAdd(d, y, yu, tmp, x, w, b, unfused); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := download(t, y)
		if e := gputest.RelErr(got, want); !(e <= 1e-5) {
			t.Errorf("%s: relative error %.3g > 1e-5", name, e)
		}
		if j := gputest.FirstBitDiff(got, download(t, yu)); unfused && j >= 0 {
			t.Errorf("%s: element %d differs from MatVec + AddInPlace", name, j)
		}
	}
}

// TestMatVecFusableQuant: the wide kernel's types are fusable, Q4_0 and
// Q5_0 (reference kernel only) are not, nor any type on a device whose
// Tuning.GemvQ asks for the reference kernel; a fused call with such a
// weight fails with an error naming it.
func TestMatVecFusableQuant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, dt := range []runtime.DType{runtime.Q8_0, runtime.Q4_K, runtime.Q5_K, runtime.Q6_K, runtime.Q4_0, runtime.Q5_0} {
		w, _ := quantWeight(t, d, rng, dt, 4, 256, moderate)
		want := dt != runtime.Q4_0 && dt != runtime.Q5_0
		if got := MatVecFusable(d, w); got != want {
			t.Errorf("%s: MatVecFusable %v, want %v", dt, got, want)
		}
	}
	ref := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{GemvQ: runtime.GemvQ{Variant: "registers"}}})
	w, _ := quantWeight(t, ref, rng, runtime.Q4_K, 4, 256, moderate)
	if MatVecFusable(ref, w) {
		t.Error("Tuning.GemvQ registers: a Q4_K weight is fusable")
	}
	x := shaped(t, ref, runtime.F16, make([]float32, 256), 1, 256)
	y := shaped(t, ref, runtime.F32, nil, 1, 4)
	if err := ref.Run(func(r *runtime.Recorder) error { return MatVecAdd(r, y, x, w, nil) }); err == nil {
		t.Error("Tuning.GemvQ registers: MatVecAdd with a Q4_K weight: no error")
	}
}
