package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// SwiGLU folded into the gate/up matmul: one dispatch (per chunk) computes
// act = SiLU(x·Wgᵀ + bg) ⊙ (x·Wuᵀ + bu), each workgroup multiplying one x
// tile by the same output tile of both weights (the matmul_glu_* and
// matmul_cm1_glu_* variants of shaders/matmul.comp and matmul_cm1.comp).
// The gate and up products never reach memory.

// MatMulSwiGLUFusable reports whether MatMulSwiGLU takes a gate/up pair of
// weights of dtype wdt, [n, k] each, for m rows of x of dtype xdt on d:
// more than GEMVMaxM rows, f16 weights, and a device whose MatMul would
// not take the NV cooperative-matrix-2 kernel for one of the products
// (matmul_cm2 has no two-accumulator variant; there the separate
// dispatches keep cm2's speed). Callers fall back to MatMul twice and
// SwiGLU otherwise.
func MatMulSwiGLUFusable(d *runtime.Device, m, n, k int, xdt, wdt runtime.DType) bool {
	if m <= GEMVMaxM || n <= 0 || k <= 0 || wdt != runtime.F16 || (xdt != runtime.F16 && xdt != runtime.F32) {
		return false
	}
	ch, err := mmPick(d, m, n, k, xdt)
	return err == nil && ch.variant != "cm2"
}

// MatMulSwiGLU records act = SiLU(x·Wgᵀ + bg) ⊙ (x·Wuᵀ + bu), SiLU(g) =
// g/(1+e^-g): the gate and up projections of a SwiGLU MLP and the
// activation in one dispatch per chunk, where MatMul twice and SwiGLU take
// three and write and read the gate and up products. x [..., K] f32 or f16
// (M = x.Len()/K rows); wGate and wUp f16 [N, K] of equal shape; bGate and
// bUp f32 [N] or nil, independently; act [..., N] f32 or f16 with M·N
// elements.
//
// Both products are accumulated in f32 (in the order of MatMul's kernel
// of the same family), the biases added in f32, SiLU(g)·u computed in f32
// and rounded once to act's type. Against the exact value v of the
// formula on the same inputs each output is within 2⁻¹¹·|v| (the rounding
// to f16; 0 for f32) plus the f32 accumulation and exp error, about
// 1e-5·|u|·Σ|x·w| for K ≤ 300. It is not bit-equal to MatMul, MatMul and
// SwiGLU, whose gate and up are rounded to their (f16) tensors first: the
// fused result is the closer of the two to the exact value.
//
// The kernel is KHR cooperative matrices (f16 x, where the device's matmul
// table has them) or the tiled kernel, for any M ≥ 1; it has no mat-vec
// variant, and the NV cooperative-matrix-2 kernel has no fused variant, so
// on a device whose MatMul would take matmul_cm2 MatMulSwiGLU takes
// matmul_cm1 or the tiled kernel instead (MatMulSwiGLUFusable tells
// callers to keep the separate dispatches there). Block-quantized weights
// are an error naming the fix (dequantize into f16 first). Problems beyond
// one storage-buffer binding are split over M and N as for MatMul. The
// tile is chosen from the shape (chooseCMGLUTile, chooseGLUTile);
// Tuning.MatMulTile, a plain matmul_cm1 tile, does not apply.
func MatMulSwiGLU(r *runtime.Recorder, act, x, wGate, wUp, bGate, bUp *runtime.Tensor) error {
	const op = "matmul swiglu"
	s, err := mmCheck(op, act, x, wGate, bGate)
	if err != nil {
		return err
	}
	if wUp == nil {
		return fmt.Errorf("%s: nil up weight", op)
	}
	if su, err := mmCheck(op, act, x, wUp, bUp); err != nil {
		return err
	} else if su.N != s.N || su.K != s.K {
		return fmt.Errorf("%s: up weight %s %v and gate weight %s %v must have equal shapes", op, wUp.Name(), wUp.Shape(), wGate.Name(), wGate.Shape())
	}
	for _, w := range []*runtime.Tensor{wGate, wUp} {
		if w.DType() != runtime.F16 {
			return fmt.Errorf("%s: weight %s is %s: the fused kernels read f16 weights; dequantize it into an f16 scratch first (kernels.Dequantize), or record MatMul twice and SwiGLU",
				op, w.Name(), w.DType())
		}
	}
	if s.M == 0 {
		return nil
	}
	d := r.Device()
	tb, err := tablesOf(d)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if x.DType() == runtime.F16 && tb.has("matmul", "coopmat") {
		return matMulCMGLU(r, s, act, x, wGate, wUp, bGate, bUp, chooseCMGLUTile(d.Caps(), s.M, s.N))
	}
	return matMulTiledGLU(r, s, act, x, wGate, wUp, bGate, bUp, chooseGLUTile(d.Caps(), s.M, s.N))
}

// chooseGLUTile is the tiled kernel's tile for the fused gate/up pair: the
// plain tile chooseTile picks for 2N columns with BN (and, on the large
// tile, TN) halved, so that a workgroup stages as many weight rows (BN of
// each weight) and as much shared memory as the plain tile, and the large
// tile keeps as many accumulators per invocation (TM·TN, half of them for
// each product).
func chooseGLUTile(caps runtime.Caps, M, N int) mmTile {
	t := chooseTile(caps, M, 2*N)
	t.BN /= 2
	if t.TN >= 8 {
		t.TN /= 2 // 128×128 t8×8 → 128×64 t8×4: 256 invocations
	} // 64×64 t4×4 → 64×32 t4×4: 128 invocations
	return t
}

// gluShared is the tiled GLU kernel's shared memory: the x slab and the
// slabs of both weights, f32.
func gluShared(t mmTile) uint32 { return t.BK * (t.BM + 2*t.BN) * 4 }

// gluPush is mmPush followed by the up weight's and bias's element offsets
// (shaders/matmul.comp and matmul_cm1.comp with GLU).
type gluPush struct {
	Base         mmPush
	WuOff, BuOff uint32
}

// gluRecord records the chunks of a fused gate/up problem: mmRecord's
// bindings for x, the gate weight and bias and act, with the up weight's
// and bias's spans of the same chunk, and pc.hasBias bit 0 for the gate
// bias, bit 1 for the up bias.
func gluRecord(r *runtime.Recorder, s mmShape, chunks []mmChunk, act, x, wg, wu, bg, bu *runtime.Tensor,
	fn func(c mmChunk, p gluPush, args ...any) error) error {
	d := r.Device()
	return mmRecord(r, s, chunks, act, x, wg, bg, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		q := gluPush{Base: p}
		ua, uo := span(d, wu, c.n0*s.K, c.nc*s.K)
		q.WuOff = uo
		bua := ua // no up bias: valid, read-only, never read
		if bu != nil {
			var bo uint32
			bua, bo = span(d, bu, c.n0, c.nc)
			q.BuOff = bo
			q.Base.HasBias |= 2
		}
		return fn(c, q, xa, wa, ba, ya, ua, bua)
	})
}

func matMulTiledGLU(r *runtime.Recorder, s mmShape, act, x, wg, wu, bg, bu *runtime.Tensor, t mmTile) error {
	d := r.Device()
	if !t.valid() {
		return fmt.Errorf("matmul swiglu: invalid tile %+v", t)
	}
	if sh := gluShared(t); sh > d.Caps().MaxSharedMemory {
		return fmt.Errorf("matmul swiglu: tile %+v needs %d bytes of shared memory, device has %d", t, sh, d.Caps().MaxSharedMemory)
	}
	sh := "matmul_glu_x" + dtName(x.DType()) + "_y" + dtName(act.DType())
	mc := d.Info().MaxWorkgroupCount
	chunks, err := mmPlan(d, s, x.DType().Size(), act.DType().Size(), int(t.BM), int(t.BN), int(mc[1])*int(t.BM))
	if err != nil {
		return err
	}
	return gluRecord(r, s, chunks, act, x, wg, wu, bg, bu, func(c mmChunk, p gluPush, args ...any) error {
		vec := s.K%8 == 0 && p.Base.XOff%8 == 0 && p.Base.WOff%8 == 0 && p.WuOff%8 == 0
		k, err := d.Kernel(runtime.KernelDesc{
			Shader: sh, Bindings: 6, ReadOnly: 0b110111, PushSize: 44,
			Spec: []uint32{t.wg(), t.BM, t.BN, t.BK, t.TM, t.TN, b2u(vec), 0},
		})
		if err != nil {
			return err
		}
		g := [3]uint32{uint32(ceilDiv(c.nc, int(t.BN))), uint32(ceilDiv(c.mc, int(t.BM))), 1}
		if g[0] > mc[0] {
			return fmt.Errorf("matmul swiglu: N=%d needs %d workgroups, device limit %d", c.nc, g[0], mc[0])
		}
		return r.Dispatch(k, g, p, args...)
	})
}

// chooseCMGLUTile is matmul_cm1's tile for the fused gate/up pair: the
// plain tile chooseCMTile picks for 2N columns with BN and WN halved, so
// that a subgroup keeps as many accumulator fragments (half of them for
// each product) and a stage as many weight rows as the plain tile; the
// epilogue scratch doubles (2 KiB per subgroup). A plain tile whose WN/2
// is not a multiple of 16 keeps WN and halves nothing but BN's subgroups.
func chooseCMGLUTile(caps runtime.Caps, M, N int) cmTile {
	t := chooseCMTile(caps, M, 2*N)
	t.BN /= 2
	if t.WN >= 32 {
		t.WN /= 2
	}
	for cmGLUShared(t) > caps.MaxSharedMemory && t.BK > 16 {
		t.BK /= 2
	}
	return t
}

// cmGLUShared is matmul_cm1's shared memory with GLU: stages of BM + 2·BN
// f16 rows of BK+8 halves, and a 2 KiB f32 scratch per subgroup.
func cmGLUShared(t cmTile) uint32 {
	return t.stages()*(t.BM+2*t.BN)*(t.BK/4+2)*8 + t.subgroups()*2048
}

func matMulCMGLU(r *runtime.Recorder, s mmShape, act, x, wg, wu, bg, bu *runtime.Tensor, t cmTile) error {
	d := r.Device()
	caps := d.Caps()
	if !caps.CoopMat {
		return fmt.Errorf("matmul swiglu: %w: the cooperative-matrix kernel needs VK_KHR_cooperative_matrix with f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT is set)", runtime.ErrMissingFeature)
	}
	if x.DType() != runtime.F16 {
		return fmt.Errorf("matmul swiglu: the cooperative-matrix kernel needs an f16 input, %s is %s", x.Name(), x.DType())
	}
	sg := caps.SubgroupSize
	if !t.valid(sg) {
		return fmt.Errorf("matmul swiglu: invalid cooperative-matrix tile %s for subgroup size %d", t, sg)
	}
	if sh := cmGLUShared(t); sh > caps.MaxSharedMemory {
		return fmt.Errorf("matmul swiglu: cooperative-matrix tile %s needs %d bytes of shared memory, device has %d", t, sh, caps.MaxSharedMemory)
	}
	sh := "matmul_cm1_glu_y" + dtName(act.DType())
	mc := d.Info().MaxWorkgroupCount
	chunks, err := mmPlan(d, s, 2, act.DType().Size(), int(t.BM), int(t.BN), 1<<30)
	if err != nil {
		return err
	}
	return gluRecord(r, s, chunks, act, x, wg, wu, bg, bu, func(c mmChunk, p gluPush, args ...any) error {
		vec := s.K%8 == 0 && p.Base.XOff%8 == 0 && p.Base.WOff%8 == 0 && p.WuOff%8 == 0
		k, err := d.Kernel(runtime.KernelDesc{
			Shader: sh, Bindings: 6, ReadOnly: 0b110111, PushSize: 44,
			Spec:          []uint32{t.subgroups() * sg, t.BM, t.BN, t.BK, t.WM, t.WN, b2u(vec), t.GM, t.stages(), 0},
			SubgroupSize:  sg,
			FullSubgroups: true,
		})
		if err != nil {
			return err
		}
		g, err := tileGrid(c, int(t.BM), int(t.BN), mc)
		if err != nil {
			return err
		}
		return r.Dispatch(k, g, p, args...)
	})
}
