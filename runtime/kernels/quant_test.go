package kernels

import (
	le "encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref/quantref"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// qCase is one quantized product y [M, N] = x [M, K] · Wᵀ (+ bias).
type qCase struct {
	dt       runtime.DType
	M, N, K  int
	xdt, ydt runtime.DType
	bias     bool
}

func (c qCase) String() string {
	return fmt.Sprintf("%s M=%d N=%d K=%d x=%s y=%s bias=%v", c.dt, c.M, c.N, c.K, c.xdt, c.ydt, c.bias)
}

// qCases are awkward shapes for every quantized type: N not a multiple of
// the rows per workgroup (37, 129; 1), K = 1, 3 and 5 blocks, M = 1…4,
// every x/y dtype pair, with bias and without.
func qCases() []qCase {
	shapes := [][3]int{{1, 37, 1}, {2, 129, 3}, {3, 37, 5}, {4, 1, 3}, {4, 129, 1}}
	dts := []runtime.DType{runtime.F32, runtime.F16}
	var cs []qCase
	for ti, dt := range runtime.QuantizedTypes() {
		for i, s := range shapes {
			j := ti + i
			cs = append(cs, qCase{dt: dt, M: s[0], N: s[1], K: s[2] * dt.BlockElems(),
				xdt: dts[j%2], ydt: dts[(j/2)%2], bias: j%3 != 1})
		}
	}
	return cs
}

// moderate is the block-scale bound of the products' weights
// (quantref.RandomBlocks): elements below 64 in magnitude.
const moderate = 1.0 / 64

// qTol is the bound on the relative error (gputest.RelErr) against the
// float64 reference: the 1e-3 for an f16 output (one f16 rounding
// of each element, 2^-11 relative at most); an f32 output has only the
// f32 accumulation of exact products and scales, far below 1e-5.
func qTol(ydt runtime.DType) float64 {
	if ydt == runtime.F16 {
		return 1e-3
	}
	return 1e-5
}

// qInputs holds a case's device tensors and host values.
type qInputs struct {
	x, w, bias *runtime.Tensor
	xv, bv     []float32
	wb         []byte
}

func newQInputs(t *testing.T, d *runtime.Device, c qCase, rng *rand.Rand) qInputs {
	t.Helper()
	var in qInputs
	in.xv = make([]float32, c.M*c.K)
	for i := range in.xv {
		in.xv[i] = float32(rng.NormFloat64())
	}
	if c.xdt == runtime.F16 {
		in.xv = runtime.RoundF16(in.xv)
	}
	in.x = shaped(t, d, c.xdt, in.xv, c.M, c.K)
	in.w, in.wb = quantWeight(t, d, rng, c.dt, c.N, c.K, moderate)
	if c.bias {
		in.bv = make([]float32, c.N)
		for i := range in.bv {
			in.bv[i] = float32(rng.NormFloat64() * 0.5)
		}
		in.bias = shaped(t, d, runtime.F32, in.bv, c.N)
	}
	return in
}

// quantWeight uploads random valid blocks of N rows of K elements with
// block scales below scale (quantref.RandomBlocks).
func quantWeight(t *testing.T, d *runtime.Device, rng *rand.Rand, dt runtime.DType, N, K int, scale float64) (*runtime.Tensor, []byte) {
	t.Helper()
	b, err := quantref.RandomBlocks(rng, dt, N, K, scale)
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.NewNamedTensor("w", dt, N, K)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Free)
	if err := w.UploadBytes(b, 0); err != nil {
		t.Fatal(err)
	}
	return w, b
}

// runQ records op into a poisoned output and returns it.
func runQ(t *testing.T, d *runtime.Device, c qCase, in qInputs, op func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error) []float32 {
	t.Helper()
	y, err := d.NewTensor(c.ydt, c.M, c.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, y); err != nil {
			return err
		}
		return op(r, y, in.x, in.w, in.bias)
	}); err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	return download(t, y)
}

// TestQuantMatVec checks MatMul and MatVec with a quantized weight against
// the float64 reference (blocks dequantized by model/gguf) on every type.
func TestQuantMatVec(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range qCases() {
		in := newQInputs(t, d, c, rng)
		want, err := quantref.MatMul(in.xv, in.wb, c.dt, in.bv, c.M, c.N, c.K)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []struct {
			name string
			run  func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error
		}{{"MatMul", MatMul}, {"MatVec", MatVec}} {
			got := runQ(t, d, c, in, op.run)
			if e := gputest.RelErr(got, want); e > qTol(c.ydt) {
				t.Errorf("%s %s: relative error %.3g > %.3g", op.name, c, e, qTol(c.ydt))
			}
		}
	}
}

// TestQuantMatVecManyRows checks MatVec past GEMVMaxM rows (dispatches of
// 4 rows of x) and MatMul's refusal of them, which names the fix.
func TestQuantMatVecManyRows(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []qCase{
		{dt: runtime.Q4_K, M: 6, N: 37, K: 512, xdt: runtime.F32, ydt: runtime.F32, bias: true},
		{dt: runtime.Q8_0, M: 9, N: 20, K: 96, xdt: runtime.F16, ydt: runtime.F16},
	} {
		in := newQInputs(t, d, c, rng)
		want, err := quantref.MatMul(in.xv, in.wb, c.dt, in.bv, c.M, c.N, c.K)
		if err != nil {
			t.Fatal(err)
		}
		if e := gputest.RelErr(runQ(t, d, c, in, MatVec), want); e > qTol(c.ydt) {
			t.Errorf("MatVec %s: relative error %.3g > %.3g", c, e, qTol(c.ydt))
		}
		y := shaped(t, d, c.ydt, nil, c.M, c.N)
		err = d.Run(func(r *runtime.Recorder) error { return MatMul(r, y, in.x, in.w, in.bias) })
		if err == nil || !strings.Contains(err.Error(), "Dequantize") {
			t.Errorf("MatMul %s: error %v, want one that says to dequantize first", c, err)
		}
	}
}

// TestQuantChunked splits the weight over rows (binding limit) so that
// chunks start inside aligned spans (non-zero byte offsets), and checks the
// results bit for bit against the unsplit run.
func TestQuantChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []qCase{
		{dt: runtime.Q6_K, M: 3, N: 301, K: 256, xdt: runtime.F32, ydt: runtime.F32, bias: true},
		{dt: runtime.Q5_0, M: 2, N: 301, K: 96, xdt: runtime.F16, ydt: runtime.F16},
	} {
		in := newQInputs(t, d, c, rng)
		want, err := quantref.MatMul(in.xv, in.wb, c.dt, in.bv, c.M, c.N, c.K)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := c.dt.RowBytes(c.K)
		limit := quantSlack(d, c.dt) + uint64(100*rb) // about 100 rows a chunk
		whole := runQ(t, d, c, in, MatVec)
		matmulBindingLimit = limit
		chunked := runQ(t, d, c, in, MatVec)
		nc, err := quantRowChunk(d, c.dt, c.N, c.K, quantGemvNR, "test")
		matmulBindingLimit = 0
		if err != nil {
			t.Fatal(err)
		}
		if nc >= c.N || nc < 1 {
			t.Fatalf("%s: limit %d gives %d rows a chunk, want a split", c, limit, nc)
		}
		if e := gputest.RelErr(chunked, want); e > qTol(c.ydt) {
			t.Errorf("%s: chunked relative error %.3g > %.3g", c, e, qTol(c.ydt))
		}
		for i := range whole {
			if math.Float32bits(whole[i]) != math.Float32bits(chunked[i]) {
				t.Errorf("%s: element %d: chunked %v != unchunked %v", c, i, chunked[i], whole[i])
				break
			}
		}
	}
}

// TestDequantize checks Dequantize bit for bit against model/gguf's
// dequantizer rounded to f16 to nearest even (ties to even, overflow to
// ±Inf), for every type, into a view of a larger poisoned scratch at a
// non-zero offset; the scratch outside the view must stay poisoned. Besides
// moderate block scales, tiny ones give f16-subnormal results and large ones
// results past f16's range, so every branch of the shader's rounding runs.
func TestDequantize(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for i, dt := range runtime.QuantizedTypes() {
		for _, scale := range []float64{moderate, 1.0 / (1 << 17), 1 << 14} {
			N, K := []int{37, 129, 3}[i%3], []int{1, 3, 5}[i%3]*dt.BlockElems()
			name := fmt.Sprintf("%s N=%d K=%d scale=%g", dt, N, K, scale)
			w, wb := quantWeight(t, d, rng, dt, N, K, scale)
			want, err := quantref.DequantizeF16(dt, wb, N*K)
			if err != nil {
				t.Fatal(err)
			}
			const off = 1024 // elements before the view (2 KiB, aligned)
			scratch := shaped(t, d, runtime.F16, nil, off+N*K+64)
			view, err := scratch.View(off, N, K)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := Poison(r, scratch); err != nil {
					return err
				}
				return Dequantize(r, view, w)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := scratch.DownloadBytes()
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for e := range off + N*K + 64 {
				got := le.LittleEndian.Uint16(b[2*e:])
				exp := uint16(PoisonBits & 0xffff)
				if e >= off && e < off+N*K {
					exp = want[e-off]
				}
				if got != exp && bad < 5 {
					t.Errorf("%s: element %d: got f16 %#04x, want %#04x", name, e-off, got, exp)
					bad++
				}
			}
			w.Free()
			scratch.Free()
		}
	}
}

// TestDequantizeChunked splits Dequantize over rows and checks it bit for
// bit.
func TestDequantizeChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	dt, N, K := runtime.Q4_K, 150, 512
	w, wb := quantWeight(t, d, rng, dt, N, K, moderate)
	want, err := quantref.DequantizeF16(dt, wb, N*K)
	if err != nil {
		t.Fatal(err)
	}
	y := shaped(t, d, runtime.F16, nil, N, K)
	matmulBindingLimit = 64 << 10 // 64 KiB: 64 rows of f16 output
	defer func() { matmulBindingLimit = 0 }()
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, y); err != nil {
			return err
		}
		return Dequantize(r, y, w)
	}); err != nil {
		t.Fatal(err)
	}
	b, err := y.DownloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	for e := range N * K {
		if got := le.LittleEndian.Uint16(b[2*e:]); got != want[e] {
			t.Fatalf("element %d (row %d): got f16 %#04x, want %#04x", e, e/K, got, want[e])
		}
	}
}

// TestQuantErrors checks the shape and dtype errors of the quantized paths.
func TestQuantErrors(t *testing.T) {
	d := gputest.Device(t)
	w, _ := quantWeight(t, d, gputest.Rand(t), runtime.Q8_0, 4, 64, moderate)
	f16 := shaped(t, d, runtime.F16, nil, 4, 64)
	f32 := shaped(t, d, runtime.F32, nil, 4, 64)
	for _, c := range []struct {
		name     string
		dst, src *runtime.Tensor
		want     string
	}{
		{"f32 destination", f32, w, "must be f16"},
		{"f16 source", f16, f16, "block-quantized"},
		{"short destination", shaped(t, d, runtime.F16, nil, 2, 64), w, "must be f16 with 256 elements"},
	} {
		err := d.Run(func(r *runtime.Recorder) error { return Dequantize(r, c.dst, c.src) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dequantize, %s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// The f16 kernels refuse a quantized weight with the fix in the error.
	x := shaped(t, d, runtime.F16, nil, 8, 64)
	y := shaped(t, d, runtime.F32, nil, 8, 4)
	err := d.Run(func(r *runtime.Recorder) error { return MatMulTiled(r, y, x, w, nil) })
	if err == nil || !strings.Contains(err.Error(), "Dequantize") {
		t.Errorf("MatMulTiled with a q8_0 weight: error %v, want one that says to dequantize", err)
	}
}

// TestQuantTypes checks that the device lists every quantized type (its
// tables build and 16-bit storage is required to open it).
func TestQuantTypes(t *testing.T) {
	d := gputest.Device(t)
	if got, want := fmt.Sprint(QuantTypes(d)), fmt.Sprint(runtime.QuantizedTypes()); got != want {
		t.Errorf("QuantTypes = %s, want %s", got, want)
	}
	if QuantTypes(nil) != nil {
		t.Errorf("QuantTypes(nil) = %v, want nil", QuantTypes(nil))
	}
}

// gemvQConfigs are the quantized mat-vec kernels the variant tests force:
// the reference kernel, the wide kernel as chooseGemvQ configures it (2
// rows per workgroup) and with 4 rows (SHAREPREFILL_GEMVQ=wide,64,4), and
// the wide kernel with the shared-memory reduction, a workgroup smaller
// than the units of a row and rows per workgroup that do not divide N.
func gemvQConfigs(d *runtime.Device) []gemvQCfg {
	sg := d.Caps().SubgroupArithmetic
	return []gemvQCfg{
		{Variant: gemvQRegisters, WG: gemvDefault(d.Caps()).WG, R: quantGemvNR, Subgroup: sg},
		{Variant: gemvQWide, WG: 64, R: 2, Subgroup: sg},
		{Variant: gemvQWide, WG: 64, R: 4, Subgroup: sg},
		{Variant: gemvQWide, WG: 16, R: 3},
	}
}

// TestQuantMatVecVariants forces every kernel of gemv_q's table
// (gemvQConfigs) on each type of the wide kernel, against the float64
// reference: N not a multiple of the rows per workgroup, K an odd number of
// 256-element blocks (so Q8_0 and Q6_K rows alternate between 4-byte and
// 2-byte aligned starts), M = 1, 3 and 6 (dispatches of 4 and 2 rows: every
// MM), x/y dtype pairs in turn, with bias and without, into poisoned
// outputs.
func TestQuantMatVecVariants(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	shapes := [][3]int{{1, 37, 3}, {3, 67, 5}, {6, 13, 1}} // M = 6: dispatches of 4 and 2 rows
	dts := []runtime.DType{runtime.F32, runtime.F16}
	for ci, cfg := range gemvQConfigs(d) {
		for ti, dt := range quantWideTypes {
			for i, sh := range shapes {
				if ci == 2 && i != ti%len(shapes) {
					continue // the small-workgroup configuration: one shape per type
				}
				j := ti + i + ci
				c := qCase{dt: dt, M: sh[0], N: sh[1], K: sh[2] * 256, xdt: dts[j%2], ydt: dts[(j/2)%2], bias: j%3 != 1}
				in := newQInputs(t, d, c, rng)
				want, err := quantref.MatMul(in.xv, in.wb, c.dt, in.bv, c.M, c.N, c.K)
				if err != nil {
					t.Fatal(err)
				}
				got := runQ(t, d, c, in, func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
					s, err := mmCheck("matvec", y, x, w, bias)
					if err != nil {
						return err
					}
					return matVecQuantWith(r, s, y, x, w, bias, cfg)
				})
				if e := gputest.RelErr(got, want); e > qTol(c.ydt) {
					t.Errorf("%s, %s: relative error %.3g > %.3g", cfg, c, e, qTol(c.ydt))
				}
			}
		}
	}
}

// TestQuantWideChunked splits the weight over rows (binding limit) so
// that the wide kernel's chunks start inside aligned spans, at byte offsets
// that are odd multiples of 2 for Q6_K and Q8_0 and multiples of 16 for
// Q4_K, and checks them against the reference.
func TestQuantWideChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []qCase{
		{dt: runtime.Q6_K, M: 2, N: 211, K: 256, xdt: runtime.F16, ydt: runtime.F32, bias: true},
		{dt: runtime.Q8_0, M: 1, N: 211, K: 288, xdt: runtime.F32, ydt: runtime.F32},
		{dt: runtime.Q4_K, M: 3, N: 211, K: 256, xdt: runtime.F16, ydt: runtime.F16},
	} {
		in := newQInputs(t, d, c, rng)
		want, err := quantref.MatMul(in.xv, in.wb, c.dt, in.bv, c.M, c.N, c.K)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := c.dt.RowBytes(c.K)
		matmulBindingLimit = quantSlack(d, c.dt) + uint64(50*rb) // about 50 rows a chunk
		got := runQ(t, d, c, in, MatVec)
		matmulBindingLimit = 0
		if k := QuantMatVecKernel(d, c.dt, c.M, c.N, c.K); !strings.HasPrefix(k, gemvQWide) {
			t.Fatalf("%s: kernel %q, want the wide one", c, k)
		}
		if e := gputest.RelErr(got, want); e > qTol(c.ydt) {
			t.Errorf("%s: chunked relative error %.3g > %.3g", c, e, qTol(c.ydt))
		}
	}
}

// TestChooseGemvQ checks the quantized mat-vec kernel's choice: the wide
// kernel for its types (2 rows per workgroup), the reference
// kernel for the others, and Tuning.GemvQ's overrides.
func TestChooseGemvQ(t *testing.T) {
	d := gputest.Device(t)
	for _, c := range []struct {
		dt   runtime.DType
		n    int
		want string
	}{
		{runtime.Q4_K, 4096, "wide wg64/r2"},
		{runtime.Q6_K, 1024, "wide wg64/r2"},
		{runtime.Q8_0, 14336, "wide wg64/r2"},
		{runtime.Q4_0, 4096, "registers wg128/r2"},
		{runtime.Q5_0, 4096, "registers wg128/r2"},
	} {
		if got := QuantMatVecKernel(d, c.dt, 1, c.n, 4096); got != c.want {
			t.Errorf("%s N=%d: kernel %q, want %q", c.dt, c.n, got, c.want)
		}
	}
	ref := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{GemvQ: runtime.GemvQ{Variant: "registers"}}})
	if got := QuantMatVecKernel(ref, runtime.Q4_K, 1, 4096, 4096); got != "registers wg128/r2" {
		t.Errorf("Tuning registers: kernel %q", got)
	}
	wide := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{GemvQ: runtime.GemvQ{Variant: "wide", WG: 128, Rows: 3}}})
	if got := QuantMatVecKernel(wide, runtime.Q6_K, 1, 4096, 4096); got != "wide wg128/r3" {
		t.Errorf("Tuning wide,128,3: kernel %q", got)
	}
	if got := QuantMatVecKernel(wide, runtime.Q5_0, 1, 4096, 4096); !strings.Contains(got, "no q5_0 variant") {
		t.Errorf("Tuning wide for q5_0: %q, want an error naming the type", got)
	}
}
