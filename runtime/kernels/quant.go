package kernels

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
)

// Block-quantized weights (runtime.Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K).
//
// A quantized weight [N, K] is N rows of K/BlockElems ggml blocks, byte for
// byte as in a GGUF file. Three kernels read them:
//
//   - the quantized matrix-vector kernel (gemv_q.comp), which MatMul and
//     MatVec use for such a weight: it reads the raw blocks and dequantizes
//     them in registers, for the few rows of decode (M ≤ GEMVMaxM for
//     MatMul);
//   - Dequantize (dequant.comp), which expands the blocks into an f16 [N, K]
//     tensor, so that prefill multiplies by an f16 scratch with the f16
//     kernels;
//   - Embed with a quantized table (embed_q.comp, embed_q.go), which
//     gathers rows by token id and dequantizes them in registers to f32.
//
// All three decode a block in units of 8 consecutive elements that share one
// scale (shaders/quant.glsl) and read the blocks as 16-bit words: every
// block size is even, so a block starts on a 16-bit boundary whatever the
// row length.

// quantModules expands a module name pattern: its %q becomes each quantized
// type's name (runtime.DType.String), then each %s f16 and f32
// (dtypeNames).
func quantModules(pattern string) []string {
	var out []string
	for _, dt := range runtime.QuantizedTypes() {
		out = append(out, dtypeNames(strings.Replace(pattern, "%q", dt.String(), 1))...)
	}
	return out
}

// QuantTypes returns the block-quantized types whose kernels (MatMul and
// MatVec with a quantized weight, Dequantize, Embed with a quantized table)
// run on dev, in
// runtime.QuantizedTypes order; nil for a nil dev. A caller whose weight
// type is missing dequantizes to f16 at load instead. The kernels read the
// blocks as 16-bit words, and the runtime opens only devices with 16-bit
// storage buffers, so today this is every quantized type wherever the
// kernels' tables (variants.go) build; the list is per device so that
// callers need not assume it.
func QuantTypes(dev *runtime.Device) []runtime.DType {
	if dev == nil {
		return nil
	}
	tb, err := tablesOf(dev)
	if err != nil || !tb.has("gemv_q", "registers") || !tb.has("dequant", "blocks") || !tb.has("embed_q", "registers") {
		return nil
	}
	return runtime.QuantizedTypes()
}

// quantCheck checks that dev runs the kernels of w's type.
func quantCheck(op string, dev *runtime.Device, w *runtime.Tensor) error {
	if !slices.Contains(QuantTypes(dev), w.DType()) {
		return fmt.Errorf("%s: %w: device %q has no kernels for %s weights (%s): dequantize %s to f16 at load",
			op, runtime.ErrMissingFeature, dev.Info().Name, w.DType(), w.Name(), w.Name())
	}
	return nil
}

// gcd is the greatest common divisor of positive a and b.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// quantSpan binds rows [row0, row0+rows) of the quantized [N, K] tensor w
// from a block whose byte offset is aligned (mmAlign) at or below row0's,
// and returns the byte offset of row0 in the binding (even: block sizes
// are even). The binding starts at most quantSlack(d, dt) bytes before row0.
func quantSpan(d *runtime.Device, w *runtime.Tensor, K, row0, rows int) (runtime.Arg, uint32) {
	dt := w.DType()
	if row0 == 0 && rows*K == w.Len() {
		return w.Arg(), 0
	}
	be, bb := dt.BlockElems(), dt.BlockBytes()
	bpr := K / be
	b := row0 * bpr
	step := int(mmAlign(d)) / gcd(bb, int(mmAlign(d)))
	base := b - b%step
	return w.Slice(base*be, (b-base+rows*bpr)*be), uint32((b - base) * bb)
}

// quantSlack is the most bytes a quantSpan binding starts before its row.
func quantSlack(d *runtime.Device, dt runtime.DType) uint64 {
	al := int(mmAlign(d))
	return uint64((al/gcd(dt.BlockBytes(), al) - 1) * dt.BlockBytes())
}

// bindingLimit is the most bytes one binding may span: the device's
// maxStorageBufferRange, or matmulBindingLimit when tests set it lower.
func bindingLimit(d *runtime.Device) uint64 {
	limit := d.Info().MaxStorageBufferRange
	if matmulBindingLimit != 0 && matmulBindingLimit < limit {
		limit = matmulBindingLimit
	}
	return limit
}

// quantRowChunk is the most rows of a quantized [N, K] tensor one binding
// holds (with its slack), rounded down to a multiple of align when that is
// smaller than N.
func quantRowChunk(d *runtime.Device, dt runtime.DType, N, K, align int, what string) (int, error) {
	rb, err := dt.RowBytes(K)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	limit, slack := bindingLimit(d), quantSlack(d, dt)
	if uint64(N)*uint64(rb)+slack <= limit {
		return N, nil
	}
	if limit <= slack || (limit-slack)/uint64(rb) < 1 {
		return 0, fmt.Errorf("%s: a row of %d %s elements (%d bytes) does not fit a binding of %d bytes", what, K, dt, rb, limit)
	}
	nc := int((limit - slack) / uint64(rb))
	if nc > align {
		nc -= nc % align
	}
	return nc, nil
}

// quantGemvNR is the number of rows of W one workgroup of the reference
// kernel gemv_q owns (spec constant 1); its workgroup size is chooseGemv's.
const quantGemvNR = 2

// quantWideTypes are the weight types of the wide kernel (gemv_qw.comp);
// Q4_0 and Q5_0 take the reference kernel.
var quantWideTypes = []runtime.DType{runtime.Q8_0, runtime.Q4_K, runtime.Q5_K, runtime.Q6_K}

// wideModules are the wide kernel's modules: one per type of
// quantWideTypes and x/y dtype, and its fused decode variants
// (fusedQModules).
func wideModules() []string {
	out := fusedQModules()
	for _, dt := range quantWideTypes {
		out = append(out, dtypeNames("gemv_qw_"+dt.String()+"_x%s_y%s")...)
	}
	return out
}

// Quantized mat-vec kernels, the variants of the gemv_q table.
const (
	gemvQWide      = "wide"      // gemv_qw.comp: a scale group per invocation, wide loads
	gemvQRegisters = "registers" // gemv_q.comp: 8 elements per invocation, 16-bit loads (reference)
)

// gemvQCfg is the quantized mat-vec kernel of a call: a variant of the
// gemv_q table and its spec constants.
type gemvQCfg struct {
	Variant  string
	WG, R    uint32 // workgroup size; rows of W per workgroup
	Subgroup bool   // subgroupAdd reduction
}

// String names the kernel for reports: "wide wg64/r2".
func (c gemvQCfg) String() string { return fmt.Sprintf("%s wg%d/r%d", c.Variant, c.WG, c.R) }

// chooseGemvQ picks the quantized mat-vec kernel for a weight of type dt
// on dev: the device's Tuning.GemvQ where set, else the wide kernel for its
// types (quantWideTypes) with 64 invocations and 2 rows per workgroup, else
// the reference kernel.
func chooseGemvQ(dev *runtime.Device, dt runtime.DType) (gemvQCfg, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return gemvQCfg{}, fmt.Errorf("matvec: %w", err)
	}
	caps := dev.Caps()
	ref := gemvQCfg{Variant: gemvQRegisters, WG: gemvDefault(caps).WG, R: quantGemvNR, Subgroup: caps.SubgroupArithmetic}
	// Two rows of W per 64-wide workgroup: on an H100 (2026-12-07) two rows
	// beat four on every type and shape of the by-type benchmark (Q6_K
	// 4096×14336: 35.3 against 43.8 µs; Q4_K 25.3 against 26.5) and the
	// 32-layer 8B Q4_K_M decode ran 148 against 133 tokens/s.
	wide := gemvQCfg{Variant: gemvQWide, WG: 64, R: 2, Subgroup: caps.SubgroupArithmetic}
	canWide := tb.has("gemv_q", gemvQWide) && slices.Contains(quantWideTypes, dt)
	tu := dev.Tuning().GemvQ
	switch {
	case tu.Variant == gemvQRegisters || (tu.Variant == "" && !canWide):
		return ref, nil
	case tu.Variant == gemvQWide && !canWide:
		return gemvQCfg{}, fmt.Errorf("matvec: %w: Tuning.GemvQ asks for the wide kernel, which has no %s variant on device %q",
			runtime.ErrMissingFeature, dt, dev.Info().Name)
	}
	if tu.WG != 0 {
		wide.WG = tu.WG
	}
	if tu.Rows != 0 {
		wide.R = tu.Rows
	}
	return wide, nil
}

// QuantMatVecKernel describes the kernel MatMul and MatVec use on dev for
// m ≤ GEMVMaxM rows of x and an [n, k] weight of block-quantized type dt,
// for reports: "wide wg64/r2" or "registers wg128/r2" (variant, workgroup
// size, rows of the weight per workgroup), or "error: …".
func QuantMatVecKernel(dev *runtime.Device, dt runtime.DType, m, n, k int) string {
	c, err := chooseGemvQ(dev, dt)
	if err != nil {
		return "error: " + err.Error()
	}
	return c.String()
}

// matVecQuant records y = x·Wᵀ (+ bias) for a block-quantized w with the
// quantized matrix-vector kernel chooseGemvQ picks.
func matVecQuant(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
	cfg, err := chooseGemvQ(r.Device(), w.DType())
	if err != nil {
		return err
	}
	return matVecQuantWith(r, s, y, x, w, bias, cfg)
}

// matVecQuantWith records y = x·Wᵀ (+ bias) with the quantized mat-vec
// kernel cfg, GEMVMaxM rows of x per dispatch and as many rows of w per
// dispatch as one binding holds.
func matVecQuantWith(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, cfg gemvQCfg) error {
	d := r.Device()
	dt := w.DType()
	if err := quantCheck("matvec", d, w); err != nil {
		return err
	}
	if s.K%dt.BlockElems() != 0 { // NewTensor guarantees it; stated for the kernel
		return fmt.Errorf("matvec: weight %s: K=%d is not a whole number of %s blocks", w.Name(), s.K, dt)
	}
	wide := cfg.Variant == gemvQWide
	switch {
	case wide && !slices.Contains(quantWideTypes, dt):
		return fmt.Errorf("matvec: weight %s: the wide kernel has no %s variant", w.Name(), dt)
	case cfg.WG < 8 || cfg.WG > 1024 || cfg.WG&(cfg.WG-1) != 0 || cfg.R < 1 || cfg.R > 8:
		return fmt.Errorf("matvec: kernel %s: want a power-of-two workgroup size in 8…1024 and 1…8 rows per workgroup", cfg)
	}
	if s.M == 0 {
		return nil
	}
	nc, err := quantRowChunk(d, dt, s.N, s.K, int(cfg.R), "matvec")
	if err != nil {
		return err
	}
	ys, xs := uint64(y.DType().Size()), uint64(x.DType().Size())
	if limit := bindingLimit(d); uint64(gemvRows*s.N)*ys+mmAlign(d) > limit || uint64(gemvRows*s.K)*xs+mmAlign(d) > limit {
		return fmt.Errorf("matvec: %d×%d output rows or %d×%d input rows do not fit a binding of %d bytes", gemvRows, s.N, gemvRows, s.K, limit)
	}
	suffix := dt.String() + "_x" + dtName(x.DType()) + "_y" + dtName(y.DType())
	kernel := func(mc int) (*runtime.Kernel, error) {
		if wide {
			return d.Kernel(runtime.KernelDesc{
				Shader: "gemv_qw_" + suffix, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
				Spec: []uint32{cfg.WG, cfg.R, b2u(cfg.Subgroup), uint32(mc)},
			})
		}
		return d.Kernel(runtime.KernelDesc{
			Shader: "gemv_" + suffix, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
			Spec: []uint32{cfg.WG, cfg.R, b2u(cfg.Subgroup)},
		})
	}
	mcount := d.Info().MaxWorkgroupCount
	for m0 := 0; m0 < s.M; m0 += gemvRows {
		mc := min(gemvRows, s.M-m0)
		k, err := kernel(mc)
		if err != nil {
			return err
		}
		for n0 := 0; n0 < s.N; n0 += nc {
			c := mmChunk{m0: m0, mc: mc, n0: n0, nc: min(nc, s.N-n0)}
			xa, xo := span(d, x, c.m0*s.K, c.mc*s.K)
			if xo%8 != 0 {
				return fmt.Errorf("matvec: input %s: row offset %d is not a multiple of 8 elements", x.Name(), xo)
			}
			wa, wo := quantSpan(d, w, s.K, c.n0, c.nc)
			if wide && dt.BlockBytes()%16 == 0 && wo%16 != 0 { // Q4_K, Q5_K: uvec4 loads
				return fmt.Errorf("matvec: weight %s: byte offset %d of row %d is not a multiple of 16", w.Name(), wo, c.n0)
			}
			ya, yo := span(d, y, c.m0*s.N+c.n0, (c.mc-1)*s.N+c.nc)
			p := mmPush{M: uint32(c.mc), N: uint32(c.nc), K: uint32(s.K), Ldy: uint32(s.N), XOff: xo, WOff: wo, YOff: yo}
			ba := xa // bias binding when there is no bias: valid, read-only, never read
			if bias != nil {
				var bo uint32
				ba, bo = span(d, bias, c.n0, c.nc)
				p.BOff, p.HasBias = bo, 1
			}
			groups := ceilDiv(c.nc, int(cfg.R))
			gx := min(groups, int(mcount[0]))
			gy := ceilDiv(groups, gx)
			if gy > int(mcount[1]) {
				return fmt.Errorf("matvec: N=%d needs %d workgroups, too many for the device", c.nc, groups)
			}
			if err := r.Dispatch(k, [3]uint32{uint32(gx), uint32(gy), 1}, p, xa, wa, ba, ya); err != nil {
				return err
			}
		}
	}
	return nil
}

// dequantWG is the workgroup size of dequant.comp (spec constant 0): one
// invocation per 8 elements.
const dequantWG = 256

type dequantPush struct {
	K, Rows        uint32
	SrcOff, DstOff uint32
}

// Dequantize records dst = src dequantized: src is a block-quantized
// tensor of N rows of K elements (shape [..., K]), dst an f16 tensor of N·K
// elements whose shape ends in K (for example a view of a scratch sized for
// the largest matrix: scratch.View(0, N, K)). Each element is the float32
// value ggml's dequantize_row_* (and model/gguf.Dequantize) computes, rounded
// to f16 to nearest even (ties to even, overflow to ±Inf), independently
// of the device's own conversion rounding. Large tensors are split over rows
// so that no binding exceeds maxStorageBufferRange.
func Dequantize(r *runtime.Recorder, dst, src *runtime.Tensor) error {
	if r == nil || dst == nil || src == nil {
		return errors.New("dequantize: nil recorder or tensor")
	}
	dt := src.DType()
	ss, ds := src.Shape(), dst.Shape()
	if !dt.IsQuantized() || len(ss) == 0 {
		return fmt.Errorf("dequantize: source %s must be a block-quantized [N, K] tensor, got %s %v", src.Name(), dt, ss)
	}
	K := ss[len(ss)-1]
	if K <= 0 {
		return fmt.Errorf("dequantize: source %s has an empty shape %v", src.Name(), ss)
	}
	if dst.DType() != runtime.F16 || len(ds) == 0 || ds[len(ds)-1] != K || dst.Len() != src.Len() {
		return fmt.Errorf("dequantize: destination %s must be f16 with %d elements in rows of K=%d (source %s %s %v), got %s %v",
			dst.Name(), src.Len(), K, src.Name(), dt, ss, dst.DType(), ds)
	}
	d := r.Device()
	if err := quantCheck("dequantize", d, src); err != nil {
		return err
	}
	N := src.Len() / K
	if N == 0 {
		return nil
	}
	// Rows per dispatch: the source binding's limit, the destination's
	// (2K bytes a row), and a grid of at most 2^32 invocations.
	nc, err := quantRowChunk(d, dt, N, K, 1, "dequantize")
	if err != nil {
		return err
	}
	if limit := bindingLimit(d); uint64(nc)*uint64(K)*2+mmAlign(d) > limit {
		nc = max(1, int((limit-mmAlign(d))/(uint64(K)*2)))
	}
	nc = min(nc, max(1, (1<<32-1)/(K/8)))
	k, err := d.Kernel(runtime.KernelDesc{
		Shader: "dequant_" + dt.String(), Bindings: 2, ReadOnly: 0b01, PushSize: 16,
		Spec: []uint32{dequantWG},
	})
	if err != nil {
		return err
	}
	mcount := d.Info().MaxWorkgroupCount
	for n0 := 0; n0 < N; n0 += nc {
		rows := min(nc, N-n0)
		sa, so := quantSpan(d, src, K, n0, rows)
		da, do := span(d, dst, n0*K, rows*K)
		if do%8 != 0 {
			return fmt.Errorf("dequantize: destination %s: offset %d is not a multiple of 8 elements", dst.Name(), do)
		}
		groups := ceilDiv(rows*(K/8), dequantWG)
		gx := min(groups, int(mcount[0]))
		gy := ceilDiv(groups, gx)
		if gy > int(mcount[1]) {
			return fmt.Errorf("dequantize: %d rows of %d need %d workgroups, too many for the device", rows, K, groups)
		}
		p := dequantPush{K: uint32(K), Rows: uint32(rows), SrcOff: so, DstOff: do}
		if err := r.Dispatch(k, [3]uint32{uint32(gx), uint32(gy), 1}, p, sa, da); err != nil {
			return err
		}
	}
	return nil
}
