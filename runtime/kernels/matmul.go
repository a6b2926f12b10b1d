package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Linear layers: y = x·Wᵀ (+ bias).
//
// Weights are f16 on the device. bf16 checkpoints are converted to f16 when
// the model loader uploads them. bf16 has 7 stored mantissa bits and f16 has
// 10, so every bf16 value in f16's normal range (6.1e-5 ≤ |w| ≤ 65504)
// converts exactly: f16 is the more precise format there. The price is
// range: |w| > 65504 would overflow to ±Inf, and |w| < 6.1e-5 becomes an f16
// subnormal (fewer significant bits; below 6e-8 it flushes to 0). LLM weights
// are far below 65504, and the tiny ones contribute negligibly to the dots.
// All products are accumulated in f32; an f16 output rounds once at the end
// (and is not clamped: an overflow shows as ±Inf).

// GEMVMaxM is the largest M for which MatMul uses the matrix-vector kernel.
const GEMVMaxM = 4

// gemvRows is the number of rows of x one GEMV dispatch handles (MMAX in
// gemv.comp).
const gemvRows = 4

// matmulBindingLimit, when non-zero and below the device's
// maxStorageBufferRange, caps the bytes bound per buffer; tests set it to
// force the chunked path.
var matmulBindingLimit uint64

// mmTile is a tile configuration of the tiled kernel (spec constants 1..5;
// 0 is the workgroup size, 6 the 16-byte-load flag chosen per dispatch).
type mmTile struct{ BM, BN, BK, TM, TN uint32 }

func (t mmTile) wg() uint32 { return (t.BM / t.TM) * (t.BN / t.TN) }

// shared returns the shared-memory bytes the tile needs (f32 slabs).
func (t mmTile) shared() uint32 { return t.BK * (t.BM + t.BN) * 4 }

// valid reports whether the shader supports the tile: TM, TN multiples of 4
// dividing BM, BN; BK a multiple of 8.
func (t mmTile) valid() bool {
	return t.TM%4 == 0 && t.TN%4 == 0 && t.BM%t.TM == 0 && t.BN%t.TN == 0 && t.BK%8 == 0 && t.BK > 0
}

// fits returns why the device cannot run t (op prefixes the error), or nil.
func (t mmTile) fits(op string, caps runtime.Caps) error {
	if !t.valid() {
		return fmt.Errorf("%s: invalid tile %+v", op, t)
	}
	if sh := t.shared(); sh > caps.MaxSharedMemory {
		return fmt.Errorf("%s: tile %+v needs %d bytes of shared memory, device has %d", op, t, sh, caps.MaxSharedMemory)
	}
	return nil
}

// kernel returns the pipeline of the tiled kernel's module shader (matmul.comp
// or its GLU mode) with tile t for a chunk pushing p: 16-byte loads where K
// and the chunk's offsets allow, acc for y += x·Wᵀ.
func (t mmTile) kernel(d *runtime.Device, shader string, p mmPush, acc bool) (*runtime.Kernel, error) {
	return d.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
		Spec: []uint32{t.wg(), t.BM, t.BN, t.BK, t.TM, t.TN, b2u(p.vec()), b2u(acc)},
	})
}

var (
	tileLarge = mmTile{BM: 128, BN: 128, BK: 16, TM: 8, TN: 8}
	tileSmall = mmTile{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4}
)

// chooseTile picks the tile for an M×N output: 128×128 (8×8 per invocation)
// when that still gives enough workgroups, else 64×64 (4×4); both use 256
// invocations. BK is doubled to 32 when the device's shared memory allows
// (the large tile then needs exactly 32 KiB: lavapipe's 32 KiB and NVIDIA's
// 48 KiB both fit it; smaller devices keep BK = 16).
func chooseTile(caps runtime.Caps, M, N int) mmTile {
	t := tileSmall
	if ceilDiv(M, 128)*ceilDiv(N, 128) >= 128 {
		t = tileLarge
	}
	if big := (mmTile{t.BM, t.BN, 32, t.TM, t.TN}); big.shared() <= caps.MaxSharedMemory {
		t = big
	}
	return t
}

// gemvCfg configures the matrix-vector kernel (spec constants 0, 1, 3).
type gemvCfg struct {
	WG, NR   uint32
	Subgroup bool
}

// gemvDefault is the f16 mat-vec shape without tuning: 128 invocations
// and two weight rows per workgroup.
func gemvDefault(caps runtime.Caps) gemvCfg {
	return gemvCfg{WG: 128, NR: 2, Subgroup: caps.SubgroupArithmetic}
}

// chooseGemv is gemvDefault with the device's Tuning.Gemv fields that are
// set (SHAREPREFILL_GEMV).
func chooseGemv(dev *runtime.Device) gemvCfg {
	c, tu := gemvDefault(dev.Caps()), dev.Tuning().Gemv
	if tu.WG != 0 {
		c.WG = tu.WG
	}
	if tu.Rows != 0 {
		c.NR = tu.Rows
	}
	return c
}

// gemvFits reports an error when a mat-vec workgroup's reduction buffer
// (nw matrices × NR rows × m rows of x × WG floats) and extra bytes of
// shared memory do not fit the device: only a tuned shape can do that.
func gemvFits(op string, dev *runtime.Device, cfg gemvCfg, nw, m, extra int) error {
	need := nw*int(cfg.NR)*m*int(cfg.WG)*4 + extra
	if limit := int(dev.Caps().MaxSharedMemory) - 512; need > limit {
		return fmt.Errorf("%s: workgroup shape WG %d × rows %d (Tuning.Gemv, SHAREPREFILL_GEMV) needs %d bytes of shared memory; device %q has %d",
			op, cfg.WG, cfg.NR, need, dev.Info().Name, limit+512)
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

type mmPush struct {
	M, N, K, Ldy           uint32
	XOff, WOff, BOff, YOff uint32
	HasBias                uint32
}

// vec reports whether the kernels may load x and W 16 bytes at a time (K
// and both offsets multiples of 8 elements): their VEC spec constant.
func (p mmPush) vec() bool { return p.K%8 == 0 && p.XOff%8 == 0 && p.WOff%8 == 0 }

// mmShape is a validated problem; Acc asks for y += x·Wᵀ (+ bias)
// (MatMulAdd: the ACC spec constant of the tiled and cooperative-matrix
// kernels).
type mmShape struct {
	M, N, K int
	Acc     bool
}

func mmCheck(op string, y, x, w, bias *runtime.Tensor) (mmShape, error) {
	var s mmShape
	if y == nil || x == nil || w == nil {
		return s, fmt.Errorf("%s: nil tensor", op)
	}
	ws := w.Shape()
	if (w.DType() != runtime.F16 && !w.DType().IsQuantized()) || len(ws) != 2 {
		return s, fmt.Errorf("%s: weight %s must be a 2-D f16 or block-quantized [N, K] tensor, got %s %v", op, w.Name(), w.DType(), ws)
	}
	s.N, s.K = ws[0], ws[1]
	if s.N <= 0 || s.K <= 0 {
		return s, fmt.Errorf("%s: weight %s has an empty shape %v", op, w.Name(), ws)
	}
	if x.DType() != runtime.F32 && x.DType() != runtime.F16 {
		return s, fmt.Errorf("%s: input %s must be f32 or f16, got %s", op, x.Name(), x.DType())
	}
	xs := x.Shape()
	if len(xs) == 0 || xs[len(xs)-1] != s.K {
		return s, fmt.Errorf("%s: input %s %v must end in K=%d (weight %s %v)", op, x.Name(), xs, s.K, w.Name(), ws)
	}
	s.M = x.Len() / s.K
	if y.DType() != runtime.F32 && y.DType() != runtime.F16 {
		return s, fmt.Errorf("%s: output %s must be f32 or f16, got %s", op, y.Name(), y.DType())
	}
	ys := y.Shape()
	if len(ys) == 0 || ys[len(ys)-1] != s.N || y.Len() != s.M*s.N {
		return s, fmt.Errorf("%s: output %s %v must be [M=%d, N=%d] for input %s %v and weight %s %v",
			op, y.Name(), ys, s.M, s.N, x.Name(), xs, w.Name(), ws)
	}
	if bias != nil {
		if bias.DType() != runtime.F32 || bias.Len() != s.N {
			return s, fmt.Errorf("%s: bias %s must be f32 with N=%d elements, got %s %v", op, bias.Name(), s.N, bias.DType(), bias.Shape())
		}
	}
	// No global 32-bit limit: shaders index within one binding, and mmPlan
	// keeps every binding under maxStorageBufferRange (< 4 GiB).
	return s, nil
}

// mmChunk is one dispatch's share of the problem: rows [m0, m0+mc) of x and
// y, rows [n0, n0+nc) of W (columns of y).
type mmChunk struct{ m0, mc, n0, nc int }

// mmPlan splits the problem so that no binding exceeds the device's
// maxStorageBufferRange (or matmulBindingLimit). mAlign/nAlign round chunk
// sizes down to tile multiples when chunking; mMax caps a chunk's rows
// (workgroup-count limit).
func mmPlan(d *runtime.Device, s mmShape, xs, ys int, mAlign, nAlign, mMax int) ([]mmChunk, error) {
	limit := d.Info().MaxStorageBufferRange
	if matmulBindingLimit != 0 && matmulBindingLimit < limit {
		limit = matmulBindingLimit
	}
	al := mmAlign(d)
	usable := int64(limit) - int64(al)
	M, N, K := int64(s.M), int64(s.N), int64(s.K)
	nc := N
	if N*K*2 > int64(limit) || N*4 > int64(limit) {
		nc = min(usable/(K*2), usable/4)
		if nc > int64(nAlign) {
			nc -= nc % int64(nAlign)
		}
	}
	mc := M
	if M*K*int64(xs) > int64(limit) || M*N*int64(ys) > int64(limit) {
		mc = min(usable/(K*int64(xs)), (usable/int64(ys)-nc)/N+1)
		if mc > int64(mAlign) {
			mc -= mc % int64(mAlign)
		}
	}
	if mc > int64(mMax) {
		mc = int64(mMax)
	}
	if nc < 1 || mc < 1 {
		return nil, fmt.Errorf("matmul: %d×%d×%d cannot be split into bindings of at most %d bytes", s.M, s.N, s.K, limit)
	}
	var out []mmChunk
	for m0 := 0; m0 < s.M; m0 += int(mc) {
		for n0 := 0; n0 < s.N; n0 += int(nc) {
			out = append(out, mmChunk{m0, min(int(mc), s.M-m0), n0, min(int(nc), s.N-n0)})
		}
	}
	return out, nil
}

// mmAlign is the byte alignment of Slice offsets (the allocator's).
func mmAlign(d *runtime.Device) uint64 {
	return max(d.Info().MinStorageBufferAlign, 256)
}

// span binds elements [off, off+n) of t starting at an aligned element
// offset below off, and returns the remaining element offset.
func span(d *runtime.Device, t *runtime.Tensor, off, n int) (runtime.Arg, uint32) {
	if off == 0 && n == t.Len() {
		return t.Arg(), 0
	}
	ae := int(mmAlign(d)) / t.DType().Size()
	base := off - off%ae
	return t.Slice(base, off+n-base), uint32(off - base)
}

func dtName(dt runtime.DType) string {
	if dt == runtime.F16 {
		return "f16"
	}
	return "f32"
}

// mmRecord records the chunks with dispatch fn(chunk, push, args).
func mmRecord(r *runtime.Recorder, s mmShape, chunks []mmChunk, y, x, w, bias *runtime.Tensor,
	fn func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error) error {
	if w.DType() != runtime.F16 {
		return fmt.Errorf("matmul: weight %s is %s: this kernel reads f16 weights; dequantize it into an f16 scratch first (kernels.Dequantize)", w.Name(), w.DType())
	}
	d := r.Device()
	for _, c := range chunks {
		xa, xo := span(d, x, c.m0*s.K, c.mc*s.K)
		wa, wo := span(d, w, c.n0*s.K, c.nc*s.K)
		ya, yo := span(d, y, c.m0*s.N+c.n0, (c.mc-1)*s.N+c.nc)
		p := mmPush{M: uint32(c.mc), N: uint32(c.nc), K: uint32(s.K), Ldy: uint32(s.N), XOff: xo, WOff: wo, YOff: yo}
		ba := wa // bias binding when there is no bias: valid, read-only, never read
		if bias != nil {
			var bo uint32
			ba, bo = span(d, bias, c.n0, c.nc)
			p.BOff, p.HasBias = bo, 1
		}
		if err := fn(c, p, xa, wa, ba, ya); err != nil {
			return err
		}
	}
	return nil
}

// MatMul records y = x·Wᵀ (+ bias): x [..., K] f32 or f16 (M = x.Len()/K
// rows), w [N, K] f16, bias [N] f32 or nil, y [..., N] f32 or f16 with M·N
// elements; products are accumulated in f32. It uses the GEMV kernel for
// M ≤ GEMVMaxM, otherwise the first variant of the device's matmul table
// that takes x (variants.go: NV cooperative-matrix-2, then KHR cooperative
// matrices for f16 x, else the tiled kernel; MatMulKernel names the
// choice), and splits big problems over M (and N) so that no binding
// exceeds maxStorageBufferRange.
//
// A block-quantized w (runtime.Q8_0, Q4_K, …; see QuantTypes) is read as
// raw blocks and dequantized in registers by the quantized matrix-vector
// kernel, for M ≤ GEMVMaxM only: for more rows MatMul returns an error, and
// the caller dequantizes w into an f16 scratch first (Dequantize) and
// multiplies by that.
func MatMul(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul", y, x, w, bias)
	if err != nil {
		return err
	}
	if w.DType().IsQuantized() {
		if s.M > GEMVMaxM {
			return quantRowsErr("matmul", w, s.M)
		}
		return matVecQuant(r, s, y, x, w, bias)
	}
	if s.M <= GEMVMaxM {
		return matVec(r, s, y, x, w, bias, chooseGemv(r.Device()))
	}
	return matMulRows(r, s, y, x, w, bias)
}

// quantRowsErr is the error of a block-quantized w multiplied by more than
// GEMVMaxM rows, naming the fix.
func quantRowsErr(op string, w *runtime.Tensor, m int) error {
	return fmt.Errorf("%s: weight %s is %s and x has M=%d rows: the quantized kernels multiply at most GEMVMaxM=%d rows; dequantize the weight into an f16 scratch first (kernels.Dequantize) and multiply by that",
		op, w.Name(), w.DType(), m, GEMVMaxM)
}

// matMulRows records the product of more than GEMVMaxM rows (with s.Acc,
// the add into y) on the first variant of the device's matmul table.
func matMulRows(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
	ch, err := mmPick(r.Device(), s.M, s.N, s.K, x.DType())
	if err != nil {
		return err
	}
	switch ch.variant {
	case "cm2": // NV cooperative-matrix-2 (matmul_cm2.go)
		return matMulCM2(r, s, y, x, w, bias, ch.cm2)
	case "coopmat": // KHR cooperative matrices (matmul_cm.go)
		return matMulCM(r, s, y, x, w, bias, ch.cm)
	}
	return matMulTiled(r, s, y, x, w, bias, ch.tiled)
}

// MatMulAdd records y += x·Wᵀ (+ bias): MatMul's product with the
// residual add folded into the kernel's epilogue, in one dispatch per
// chunk where MatMul into a temporary and AddInPlace take two. Tensors are
// as for MatMul, with y f32 or f16 read as well as written; each output is
// y + (x·Wᵀ + bias) with the product and the bias summed in f32 first and
// y's old value added last, rounded once to y's type, so that for an f32 y
// the result equals MatMul into an f32 temporary followed by AddInPlace
// bit for bit, on every variant of the device's matmul table.
//
// For more than GEMVMaxM rows w must be f16: a block-quantized w is an
// error naming the fix (Dequantize into an f16 scratch first), as for
// MatMul. For at most GEMVMaxM rows MatMulAdd records MatVecAdd, which
// takes f16 x, f32 y and a w within one binding (MatVecFusable) only (an
// error otherwise), f16 or block-quantized; its sum order is the mat-vec
// kernel's, equal to MatMul followed by AddInPlace up to f32 rounding.
func MatMulAdd(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul add", y, x, w, bias)
	if err != nil {
		return err
	}
	if s.M == 0 {
		return nil
	}
	if s.M <= GEMVMaxM {
		return MatVecAdd(r, y, x, w, bias)
	}
	if w.DType().IsQuantized() {
		return quantRowsErr("matmul add", w, s.M)
	}
	s.Acc = true
	return matMulRows(r, s, y, x, w, bias)
}

// mmChoice is the kernel and tile MatMul takes for more than GEMVMaxM rows.
type mmChoice struct {
	variant string // a name of the "matmul" table
	cm2     cm2Tile
	cm      cmTile
	tiled   mmTile
}

func (c mmChoice) String() string {
	switch c.variant {
	case "cm2":
		return "cm2 " + c.cm2.String()
	case "coopmat":
		return "coopmat " + c.cm.String()
	}
	t := c.tiled
	return fmt.Sprintf("tiled %dx%dx%d/t%dx%d", t.BM, t.BN, t.BK, t.TM, t.TN)
}

// mmPick chooses the variant and tile for an M×N output over K with input
// dtype xdt: the first of the device's matmul table that takes xdt and has
// a tile for the device (cm2 and coopmat take f16 only; cm2 only from K =
// cm2MinK unless the Tuning names its tile; coopmat's tile is the Tuning's
// MatMulTile when set).
func mmPick(dev *runtime.Device, M, N, K int, xdt runtime.DType) (mmChoice, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return mmChoice{}, fmt.Errorf("matmul: %w", err)
	}
	cm2K := K >= cm2MinK || dev.Tuning().MatMulCM2Tile != (runtime.MatMulCM2Tile{})
	if xdt == runtime.F16 && cm2K && tb.has("matmul", "cm2") {
		if t, ok := pickCM2Tile(cm2TilesOf(dev), M, N); ok {
			return mmChoice{variant: "cm2", cm2: t}, nil
		}
	}
	if xdt == runtime.F16 && tb.has("matmul", "coopmat") {
		t := cmTile(dev.Tuning().MatMulTile)
		if t == (cmTile{}) {
			t = chooseCMTile(dev.Caps(), M, N)
		}
		return mmChoice{variant: "coopmat", cm: t}, nil
	}
	return mmChoice{variant: "tiled", tiled: chooseTile(dev.Caps(), M, N)}, nil
}

// MatMulKernel describes the kernel and tile MatMul uses on dev for an
// f16 weight, m rows of x of dtype xdt, n output columns and k inputs, for
// reports: "gemv" (m ≤ GEMVMaxM), "cm2 128x128x64/wg256/g8/u8",
// "coopmat 128x128x32/w64x64/g8/s1" or "tiled 128x128x32/t8x8".
func MatMulKernel(dev *runtime.Device, m, n, k int, xdt runtime.DType) string {
	if m <= GEMVMaxM {
		return "gemv"
	}
	ch, err := mmPick(dev, m, n, k, xdt)
	if err != nil {
		return "error: " + err.Error()
	}
	return ch.String()
}

// MatMulTiled is MatMul forced onto the tiled shared-memory kernel.
func MatMulTiled(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul", y, x, w, bias)
	if err != nil {
		return err
	}
	return matMulTiled(r, s, y, x, w, bias, chooseTile(r.Device().Caps(), s.M, s.N))
}

// MatVec is MatMul forced onto the matrix-vector kernel; any M works (rows of
// x are processed GEMVMaxM at a time) but it is meant for M ≤ GEMVMaxM. A
// block-quantized w takes the quantized matrix-vector kernel, which
// dequantizes the blocks in registers.
func MatVec(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matvec", y, x, w, bias)
	if err != nil {
		return err
	}
	if w.DType().IsQuantized() {
		return matVecQuant(r, s, y, x, w, bias)
	}
	return matVec(r, s, y, x, w, bias, chooseGemv(r.Device()))
}

func matMulTiled(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, t mmTile) error {
	if s.M == 0 {
		return nil
	}
	d := r.Device()
	if err := t.fits("matmul", d.Caps()); err != nil {
		return err
	}
	sh := "matmul_x" + dtName(x.DType()) + "_y" + dtName(y.DType())
	mc := d.Info().MaxWorkgroupCount
	chunks, err := mmPlan(d, s, x.DType().Size(), y.DType().Size(), int(t.BM), int(t.BN), int(mc[1])*int(t.BM))
	if err != nil {
		return err
	}
	return mmRecord(r, s, chunks, y, x, w, bias, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		k, err := t.kernel(d, sh, p, s.Acc)
		if err != nil {
			return err
		}
		g := [3]uint32{uint32(ceilDiv(c.nc, int(t.BN))), uint32(ceilDiv(c.mc, int(t.BM))), 1}
		if g[0] > mc[0] {
			return fmt.Errorf("matmul: N=%d needs %d workgroups, device limit %d", c.nc, g[0], mc[0])
		}
		return r.Dispatch(k, g, p, xa, wa, ba, ya)
	})
}

func matVec(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, cfg gemvCfg) error {
	if s.M == 0 {
		return nil
	}
	d := r.Device()
	if err := gemvFits("matvec", d, cfg, 1, gemvRows, 0); err != nil {
		return err
	}
	chunks, err := mmPlan(d, s, x.DType().Size(), y.DType().Size(), gemvRows, int(cfg.NR), gemvRows)
	if err != nil {
		return err
	}
	mcount := d.Info().MaxWorkgroupCount
	sh := "gemv_x" + dtName(x.DType()) + "_y" + dtName(y.DType())
	return mmRecord(r, s, chunks, y, x, w, bias, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		k, err := d.Kernel(runtime.KernelDesc{
			Shader: sh, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
			Spec: []uint32{cfg.WG, cfg.NR, b2u(p.vec()), b2u(cfg.Subgroup)},
		})
		if err != nil {
			return err
		}
		groups := ceilDiv(c.nc, int(cfg.NR))
		gx := min(groups, int(mcount[0]))
		gy := ceilDiv(groups, gx)
		if gy > int(mcount[1]) {
			return fmt.Errorf("matvec: N=%d needs %d workgroups, too many for the device", c.nc, groups)
		}
		return r.Dispatch(k, [3]uint32{uint32(gx), uint32(gy), 1}, p, xa, wa, ba, ya)
	})
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
