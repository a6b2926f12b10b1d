package kernels

import (
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// Helpers shared by the tests of the forward-pass ops (norm, rope, mlp,
// embed, softmax, sample).

func opUp(t *testing.T, d *runtime.Device, dt runtime.DType, v []float32, shape ...int) *runtime.Tensor {
	t.Helper()
	if len(shape) == 0 {
		shape = []int{len(v)}
	}
	x, err := d.NewTensor(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	if err := x.UploadF32(v); err != nil {
		t.Fatal(err)
	}
	return x
}

func opUpI32(t *testing.T, d *runtime.Device, v []int32) *runtime.Tensor {
	t.Helper()
	x, err := d.NewTensor(runtime.I32, len(v))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	if err := x.UploadI32(v); err != nil {
		t.Fatal(err)
	}
	return x
}

// opNew returns an uninitialised tensor; tests poison it in the same
// recording as the op under test (opRun).
func opNew(t *testing.T, d *runtime.Device, dt runtime.DType, shape ...int) *runtime.Tensor {
	t.Helper()
	x, err := d.NewTensor(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	return x
}

// opRun poisons outs, then records fn, in one submission.
func opRun(t *testing.T, d *runtime.Device, fn func(r *runtime.Recorder) error, outs ...*runtime.Tensor) {
	t.Helper()
	if err := d.Run(func(r *runtime.Recorder) error {
		for _, o := range outs {
			if err := Poison(r, o); err != nil {
				return err
			}
		}
		return fn(r)
	}); err != nil {
		t.Fatal(err)
	}
}

func opRound(dt runtime.DType, v []float32) []float32 {
	if dt == runtime.F16 {
		return runtime.RoundF16(v)
	}
	return v
}

// opTol: f32 accumulation, plus one f16 rounding of the output when out is f16.
func opTol(out runtime.DType) float64 {
	if out == runtime.F16 {
		return 1e-3
	}
	return 1e-5
}

var opDTypes = []runtime.DType{runtime.F32, runtime.F16}

func TestRMSNorm(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, xt := range opDTypes {
		for _, yt := range opDTypes {
			for _, m := range []int{1, 3, 17} {
				for _, h := range []int{1, 7, 64, 300, 1025, 4100} {
					xv := opRound(xt, gputest.Normal(rng, m*h, 2))
					wv := gputest.Normal(rng, h, 0.5)
					for i := range wv {
						wv[i] += 1
					}
					x := opUp(t, d, xt, xv, m, h)
					w := opUp(t, d, runtime.F32, wv)
					y := opNew(t, d, yt, m, h)
					const eps = 1e-5
					opRun(t, d, func(r *runtime.Recorder) error { return RMSNorm(r, y, x, w, eps) }, y)
					got, err := y.DownloadF32()
					if err != nil {
						t.Fatal(err)
					}
					if e := gputest.RelErr(got, RefRMSNorm(xv, wv, eps)); e > opTol(yt) {
						t.Errorf("rmsnorm x %s y %s M=%d H=%d: relative error %.3g > %.3g", xt, yt, m, h, e, opTol(yt))
					}
				}
			}
		}
	}
}

func TestRMSNormErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	x := opNew(t, d, runtime.F32, 3, 10)
	w := opNew(t, d, runtime.F32, 7)
	w16 := opNew(t, d, runtime.F16, 10)
	w10 := opNew(t, d, runtime.F32, 10)
	y := opNew(t, d, runtime.F32, 3, 10)
	y2 := opNew(t, d, runtime.F32, 29)
	yi := opNew(t, d, runtime.I32, 3, 10)
	for name, err := range map[string]error{
		"H does not divide x": RMSNorm(r, y, x, w, 1e-5),
		"w f16":               RMSNorm(r, y, x, w16, 1e-5),
		"y length":            RMSNorm(r, y2, x, w10, 1e-5),
		"y i32":               RMSNorm(r, yi, x, w10, 1e-5),
		"negative eps":        RMSNorm(r, y, x, w10, -1),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
