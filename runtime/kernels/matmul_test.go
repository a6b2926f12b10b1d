package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// mmVariant runs one way of computing the product.
type mmVariant struct {
	name string
	run  func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error
}

func mmVariants() []mmVariant {
	forced := func(name string, t mmTile) mmVariant {
		return mmVariant{name, func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
			s, err := mmCheck("matmul", y, x, w, bias)
			if err != nil {
				return err
			}
			return matMulTiled(r, s, y, x, w, bias, t)
		}}
	}
	gemv := func(name string, c gemvCfg) mmVariant {
		return mmVariant{name, func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
			s, err := mmCheck("matvec", y, x, w, bias)
			if err != nil {
				return err
			}
			return matVec(r, s, y, x, w, bias, c)
		}}
	}
	return []mmVariant{
		{"auto", MatMul},
		// auto covers the 64×64 tile (BK 32 here) for M ≥ 5; the 128×128
		// tile is forced at every M.
		forced("tiled128", mmTile{BM: 128, BN: 128, BK: 32, TM: 8, TN: 8}),
		gemv("gemv-subgroup", gemvCfg{WG: 128, NR: 2, Subgroup: true}),
		gemv("gemv-shared", gemvCfg{WG: 64, NR: 3, Subgroup: false}),
	}
}

type mmCase struct {
	M, N, K  int
	xdt, ydt runtime.DType
	bias     bool
}

// mmCases cover M ∈ {1..5, 17, 33, 67}, N ∈ {1, 7, 65, 130}, K ∈ {1, 3, 64,
// 100, 257}: tails of every tile, K both a multiple of 8 (vector GEMV path)
// and not, both dtypes of x and y, with and without bias.
func mmCases() []mmCase {
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {1, 130, 257}, {1, 65, 64},
		{2, 7, 100}, {2, 130, 64}, {3, 65, 257}, {4, 1, 64},
		{5, 7, 3}, {5, 130, 100}, {17, 65, 3}, {33, 65, 257},
		{33, 1, 64}, {67, 130, 100}, {67, 7, 1}, {130, 67, 40},
	}
	dts := []runtime.DType{runtime.F32, runtime.F16}
	var cs []mmCase
	for i, s := range shapes {
		cs = append(cs, mmCase{M: s[0], N: s[1], K: s[2], xdt: dts[i%2], ydt: dts[(i/2)%2], bias: i%3 != 1})
	}
	return cs
}

func mmTol(ydt runtime.DType) float64 {
	if ydt == runtime.F16 {
		return 2e-3 // one f16 rounding of each output
	}
	// Inputs are exact (f16-rounded weights), products exact in f32, so only
	// the f32 accumulation of ≤ 257 terms contributes.
	return 1e-5
}

type mmData struct {
	x, w, bias *runtime.Tensor
	xv, wv, bv []float32
}

func mmInputs(t *testing.T, d *runtime.Device, c mmCase, rng interface{ NormFloat64() float64 }) mmData {
	t.Helper()
	var m mmData
	norm := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	m.xv = norm(c.M*c.K, 1)
	if c.xdt == runtime.F16 {
		m.xv = runtime.RoundF16(m.xv)
	}
	m.wv = runtime.RoundF16(norm(c.N*c.K, 1/math.Sqrt(float64(c.K))))
	m.x = shaped(t, d, c.xdt, m.xv, c.M, c.K)
	m.w = shaped(t, d, runtime.F16, m.wv, c.N, c.K)
	if c.bias {
		m.bv = norm(c.N, 0.5)
		m.bias = shaped(t, d, runtime.F32, m.bv, c.N)
	}
	return m
}

// shaped allocates a tensor of the given shape, filled with v if non-nil.
func shaped(t *testing.T, d *runtime.Device, dt runtime.DType, v []float32, shape ...int) *runtime.Tensor {
	t.Helper()
	y, err := d.NewTensor(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(y.Free)
	if v != nil {
		if err := y.UploadF32(v); err != nil {
			t.Fatal(err)
		}
	}
	return y
}

func TestMatMul(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range mmCases() {
		in := mmInputs(t, d, c, rng)
		x, w := in.x, in.w
		want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
		for _, v := range mmVariants() {
			name := fmt.Sprintf("%s M=%d N=%d K=%d x=%s y=%s bias=%v", v.name, c.M, c.N, c.K, c.xdt, c.ydt, c.bias)
			y2 := shaped(t, d, c.ydt, nil, c.M, c.N)
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := Poison(r, y2); err != nil {
					return err
				}
				return v.run(r, y2, x, w, in.bias)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if e := gputest.RelErr(download(t, y2), want); e > mmTol(c.ydt) {
				t.Errorf("%s: relative error %.3g > %.3g", name, e, mmTol(c.ydt))
			}
			y2.Free()
		}
	}
}

// TestMatMulBatchedShape checks that x may carry leading batch dimensions.
func TestMatMulBatchedShape(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	c := mmCase{M: 6, N: 9, K: 11, xdt: runtime.F16, ydt: runtime.F32, bias: true}
	in := mmInputs(t, d, c, rng)
	x := shaped(t, d, c.xdt, in.xv, 2, 3, 11)
	w := in.w
	y3 := shaped(t, d, runtime.F32, nil, 2, 3, 9)
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, y3); err != nil {
			return err
		}
		return MatMul(r, y3, x, w, in.bias)
	}); err != nil {
		t.Fatal(err)
	}
	want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
	if e := gputest.RelErr(download(t, y3), want); e > mmTol(runtime.F32) {
		t.Errorf("relative error %.3g", e)
	}
}

// TestMatMulChunked forces the split over M and N with a tiny binding limit
// and checks the chunked result is bit-identical to the unchunked one (the
// same sums in the same order) and close to the reference.
func TestMatMulChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cases := []mmCase{
		{M: 67, N: 130, K: 100, xdt: runtime.F32, ydt: runtime.F32, bias: true},
		{M: 67, N: 130, K: 96, xdt: runtime.F16, ydt: runtime.F16, bias: false},
		{M: 3, N: 130, K: 96, xdt: runtime.F16, ydt: runtime.F32, bias: true},
	}
	const limit = 2048
	for _, c := range cases {
		in := mmInputs(t, d, c, rng)
		x, w := in.x, in.w
		want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
		for _, v := range mmVariants() {
			name := fmt.Sprintf("%s M=%d N=%d K=%d x=%s y=%s", v.name, c.M, c.N, c.K, c.xdt, c.ydt)
			runOnce := func(lim uint64) []float32 {
				matmulBindingLimit = lim
				defer func() { matmulBindingLimit = 0 }()
				y, err := d.NewTensor(c.ydt, c.M, c.N)
				if err != nil {
					t.Fatal(err)
				}
				defer y.Free()
				if err := d.Run(func(r *runtime.Recorder) error {
					if err := Poison(r, y); err != nil {
						return err
					}
					return v.run(r, y, x, w, in.bias)
				}); err != nil {
					t.Fatalf("%s (limit %d): %v", name, lim, err)
				}
				return download(t, y)
			}
			whole := runOnce(0)
			chunked := runOnce(limit)
			if e := gputest.RelErr(chunked, want); e > mmTol(c.ydt) {
				t.Errorf("%s: chunked relative error %.3g > %.3g", name, e, mmTol(c.ydt))
			}
			for i := range whole {
				if math.Float32bits(whole[i]) != math.Float32bits(chunked[i]) {
					t.Errorf("%s: element %d: chunked %v != unchunked %v", name, i, chunked[i], whole[i])
					break
				}
			}
		}
		// The limit really splits the problem over both M and N.
		matmulBindingLimit = limit
		ch, err := mmPlan(d, mmShape{M: c.M, N: c.N, K: c.K}, c.xdt.Size(), c.ydt.Size(), 4, 2, 1<<20)
		matmulBindingLimit = 0
		if err != nil {
			t.Fatal(err)
		}
		ms, ns := map[int]bool{}, map[int]bool{}
		for _, k := range ch {
			ms[k.m0], ns[k.n0] = true, true
		}
		if (c.M > 4 && len(ms) < 2) || len(ns) < 2 {
			t.Errorf("M=%d N=%d K=%d: limit %d gave %d M-chunks and %d N-chunks", c.M, c.N, c.K, limit, len(ms), len(ns))
		}
	}
}

func TestMatMulShapeErrors(t *testing.T) {
	d := gputest.Device(t)
	mk := func(dt runtime.DType, shape ...int) *runtime.Tensor {
		x, err := d.NewTensor(dt, shape...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Free)
		return x
	}
	x, w, y, b := mk(runtime.F32, 3, 8), mk(runtime.F16, 5, 8), mk(runtime.F32, 3, 5), mk(runtime.F32, 5)
	bad := []struct {
		name          string
		y, x, w, bias *runtime.Tensor
	}{
		{"f32 weight", y, x, mk(runtime.F32, 5, 8), nil},
		{"1-D weight", y, x, mk(runtime.F16, 40), nil},
		{"K mismatch", y, mk(runtime.F32, 3, 7), w, nil},
		{"i32 input", y, mk(runtime.I32, 3, 8), w, nil},
		{"y too short", mk(runtime.F32, 3, 4), x, w, nil},
		{"y wrong last dim", mk(runtime.F32, 5, 3), x, w, nil},
		{"bf16 output", mk(runtime.BF16, 3, 5), x, w, nil},
		{"bias length", y, x, w, mk(runtime.F32, 4)},
		{"f16 bias", y, x, w, mk(runtime.F16, 5)},
	}
	for _, c := range bad {
		for _, fn := range []func(*runtime.Recorder, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor) error{MatMul, MatMulTiled, MatVec, MatMulAdd} {
			err := d.Run(func(r *runtime.Recorder) error { return fn(r, c.y, c.x, c.w, c.bias) })
			if err == nil {
				t.Errorf("%s: no error", c.name)
			}
		}
	}
	if err := d.Run(func(r *runtime.Recorder) error { return MatMul(r, y, x, w, b) }); err != nil {
		t.Errorf("valid shapes: %v", err)
	}
	// M = 0 (no rows) is valid and records nothing.
	x0, y0 := mk(runtime.F16, 0, 8), mk(runtime.F32, 0, 5)
	for _, fn := range []func(*runtime.Recorder, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor) error{MatMul, MatMulTiled, MatVec, MatMulAdd} {
		if err := d.Run(func(r *runtime.Recorder) error { return fn(r, y0, x0, w, b) }); err != nil {
			t.Errorf("M=0: %v", err)
		}
	}
}

func TestRefMatMul(t *testing.T) {
	// [[1 2] [3 4] [5 6]] · [[1 0] [1 1]]ᵀ + [10 20]
	got := RefMatMul([]float32{1, 2, 3, 4, 5, 6}, []float32{1, 0, 1, 1}, []float32{10, 20}, 3, 2, 2)
	want := []float64{11, 23, 13, 27, 15, 31}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("RefMatMul = %v, want %v", got, want)
		}
	}
}
