package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// refMatMulSwiGLU is the float64 reference of MatMulSwiGLU:
// SiLU(x·Wgᵀ + bg) ⊙ (x·Wuᵀ + bu).
func refMatMulSwiGLU(x, wg, wu, bg, bu []float32, M, N, K int) []float64 {
	g := RefMatMul(x, wg, bg, M, N, K)
	u := RefMatMul(x, wu, bu, M, N, K)
	for i := range g {
		g[i] = RefSiLU(g[i]) * u[i]
	}
	return g
}

// gluTol is MatMulSwiGLU's stated bound against the float64 reference
// v: |got − v| ≤ rel·|v| + abs, rel the rounding to y's type (2⁻¹¹ for
// f16, a few f32 ulps for f32) and abs the f32 accumulation of ≤ 300
// products of size ~1 and the f32 exp, far below an f16 ulp of the
// outputs' typical size.
func gluTol(ydt runtime.DType) (rel, abs float64) {
	if ydt == runtime.F16 {
		return 0x1p-11, 2e-5
	}
	return 4e-7, 2e-5
}

// checkGLU checks got against the reference within gluTol, element by
// element.
func checkGLU(t *testing.T, name string, got []float32, want []float64, ydt runtime.DType) {
	t.Helper()
	rel, abs := gluTol(ydt)
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", name, len(got), len(want))
	}
	for i, g := range got {
		if d := math.Abs(float64(g) - want[i]); !(d <= rel*math.Abs(want[i])+abs) {
			t.Errorf("%s: act[%d] = %g, want %g (off by %.3g > %.3g·|v| + %.3g)", name, i, g, want[i], d, rel, abs)
			return
		}
	}
}

// gluKernel is one fused gate/up kernel and tile, forced.
type gluKernel struct {
	name    string
	f16Only bool // f16 x only (the cooperative-matrix kernel)
	f16Y    bool // tested with f16 act only
	run     func(r *runtime.Recorder, s mmShape, act, x, wg, wu, bg, bu *runtime.Tensor) error
}

// gluKernels are the tiled kernel's two GLU tiles (chooseGLUTile's large
// and small) and, where d has KHR cooperative matrices, ONE small
// matmul_cm1 GLU tile with f16 act (each matmul_cm1 module takes minutes
// to compile on a cooperative-matrix lavapipe).
func gluKernels(d *runtime.Device) []gluKernel {
	var l []gluKernel
	for _, t := range []mmTile{{BM: 128, BN: 64, BK: 32, TM: 8, TN: 4}, {BM: 64, BN: 32, BK: 32, TM: 4, TN: 4}} {
		if gluShared(t) > d.Caps().MaxSharedMemory {
			t.BK = 16
		}
		l = append(l, gluKernel{fmt.Sprintf("tiled glu %dx%dx%d/t%dx%d", t.BM, t.BN, t.BK, t.TM, t.TN), false, false,
			func(r *runtime.Recorder, s mmShape, act, x, wg, wu, bg, bu *runtime.Tensor) error {
				return matMulTiledGLU(r, s, act, x, wg, wu, bg, bu, t)
			}})
	}
	if d.Caps().CoopMat {
		t := cmTile{BM: 64, BN: 32, BK: 32, WM: 32, WN: 16, GM: 8}
		if t.valid(d.Caps().SubgroupSize) && cmGLUShared(t) <= d.Caps().MaxSharedMemory {
			l = append(l, gluKernel{"coopmat glu " + t.String(), true, true,
				func(r *runtime.Recorder, s mmShape, act, x, wg, wu, bg, bu *runtime.Tensor) error {
					return matMulCMGLU(r, s, act, x, wg, wu, bg, bu, t)
				}})
		}
	}
	return l
}

// gluData is a random gate/up problem: mmInputs for the gate, a second
// weight and bias for up.
type gluData struct {
	mmData
	wu, bu   *runtime.Tensor
	wuv, buv []float32
}

func gluInputs(t *testing.T, d *runtime.Device, c mmCase, upBias bool, rng interface{ NormFloat64() float64 }) gluData {
	t.Helper()
	g := gluData{mmData: mmInputs(t, d, c, rng)}
	g.wuv = make([]float32, c.N*c.K)
	for i := range g.wuv {
		g.wuv[i] = float32(rng.NormFloat64() / math.Sqrt(float64(c.K)))
	}
	g.wuv = runtime.RoundF16(g.wuv)
	g.wu = shaped(t, d, runtime.F16, g.wuv, c.N, c.K)
	if upBias {
		g.buv = make([]float32, c.N)
		for i := range g.buv {
			g.buv[i] = float32(rng.NormFloat64() * 0.5)
		}
		g.bu = shaped(t, d, runtime.F32, g.buv, c.N)
	}
	return g
}

// TestMatMulSwiGLU runs the fused gate/up kernels (gluKernels) on fresh
// random inputs at sizes that leave tails in M, N and K (K also not a
// multiple of 8: the gathered loads), f16 and f32 x and act, each bias
// present or not, act poisoned first, against the float64 reference
// within gluTol. For f16 x and act it also records the separate path
// (the tiled MatMul into f16 gate and up, then SwiGLU) and checks that
// the fused result is within 2⁻¹⁰ relative (RMS) of it and no farther
// from the reference.
func TestMatMulSwiGLU(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	ks := gluKernels(d)
	for _, k := range ks {
		t.Logf("kernel %s", k.name)
	}
	shapes := [][3]int{{5, 7, 3}, {67, 130, 100}, {130, 67, 40}, {33, 65, 257}, {129, 129, 264}}
	for i, sh := range shapes {
		for j, ydt := range []runtime.DType{runtime.F16, runtime.F32} {
			for l, xdt := range []runtime.DType{runtime.F16, runtime.F32} {
				c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: xdt, ydt: ydt, bias: (i+j+l)%2 == 0}
				upBias := (i+l)%3 != 0
				in := gluInputs(t, d, c, upBias, rng)
				want := refMatMulSwiGLU(in.xv, in.wv, in.wuv, in.bv, in.buv, c.M, c.N, c.K)
				s := mmShape{M: c.M, N: c.N, K: c.K}
				var sep []float32
				if xdt == runtime.F16 && ydt == runtime.F16 {
					gate := shaped(t, d, runtime.F16, nil, c.M, c.N)
					up := shaped(t, d, runtime.F16, nil, c.M, c.N)
					act := shaped(t, d, runtime.F16, nil, c.M, c.N)
					if err := d.Run(func(r *runtime.Recorder) error {
						for _, y := range []*runtime.Tensor{gate, up, act} {
							if err := Poison(r, y); err != nil {
								return err
							}
						}
						if err := MatMulTiled(r, gate, in.x, in.w, in.bias); err != nil {
							return err
						}
						if err := MatMulTiled(r, up, in.x, in.wu, in.bu); err != nil {
							return err
						}
						return SwiGLU(r, act, gate, up)
					}); err != nil {
						t.Fatalf("separate path: %v", err)
					}
					sep = download(t, act)
				}
				for _, k := range ks {
					if (k.f16Only && xdt != runtime.F16) || (k.f16Y && ydt != runtime.F16) {
						continue
					}
					name := fmt.Sprintf("%s M=%d N=%d K=%d x=%s act=%s gate bias=%v up bias=%v", k.name, c.M, c.N, c.K, xdt, ydt, c.bias, upBias)
					act := shaped(t, d, ydt, nil, c.M, c.N)
					if err := d.Run(func(r *runtime.Recorder) error {
						if err := Poison(r, act); err != nil {
							return err
						}
						return k.run(r, s, act, in.x, in.w, in.wu, in.bias, in.bu)
					}); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got := download(t, act)
					act.Free()
					checkGLU(t, name, got, want, ydt)
					if sep == nil {
						continue
					}
					if e := gputest.RelErr(got, gputest.F64(sep)); e > 0x1p-10 {
						t.Errorf("%s: relative difference %.3g from MatMul, MatMul, SwiGLU > 2⁻¹⁰", name, e)
					}
					if ef, es := gputest.RelErr(got, want), gputest.RelErr(sep, want); ef > es {
						t.Errorf("%s: relative error %.3g fused, %.3g separate: want the fused one no larger", name, ef, es)
					}
				}
			}
		}
	}
}

// TestMatMulSwiGLURouted runs MatMulSwiGLU itself (the kernel the device
// takes) with f16 x and act against the reference, whole and with the
// binding limit forcing chunks over M and N, the two bit for bit equal.
func TestMatMulSwiGLURouted(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, sh := range [][3]int{{3, 130, 96}, {67, 130, 96}, {200, 72, 40}} {
		c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: runtime.F16, ydt: runtime.F16, bias: true}
		in := gluInputs(t, d, c, true, rng)
		want := refMatMulSwiGLU(in.xv, in.wv, in.wuv, in.bv, in.buv, c.M, c.N, c.K)
		name := fmt.Sprintf("MatMulSwiGLU M=%d N=%d K=%d", c.M, c.N, c.K)
		run := func(limit uint64) []float32 {
			matmulBindingLimit = limit
			defer func() { matmulBindingLimit = 0 }()
			act := shaped(t, d, c.ydt, nil, c.M, c.N)
			defer act.Free()
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := Poison(r, act); err != nil {
					return err
				}
				return MatMulSwiGLU(r, act, in.x, in.w, in.wu, in.bias, in.bu)
			}); err != nil {
				t.Fatalf("%s (binding limit %d): %v", name, limit, err)
			}
			return download(t, act)
		}
		whole := run(0)
		checkGLU(t, name, whole, want, c.ydt)
		chunked := run(2048)
		for e := range whole {
			if math.Float32bits(whole[e]) != math.Float32bits(chunked[e]) {
				t.Errorf("%s: act[%d] = %v chunked, %v whole", name, e, chunked[e], whole[e])
				break
			}
		}
	}
}

// TestMatMulSwiGLUErrors: mismatched weights, a quantized weight and a
// wrong output shape are errors naming the tensor, and
// MatMulSwiGLUFusable refuses what MatMulSwiGLU does not fuse.
func TestMatMulSwiGLUErrors(t *testing.T) {
	d := gputest.Device(t)
	x := shaped(t, d, runtime.F16, nil, 9, 16)
	wg := shaped(t, d, runtime.F16, nil, 8, 16)
	wu := shaped(t, d, runtime.F16, nil, 8, 16)
	wu7 := shaped(t, d, runtime.F16, nil, 7, 16)
	act := shaped(t, d, runtime.F16, nil, 9, 8)
	q, err := d.NewNamedTensor("quantized up", runtime.Q8_0, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Free)
	x32 := shaped(t, d, runtime.F16, nil, 9, 32)
	for _, c := range []struct {
		name         string
		act, x, g, u *runtime.Tensor
		want         string
	}{
		{"up shape", act, x, wg, wu7, "output"},
		{"quantized", act, x32, shaped(t, d, runtime.F16, nil, 8, 32), q, "quantized up"},
		{"nil up", act, x, wg, nil, "nil up weight"},
		{"act shape", shaped(t, d, runtime.F16, nil, 9, 7), x, wg, wu, "output"},
	} {
		err := d.Run(func(r *runtime.Recorder) error { return MatMulSwiGLU(r, c.act, c.x, c.g, c.u, nil, nil) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if MatMulSwiGLUFusable(d, GEMVMaxM, 8, 16, runtime.F16, runtime.F16) {
		t.Errorf("MatMulSwiGLUFusable for %d rows: want false (mat-vec)", GEMVMaxM)
	}
	if MatMulSwiGLUFusable(d, 9, 8, 32, runtime.F16, runtime.Q8_0) {
		t.Error("MatMulSwiGLUFusable for a Q8_0 weight: want false")
	}
}
