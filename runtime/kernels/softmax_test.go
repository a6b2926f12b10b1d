package kernels

import (
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func TestSoftmax(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, m := range []int{1, 3, 17} {
		for _, n := range []int{1, 5, 1000, 70001} {
			xv := gputest.Normal(rng, m*n, 4)
			// Large offsets (max subtraction matters) and -inf entries.
			for r := 0; r < m; r++ {
				for j := 0; j < n; j++ {
					xv[r*n+j] += float32(100 * r)
				}
				if n > 1 {
					xv[r*n+rng.IntN(n)] = float32(math.Inf(-1))
				}
			}
			x := opUp(t, d, runtime.F32, xv, m, n)
			y := opNew(t, d, runtime.F32, m, n)
			opRun(t, d, func(r *runtime.Recorder) error { return Softmax(r, y, x) }, y)
			got, err := y.DownloadF32()
			if err != nil {
				t.Fatal(err)
			}
			want := RefSoftmax(xv, n)
			if e := gputest.RelErr(got, want); e > 1e-5 {
				t.Errorf("softmax M=%d N=%d: relative error %.3g > 1e-5", m, n, e)
			}
			for r := 0; r < m; r++ {
				var s float64
				for _, v := range got[r*n : r*n+n] {
					s += float64(v)
				}
				if math.Abs(s-1) > 1e-5 {
					t.Errorf("softmax M=%d N=%d: row %d sums to %.8f", m, n, r, s)
				}
			}
			// In place.
			opRun(t, d, func(r *runtime.Recorder) error { return Softmax(r, x, x) })
			got, err = x.DownloadF32()
			if err != nil {
				t.Fatal(err)
			}
			if e := gputest.RelErr(got, want); e > 1e-5 {
				t.Errorf("softmax in place M=%d N=%d: relative error %.3g", m, n, e)
			}
		}
	}
}

func TestSoftmaxErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	x := opNew(t, d, runtime.F32, 3, 10)
	if Softmax(r, opNew(t, d, runtime.F32, 31), x) == nil {
		t.Error("softmax length mismatch: want an error")
	}
	if Softmax(r, opNew(t, d, runtime.F16, 3, 10), x) == nil {
		t.Error("softmax f16 output: want an error")
	}
}
