package kernels

import (
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// sizes: 1, odd, not a multiple of the workgroup, larger than one workgroup.
var ewSizes = []int{1, 3, 255, 256, 257, 1000, 4099}

func upload(t *testing.T, d *runtime.Device, dt runtime.DType, v []float32) *runtime.Tensor {
	t.Helper()
	x, err := d.NewTensor(dt, len(v))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	if err := x.UploadF32(v); err != nil {
		t.Fatal(err)
	}
	return x
}

func empty(t *testing.T, d *runtime.Device, dt runtime.DType, n int) *runtime.Tensor {
	t.Helper()
	x, err := d.NewTensor(dt, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	if err := d.Run(func(r *runtime.Recorder) error { return Poison(r, x) }); err != nil {
		t.Fatal(err)
	}
	return x
}

func download(t *testing.T, x *runtime.Tensor) []float32 {
	t.Helper()
	v, err := x.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tol(dt runtime.DType) float64 {
	if dt == runtime.F16 {
		return 2e-3
	}
	return 1e-6
}

func TestFillAndPoison(t *testing.T) {
	d := gputest.Device(t)
	for _, n := range ewSizes {
		x, err := d.NewTensor(runtime.F32, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Run(func(r *runtime.Recorder) error { return Fill(r, x, math.Float32bits(2.5)) }); err != nil {
			t.Fatal(err)
		}
		got := download(t, x)
		for i, v := range got {
			if v != 2.5 {
				t.Fatalf("n=%d: element %d = %v, want 2.5", n, i, v)
			}
		}
		if err := d.Run(func(r *runtime.Recorder) error { return Poison(r, x) }); err != nil {
			t.Fatal(err)
		}
		for i, v := range download(t, x) {
			if !math.IsNaN(float64(v)) {
				t.Fatalf("n=%d: poisoned element %d = %v, want NaN", n, i, v)
			}
		}
		x.Free()
	}
}

func TestElementwise(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	// mag is the size of an element's terms: the error bound of a rounded
	// sum scales with it, not with the result (a + b may cancel to ~0).
	type op struct {
		name string
		run  func(r *runtime.Recorder, o, a, b *runtime.Tensor) error
		ref  func(a, b float64) float64
		mag  func(a, b float64) float64
	}
	ops := []op{
		{"add", Add, func(a, b float64) float64 { return a + b }, func(a, b float64) float64 { return math.Abs(a) + math.Abs(b) }},
		{"mul", Mul, func(a, b float64) float64 { return a * b }, func(a, b float64) float64 { return math.Abs(a * b) }},
		{"scale", func(r *runtime.Recorder, o, a, _ *runtime.Tensor) error { return Scale(r, o, a, -1.75, 0.5) },
			func(a, _ float64) float64 { return a*-1.75 + 0.5 }, func(a, _ float64) float64 { return math.Abs(a*1.75) + 0.5 }},
	}
	for _, dt := range []runtime.DType{runtime.F32, runtime.F16} {
		for _, o := range ops {
			for _, n := range ewSizes {
				av, bv := gputest.Normal(rng, n, 1), gputest.Normal(rng, n, 1)
				if dt == runtime.F16 {
					av, bv = runtime.RoundF16(av), runtime.RoundF16(bv)
				}
				a, b := upload(t, d, dt, av), upload(t, d, dt, bv)
				out := empty(t, d, dt, n)
				if err := d.Run(func(r *runtime.Recorder) error { return o.run(r, out, a, b) }); err != nil {
					t.Fatalf("%s %s n=%d: %v", o.name, dt, n, err)
				}
				got := download(t, out)
				// Below the smallest normal number of the dtype the
				// rounding error is absolute, not relative.
				floor := 0x1p-126
				if dt == runtime.F16 {
					floor = 0x1p-14
				}
				worst := 0.0
				for i := range got {
					a, b := float64(av[i]), float64(bv[i])
					e := math.Abs(float64(got[i])-o.ref(a, b)) / max(o.mag(a, b), floor)
					if !(e <= worst) { // NaN (an unwritten element) sticks
						worst = e
					}
				}
				if !(worst <= tol(dt)) {
					t.Errorf("%s %s n=%d: error %.3g of the terms' size > %.3g", o.name, dt, n, worst, tol(dt))
				}
			}
		}
	}
}

func TestConvertAndCopy(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, n := range ewSizes {
		v := gputest.Normal(rng, n, 3)
		src := upload(t, d, runtime.F32, v)
		h := empty(t, d, runtime.F16, n)
		back := empty(t, d, runtime.F32, n)
		cp := empty(t, d, runtime.F32, n)
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := Convert(r, h, src); err != nil {
				return err
			}
			if err := Convert(r, back, h); err != nil {
				return err
			}
			return Copy(r, cp, src)
		}); err != nil {
			t.Fatal(err)
		}
		want := runtime.RoundF16(v)
		got := download(t, back)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("n=%d: f32->f16->f32 element %d = %v, want %v (round to nearest even)", n, i, got[i], want[i])
			}
		}
		if e := gputest.RelErr(download(t, cp), gputest.F64(v)); e != 0 {
			t.Fatalf("n=%d: copy differs (rel err %g)", n, e)
		}
		// bf16 -> f32 is exact.
		bsrc := upload(t, d, runtime.BF16, v)
		bout := empty(t, d, runtime.F32, n)
		if err := d.Run(func(r *runtime.Recorder) error { return Convert(r, bout, bsrc) }); err != nil {
			t.Fatal(err)
		}
		bw, _ := runtime.DecodeF32(runtime.EncodeF32(v, runtime.BF16), runtime.BF16)
		if e := gputest.RelErr(download(t, bout), gputest.F64(bw)); e != 0 {
			t.Fatalf("n=%d: bf16->f32 differs (rel err %g)", n, e)
		}
	}
}

func TestShapeErrors(t *testing.T) {
	d := gputest.Device(t)
	a := empty(t, d, runtime.F32, 10)
	b := empty(t, d, runtime.F32, 11)
	c := empty(t, d, runtime.I32, 10)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := Add(r, a, a, b); err == nil {
		t.Error("add of different lengths: want an error")
	}
	if err := Scale(r, c, c, 1, 0); err == nil {
		t.Error("scale of an i32 tensor: want an error")
	}
	if err := Convert(r, c, a); err == nil {
		t.Error("convert f32 to i32: want an error")
	}
}
