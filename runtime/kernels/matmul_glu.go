package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// The MLP's gate and up projections and SwiGLU in one matmul (MatMulSwiGLU):
// the GLU mode of the tiled and cooperative-matrix kernels (shaders
// matmul.comp and matmul_cm1.comp with GLU; variants "matmul glu").

// MatMulSwiGLU records act = SiLU(x·Wgᵀ) ⊙ (x·Wuᵀ), SiLU(g) = g/(1+e^-g),
// in one matmul dispatch (per chunk of rows) whose epilogue applies SwiGLU:
// the gate and up products never go through memory.
//
//   - x: [..., K] f16, M = x.Len()/K rows.
//   - wgu: [2F, K] f16, the gate projection Wg in rows [0, F) stacked over
//     the up projection Wu in rows [F, 2F) (the engine loads them that way
//     and takes Wg and Wu as views for decode). Any F ≥ 1 works.
//   - act: [..., F] f16 with M·F elements.
//
// Each output rounds the f32 sums g = x·Wgᵀ and u = x·Wuᵀ to f16 first
// (ties to even, in integers: shaders/glu.glsl), as MatMul's f16 outputs
// are, then computes g/(1+e^-g)·u in f32 as SwiGLU does and rounds once to
// f16: the result equals MatMul into f16 gate and up followed by SwiGLU when
// MatMul takes the same kernel (the KHR cooperative-matrix or the tiled
// one), bit for bit where the driver compiles SwiGLU's expression alike in
// both (lavapipe does). Where MatMul takes matmul_cm2 (NVIDIA, K ≥
// cm2MinK) the sums' order differs.
//
// There is no bias (the MLP has none) and no quantized weight: a
// block-quantized wgu is an error naming the fix (Dequantize into an f16
// scratch first). The variant is the first of the device's "matmul glu"
// table (variants.go): the KHR cooperative-matrix kernel where the device
// has KHR cooperative matrices, including NVIDIA's with cooperative
// matrix 2 (there is no GLU mode of matmul_cm2; for the K < cm2MinK of
// small models plain MatMul takes the KHR kernel there as well), else the
// tiled kernel. Any M ≥ 0 works, but for M ≤ GEMVMaxM the mat-vec kernels
// on the views of Wg and Wu followed by SwiGLU are the faster choice (the
// engine takes them for decode). wgu must fit one storage-buffer binding
// (maxStorageBufferRange); x and act are split into row chunks when they do
// not.
func MatMulSwiGLU(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error {
	s, err := gluCheck(act, x, wgu)
	if err != nil {
		return err
	}
	ch, err := gluPick(r.Device(), s.M, s.N, s.K)
	if err != nil {
		return err
	}
	if ch.variant == "coopmat" {
		return matMulGLUCM(r, s, act, x, wgu, ch.cm)
	}
	return matMulGLUTiled(r, s, act, x, wgu, ch.tiled)
}

// MatMulSwiGLUPreferred reports whether MatMulSwiGLU should replace MatMul
// of the gate and up projections and SwiGLU for m rows of x, f features and
// k inputs on dev: whether it takes the same kind of kernel as MatMul would
// for each projection (the KHR cooperative-matrix one, or the tiled one).
// Where MatMul takes matmul_cm2 (NVIDIA with cooperative matrix 2, K ≥
// cm2MinK), which has no GLU mode, the fused path would give up the faster
// kernel of those two products for the pass it saves; callers keep the
// separate products there.
func MatMulSwiGLUPreferred(dev *runtime.Device, m, f, k int) bool {
	g, err := gluPick(dev, m, f, k)
	if err != nil {
		return false
	}
	p, err := mmPick(dev, m, f, k, runtime.F16)
	return err == nil && p.variant == g.variant
}

// MatMulSwiGLUKernel describes the kernel and tile MatMulSwiGLU uses on dev
// for m rows of x, f features and k inputs, for reports and tests:
// "coopmat 64x64x32/w32x32/g8/s2" or "tiled 64x64x32/t4x4" (mmChoice's
// form), or "error: …".
func MatMulSwiGLUKernel(dev *runtime.Device, m, f, k int) string {
	ch, err := gluPick(dev, m, f, k)
	if err != nil {
		return "error: " + err.Error()
	}
	return ch.String()
}

// gluCheck validates MatMulSwiGLU's tensors; the shape's N is F.
func gluCheck(act, x, wgu *runtime.Tensor) (mmShape, error) {
	const op = "matmul swiglu"
	var s mmShape
	if act == nil || x == nil || wgu == nil {
		return s, fmt.Errorf("%s: nil tensor", op)
	}
	ws := wgu.Shape()
	if wgu.DType().IsQuantized() {
		return s, fmt.Errorf("%s: weight %s is %s: this kernel reads f16 weights; dequantize it into an f16 scratch first (kernels.Dequantize)", op, wgu.Name(), wgu.DType())
	}
	if wgu.DType() != runtime.F16 || len(ws) != 2 {
		return s, fmt.Errorf("%s: stacked gate|up weight %s must be a 2-D f16 [2F, K] tensor, got %s %v", op, wgu.Name(), wgu.DType(), ws)
	}
	if ws[0] <= 0 || ws[0]%2 != 0 || ws[1] <= 0 {
		return s, fmt.Errorf("%s: stacked gate|up weight %s has %v rows×columns: want 2F rows (F ≥ 1 gate rows over F up rows) and K ≥ 1 columns", op, wgu.Name(), ws)
	}
	s.N, s.K = ws[0]/2, ws[1]
	if x.DType() != runtime.F16 {
		return s, fmt.Errorf("%s: input %s must be f16, got %s", op, x.Name(), x.DType())
	}
	xs := x.Shape()
	if len(xs) == 0 || xs[len(xs)-1] != s.K {
		return s, fmt.Errorf("%s: input %s %v must end in K=%d (weight %s %v)", op, x.Name(), xs, s.K, wgu.Name(), ws)
	}
	s.M = x.Len() / s.K
	if act.DType() != runtime.F16 {
		return s, fmt.Errorf("%s: output %s must be f16, got %s", op, act.Name(), act.DType())
	}
	as := act.Shape()
	if len(as) == 0 || as[len(as)-1] != s.N || act.Len() != s.M*s.N {
		return s, fmt.Errorf("%s: output %s %v must be [M=%d, F=%d] for input %s %v and stacked weight %s %v (F = half its rows)",
			op, act.Name(), as, s.M, s.N, x.Name(), xs, wgu.Name(), ws)
	}
	return s, nil
}

// gluPick chooses MatMulSwiGLU's variant and tile for m rows, f features
// and k inputs: the tile plain MatMul would choose for the m × 2f product
// of the same variant, the cooperative-matrix one only with subgroup
// tiles WN a multiple of 32 (gate and up fragments in pairs): the Tuning's
// MatMulTile when it has that, else chooseCMTile's (all of which do).
func gluPick(dev *runtime.Device, m, f, k int) (mmChoice, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return mmChoice{}, fmt.Errorf("matmul swiglu: %w", err)
	}
	if tb.has("matmul glu", "coopmat") {
		t := cmTile(dev.Tuning().MatMulTile)
		if t == (cmTile{}) || t.WN%32 != 0 {
			t = chooseCMTile(dev.Caps(), m, 2*f)
		}
		return mmChoice{variant: "coopmat", cm: t}, nil
	}
	return mmChoice{variant: "tiled", tiled: chooseTile(dev.Caps(), m, 2*f)}, nil
}

// gluPlan splits MatMulSwiGLU's rows into chunks whose x and act fit a
// binding (mMax caps a chunk's rows); the stacked weight must fit one.
func gluPlan(d *runtime.Device, s mmShape, mAlign, mMax int) ([]mmChunk, error) {
	limit := d.Info().MaxStorageBufferRange
	if matmulBindingLimit != 0 && matmulBindingLimit < limit {
		limit = matmulBindingLimit
	}
	if w := uint64(2*s.N) * uint64(s.K) * 2; w > limit {
		return nil, fmt.Errorf("matmul swiglu: stacked gate|up weight of %d×%d f16 (%d bytes) exceeds one storage-buffer binding (%d bytes); use MatMul for gate and up and SwiGLU",
			2*s.N, s.K, w, limit)
	}
	// W of [N, K] fits when [2N, K] does: mmPlan splits rows only.
	return mmPlan(d, s, 2, 2, mAlign, s.N, mMax)
}

// gluRecord records the chunks of MatMulSwiGLU with dispatch fn, binding the
// whole stacked weight for each.
func gluRecord(r *runtime.Recorder, s mmShape, chunks []mmChunk, act, x, wgu *runtime.Tensor,
	fn func(c mmChunk, p mmPush, xa, wa, ya runtime.Arg) error) error {
	d := r.Device()
	wa, wo := span(d, wgu, 0, wgu.Len())
	for _, c := range chunks {
		if c.n0 != 0 || c.nc != s.N {
			return fmt.Errorf("matmul swiglu: internal error: chunk splits the %d features", s.N)
		}
		xa, xo := span(d, x, c.m0*s.K, c.mc*s.K)
		ya, yo := span(d, act, c.m0*s.N, c.mc*s.N)
		p := mmPush{M: uint32(c.mc), N: uint32(s.N), K: uint32(s.K), Ldy: uint32(s.N), XOff: xo, WOff: wo, YOff: yo}
		if err := fn(c, p, xa, wa, ya); err != nil {
			return err
		}
	}
	return nil
}

// matMulGLUTiled records MatMulSwiGLU on the tiled kernel with tile t.
func matMulGLUTiled(r *runtime.Recorder, s mmShape, act, x, wgu *runtime.Tensor, t mmTile) error {
	if s.M == 0 {
		return nil
	}
	d := r.Device()
	if err := t.fits("matmul swiglu", d.Caps()); err != nil {
		return err
	}
	mc := d.Info().MaxWorkgroupCount
	chunks, err := gluPlan(d, s, int(t.BM), int(mc[1])*int(t.BM))
	if err != nil {
		return err
	}
	return gluRecord(r, s, chunks, act, x, wgu, func(c mmChunk, p mmPush, xa, wa, ya runtime.Arg) error {
		k, err := t.kernel(d, "matmul_glu_xf16_yf16", p, false)
		if err != nil {
			return err
		}
		// BN/2 features a workgroup.
		g := [3]uint32{uint32(ceilDiv(s.N, int(t.BN/2))), uint32(ceilDiv(c.mc, int(t.BM))), 1}
		if g[0] > mc[0] {
			return fmt.Errorf("matmul swiglu: F=%d needs %d workgroups, device limit %d", s.N, g[0], mc[0])
		}
		return r.Dispatch(k, g, p, xa, wa, wa, ya)
	})
}

// matMulGLUCM records MatMulSwiGLU on the cooperative-matrix kernel with
// tile t, whose subgroup tiles WN must be a multiple of 32.
func matMulGLUCM(r *runtime.Recorder, s mmShape, act, x, wgu *runtime.Tensor, t cmTile) error {
	d := r.Device()
	caps := d.Caps()
	if !caps.CoopMat {
		return fmt.Errorf("matmul swiglu: %w: the cooperative-matrix kernel needs VK_KHR_cooperative_matrix with f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT is set)", runtime.ErrMissingFeature)
	}
	if s.M == 0 {
		return nil
	}
	if err := t.fits("matmul swiglu", caps); err != nil {
		return err
	}
	if t.WN%32 != 0 {
		return fmt.Errorf("matmul swiglu: cooperative-matrix tile %s has WN not a multiple of 32 (gate and up fragments pair up)", t)
	}
	mc := d.Info().MaxWorkgroupCount
	chunks, err := gluPlan(d, s, int(t.BM), 1<<30)
	if err != nil {
		return err
	}
	return gluRecord(r, s, chunks, act, x, wgu, func(c mmChunk, p mmPush, xa, wa, ya runtime.Arg) error {
		k, err := t.kernel(d, "matmul_cm1_glu_yf16", p, false)
		if err != nil {
			return err
		}
		// BN/2 features a workgroup.
		g, err := tileGrid(c, int(t.BM), int(t.BN/2), mc)
		if err != nil {
			return err
		}
		return r.Dispatch(k, g, p, xa, wa, wa, ya)
	})
}
