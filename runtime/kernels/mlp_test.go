package kernels

import (
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func TestSwiGLU(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, it := range opDTypes {
		for _, ot := range opDTypes {
			for _, m := range []int{1, 3, 17} {
				for _, f := range []int{1, 7, 300, 1025} {
					// Separate gate and up, with saturating values planted.
					gv := gputest.Normal(rng, m*f, 3)
					if len(gv) > 2 { // (alone, silu(-100)·u ≈ 4e-42 has no relative error to speak of)
						gv[0], gv[len(gv)-1] = -100, 100
					}
					gv = opRound(it, gv)
					uv := opRound(it, gputest.Normal(rng, m*f, 1))
					gate, up := opUp(t, d, it, gv, m, f), opUp(t, d, it, uv, m, f)
					out := opNew(t, d, ot, m, f)
					opRun(t, d, func(r *runtime.Recorder) error { return SwiGLU(r, out, gate, up) }, out)
					got, err := out.DownloadF32()
					if err != nil {
						t.Fatal(err)
					}
					if e := gputest.RelErr(got, RefSwiGLU(gv, uv)); e > opTol(ot) {
						t.Errorf("swiglu %s->%s M=%d F=%d: relative error %.3g > %.3g", it, ot, m, f, e, opTol(ot))
					}
					// Fused [M, 2F].
					guv := opRound(it, gputest.Normal(rng, m*2*f, 3))
					gu := opUp(t, d, it, guv, m, 2*f)
					out2 := opNew(t, d, ot, m, f)
					opRun(t, d, func(r *runtime.Recorder) error { return SwiGLUFused(r, out2, gu) }, out2)
					got, err = out2.DownloadF32()
					if err != nil {
						t.Fatal(err)
					}
					if e := gputest.RelErr(got, RefSwiGLUFused(guv, f)); e > opTol(ot) {
						t.Errorf("swiglu fused %s->%s M=%d F=%d: relative error %.3g > %.3g", it, ot, m, f, e, opTol(ot))
					}
				}
			}
		}
	}
}

func TestAddInPlace(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range [][2]runtime.DType{{runtime.F32, runtime.F32}, {runtime.F32, runtime.F16}, {runtime.F16, runtime.F16}} {
		for _, n := range []int{1, 3, 255, 257, 4099} {
			av := opRound(c[0], gputest.Normal(rng, n, 1))
			xv := opRound(c[1], gputest.Normal(rng, n, 1))
			acc, x := opUp(t, d, c[0], av), opUp(t, d, c[1], xv)
			// Twice in one recording: the second add must see the first.
			opRun(t, d, func(r *runtime.Recorder) error {
				if err := AddInPlace(r, acc, x); err != nil {
					return err
				}
				return AddInPlace(r, acc, x)
			})
			got, err := acc.DownloadF32()
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, n)
			for i := range want {
				want[i] = float64(av[i]) + 2*float64(xv[i])
			}
			tl := 1e-6
			if c[0] == runtime.F16 {
				tl = 2e-3
			}
			if e := gputest.RelErr(got, want); e > tl {
				t.Errorf("add_inplace %s += %s n=%d: relative error %.3g > %.3g", c[0], c[1], n, e, tl)
			}
		}
	}
}

func TestMLPErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	a := opNew(t, d, runtime.F32, 3, 10)
	b := opNew(t, d, runtime.F32, 3, 11)
	h := opNew(t, d, runtime.F16, 3, 10)
	gu := opNew(t, d, runtime.F32, 3, 21)
	for name, err := range map[string]error{
		"swiglu lengths":      SwiGLU(r, a, a, b),
		"swiglu dtypes":       SwiGLU(r, a, a, h),
		"swiglu fused length": SwiGLUFused(r, a, gu),
		"add f16 += f32":      AddInPlace(r, h, a),
		"add lengths":         AddInPlace(r, a, b),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
