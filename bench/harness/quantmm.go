package harness

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// LlamaCppMatVecShapes are the weight shapes of llama.cpp's
// test-backend-ops MUL_MAT performance cases for an 8B model (its m = our
// N output rows, its k = our K): the down projection (N 4096, K 14336), the
// gate/up projections (14336, 4096) and the square attention projections
// (4096, 4096).
var LlamaCppMatVecShapes = []MatShape{
	{"m4096_k14336", 4096, 14336}, {"m14336_k4096", 14336, 4096}, {"m4096_k4096", 4096, 4096},
}

// QuantMatRow is one timing of the weight-type matmul benchmark (RunKernels
// with KernelParams.MatMulTypes).
type QuantMatRow struct {
	Type string `json:"type"` // the weight type: f16, q8_0, q4_k, …
	M    int    `json:"m"`
	N    int    `json:"n"`
	K    int    `json:"k"`
	// Variant is the kernel that ran: for M ≤ kernels.GEMVMaxM the
	// mat-vec (kernels.QuantMatVecKernel for a quantized weight,
	// kernels.MatMulKernel for f16); above it, a quantized weight is
	// dequantized into an f16 scratch first ("dequant + …", both dispatches
	// timed, as the prefill does).
	Variant string `json:"variant"`
	Stat
	Us          float64 `json:"us_per_call"`  // median µs
	WeightBytes int64   `json:"weight_bytes"` // bytes of the weight as stored
	GBps        float64 `json:"gb_per_s"`     // WeightBytes / median time, 1e9 B/s
	TFLOPs      float64 `json:"tflops"`       // 2·M·N·K / median time
	Timer       string  `json:"timer"`
}

// ParseWeightTypes parses the --matmul-types list: f16 and the
// block-quantized types by name (runtime.DType.String: q8_0, q4_k, …).
func ParseWeightTypes(s string) ([]string, error) {
	var out []string
	for _, f := range ParseList(s) {
		if _, err := weightType(f); err != nil {
			return nil, err
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}

// weightType is the dtype of a --matmul-types name.
func weightType(name string) (runtime.DType, error) {
	names := []string{runtime.F16.String()}
	if name == runtime.F16.String() {
		return runtime.F16, nil
	}
	for _, dt := range runtime.QuantizedTypes() {
		if dt.String() == name {
			return dt, nil
		}
		names = append(names, dt.String())
	}
	return 0, fmt.Errorf("weight type %q: want one of %s", name, strings.Join(names, ", "))
}

// randomBlocks fills b with rows of random blocks of the quantized type dt:
// random quants, and every f16 block scale a finite value of moderate size
// (|d| in [2^-9, 2^-6) with a random sign, dmin in [2^-10, 2^-7)), so that
// no product overflows and the timed arithmetic is ordinary.
func randomBlocks(rng *rand.Rand, dt runtime.DType, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	dt.RandomizeScales(rng, b, 1.0/64)
}

// uploadWeight fills the [N, K] weight w of type dt: f16 from the pool,
// a quantized type with random blocks (randomBlocks), uploaded a chunk of
// rows at a time.
func uploadWeight(w *runtime.Tensor, dt runtime.DType, pool f16Pool, seed uint64) error {
	if dt == runtime.F16 {
		return pool.fill(w, int(seed))
	}
	sh := w.Shape()
	rb, err := dt.RowBytes(sh[1])
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e37))
	rows := max(1, (8<<20)/rb)
	buf := make([]byte, rows*rb)
	for r0 := 0; r0 < sh[0]; r0 += rows {
		b := buf[:min(rows, sh[0]-r0)*rb]
		randomBlocks(rng, dt, b)
		if err := w.UploadBytes(b, uint64(r0*rb)); err != nil {
			return err
		}
	}
	return nil
}

// quantMatMuls times y = x·Wᵀ for every weight type of p.MatMulTypes,
// shape of p.QuantShapes and row count of p.QuantM: x and y f16 (as the
// model's decode and prefill), W random (f16 N(0, 1), or random blocks).
// For a quantized W and M > kernels.GEMVMaxM the timed run is the
// prefill's: Dequantize into an f16 scratch, then MatMul.
func quantMatMuls(dev *runtime.Device, timer *Timer, pool f16Pool, p KernelParams, res *KernelResults) error {
	for ti, name := range p.MatMulTypes {
		dt, err := weightType(name)
		if err != nil {
			return err
		}
		for si, sh := range p.QuantShapes {
			if err := quantShape(dev, timer, pool, p, res, dt, sh, uint64(1000*ti+si)+p.Seed); err != nil {
				return err
			}
		}
	}
	return nil
}

// quantShape times one weight type and shape at every M of p.QuantM.
func quantShape(dev *runtime.Device, timer *Timer, pool f16Pool, p KernelParams, res *KernelResults, dt runtime.DType, sh MatShape, seed uint64) error {
	what := fmt.Sprintf("%s matmul %dx%d", dt, sh.N, sh.K)
	skip := func(why string) {
		res.Skipped = append(res.Skipped, Skip{What: what, Reason: why})
		p.skipCells(len(p.QuantM))
	}
	var wBytes uint64
	if dt == runtime.F16 {
		wBytes = uint64(sh.N) * uint64(sh.K) * 2
	} else {
		rb, err := dt.RowBytes(sh.K)
		if err != nil {
			skip(err.Error())
			return nil
		}
		wBytes = uint64(sh.N) * uint64(rb)
	}
	sizes := map[string]uint64{"weight": wBytes}
	if dt != runtime.F16 && slices.ContainsFunc(p.QuantM, func(m int) bool { return m > kernels.GEMVMaxM }) {
		sizes["f16 scratch"] = uint64(sh.N) * uint64(sh.K) * 2
	}
	if why := fitsRange(dev, sizes, false); why != "" {
		skip(why)
		return nil
	}
	w, err := dev.NewNamedTensor(what, dt, sh.N, sh.K)
	if err != nil {
		skip(err.Error())
		return nil
	}
	defer w.Free()
	if err := uploadWeight(w, dt, pool, seed); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var scratch *runtime.Tensor
	for _, m := range p.QuantM {
		mw := w // the weight MatMul multiplies by
		variant := ""
		switch {
		case m <= kernels.GEMVMaxM && dt.IsQuantized():
			variant = kernels.QuantMatVecKernel(dev, dt, m, sh.N, sh.K)
		case dt.IsQuantized():
			if scratch == nil {
				if scratch, err = dev.NewNamedTensor("f16 scratch", runtime.F16, sh.N, sh.K); err != nil {
					res.Skipped = append(res.Skipped, Skip{What: fmt.Sprintf("%s M=%d", what, m), Reason: err.Error()})
					p.skipCells(1)
					continue
				}
				defer scratch.Free()
			}
			mw = scratch
			variant = "dequant + " + kernels.MatMulKernel(dev, m, sh.N, sh.K, runtime.F16)
		default:
			variant = kernels.MatMulKernel(dev, m, sh.N, sh.K, runtime.F16)
		}
		x, err := dev.NewTensor(runtime.F16, m, sh.K)
		if err != nil {
			res.Skipped = append(res.Skipped, Skip{What: fmt.Sprintf("%s M=%d", what, m), Reason: err.Error()})
			p.skipCells(1)
			continue
		}
		y, err := dev.NewTensor(runtime.F16, m, sh.N)
		if err != nil {
			x.Free()
			res.Skipped = append(res.Skipped, Skip{What: fmt.Sprintf("%s M=%d", what, m), Reason: err.Error()})
			p.skipCells(1)
			continue
		}
		err = pool.fill(x, m)
		if err == nil {
			p.cellf("%s M=%d", what, m)
			var st Stat
			st, err = timer.Time(func(r *runtime.Recorder) error {
				if mw != w {
					if err := kernels.Dequantize(r, mw, w); err != nil {
						return err
					}
				}
				return kernels.MatMul(r, y, x, mw, nil)
			})
			if err == nil {
				sec := st.Median * 1e-3
				res.QuantMatMul = append(res.QuantMatMul, QuantMatRow{Type: dt.String(), M: m, N: sh.N, K: sh.K, Variant: variant,
					Stat: st, Us: finite(st.Median * 1e3), WeightBytes: int64(wBytes), GBps: finite(float64(wBytes) / sec / 1e9),
					TFLOPs: finite(2 * float64(m) * float64(sh.N) * float64(sh.K) / sec / 1e12), Timer: timer.Kind()})
			}
		}
		x.Free()
		y.Free()
		if err != nil {
			return fmt.Errorf("%s M=%d: %w", what, m, err)
		}
	}
	return nil
}

// quantCells is the number of timed configurations of the weight-type
// matmul benchmark.
func (p *KernelParams) quantCells() int {
	return len(p.MatMulTypes) * len(p.QuantShapes) * len(p.QuantM)
}

// quantFLOPs is the arithmetic of the weight-type matmul benchmark,
// warm-up runs and repetitions included.
func (p *KernelParams) quantFLOPs() float64 {
	var f float64
	for _, sh := range p.QuantShapes {
		for _, m := range p.QuantM {
			f += 2 * float64(m) * float64(sh.N) * float64(sh.K)
		}
	}
	return f * float64(len(p.MatMulTypes)) * float64(p.Warmup+p.Reps)
}

// validateQuant checks the weight-type matmul parameters.
func (p *KernelParams) validateQuant() error {
	for _, name := range p.MatMulTypes {
		if _, err := weightType(name); err != nil {
			return fmt.Errorf("--matmul-types: %w", err)
		}
	}
	if len(p.MatMulTypes) == 0 {
		return nil
	}
	if len(p.QuantM) == 0 {
		return fmt.Errorf("--quant-m: no row counts for --matmul-types %s", strings.Join(p.MatMulTypes, ","))
	}
	for _, m := range p.QuantM {
		if m < 1 {
			return fmt.Errorf("--quant-m: %d: want ≥ 1", m)
		}
	}
	if len(p.QuantShapes) == 0 {
		return fmt.Errorf("--quant-shapes: no shapes for --matmul-types %s", strings.Join(p.MatMulTypes, ","))
	}
	for _, sh := range p.QuantShapes {
		if sh.N < 1 || sh.K < 256 || sh.K%256 != 0 {
			return fmt.Errorf("--quant-shapes: %dx%d: want N ≥ 1 and K a positive multiple of 256 (every type's block)", sh.N, sh.K)
		}
	}
	return nil
}

// ParseShapes parses the --quant-shapes list "NxK,…" (k = 1024 allowed:
// "4kx14k").
func ParseShapes(s string) ([]MatShape, error) {
	var out []MatShape
	for _, f := range ParseList(s) {
		a, b, ok := strings.Cut(f, "x")
		if !ok {
			return nil, fmt.Errorf("shape %q: want NxK", f)
		}
		n, err1 := ParseInts(a)
		k, err2 := ParseInts(b)
		if err1 != nil || err2 != nil || len(n) != 1 || len(k) != 1 {
			return nil, fmt.Errorf("shape %q: want NxK with positive integers", f)
		}
		out = append(out, MatShape{Name: fmt.Sprintf("m%d_k%d", n[0], k[0]), N: n[0], K: k[0]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}

// quantTable renders the weight-type matmul rows.
func quantTable(rows []QuantMatRow) *Table {
	if len(rows) == 0 {
		return nil
	}
	t := &Table{Title: "MatMul by weight type (llama.cpp test-backend-ops shapes; f16 x and y, f32 accumulation)",
		Header: []string{"type", "M×N×K", "variant", "µs/call", "p20–p80 ms", "weight MiB", "GB/s", "TFLOP/s"},
		Foot:   "GB/s = weight bytes as stored / median time; M > 4 with a quantized weight times Dequantize into an f16 scratch + MatMul (the prefill's path)"}
	for _, r := range rows {
		t.Add(r.Type, fmt.Sprintf("%d×%d×%d", r.M, r.N, r.K), r.Variant, f(r.Us, 2), rng2(r.Stat),
			g3(float64(r.WeightBytes)/(1<<20)), g3(r.GBps), g3(r.TFLOPs))
	}
	return t
}
