package kernels

import (
	"fmt"
	"math"
	"slices"

	"github.com/shareprefill/shareprefill/runtime"
)

// The decode step's kernels: fewer dispatches for the few rows of a decode
// step (M ≤ GEMVMaxM), and kernels that read the step's position from a
// buffer when they run, so that a recorded step can be submitted again for
// the next token (runtime.Replay). Each stands for a sequence of the general
// kernels, which prefill keeps using.

// MatVecOut is one product of a fused mat-vec: Y = xn·Wᵀ (+ Bias).
type MatVecOut struct {
	Y, W, Bias *runtime.Tensor
}

// MatVecFusable reports whether the fused mat-vecs (NormMatVec,
// NormMatVecSwiGLU, MatVecAdd) take these weights: 2-D matrices that each
// fit one storage-buffer binding, f16 (shaders/gemv_fused.comp) or of a
// block-quantized type whose mat-vec on d is the wide kernel (Q8_0, Q4_K,
// Q5_K, Q6_K: shaders/gemv_qw.comp's fused variants). Other weights
// (Q4_0, Q5_0, an LM head beyond maxStorageBufferRange, a device whose
// Tuning.GemvQ asks for the reference kernel) take RMSNorm, MatMul, SwiGLU
// and AddInPlace, a dispatch each.
func MatVecFusable(d *runtime.Device, ws ...*runtime.Tensor) bool {
	limit := bindingLimit(d)
	for _, w := range ws {
		if w == nil || len(w.Shape()) != 2 || uint64(w.Len()) > opMaxU32 {
			return false
		}
		switch dt := w.DType(); {
		case dt == runtime.F16:
			if uint64(w.Len())*2 > limit {
				return false
			}
		case slices.Contains(quantWideTypes, dt):
			if w.Bytes() > limit || !slices.Contains(QuantTypes(d), dt) {
				return false
			}
			if c, err := chooseGemvQ(d, dt); err != nil || c.Variant != gemvQWide {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// fusedPush is the push-constant block of shaders/gemv_fused.comp.
type fusedPush struct {
	M, K, N0, N1, N2, G0, G1, HasBias uint32
	Eps                               float32
}

// fusedCheck validates x (rows of K) and the outputs against op's rules and
// returns the rows M and K.
func fusedCheck(op string, d *runtime.Device, x *runtime.Tensor, xdt runtime.DType, outs []MatVecOut, ydt runtime.DType) (m, k int, err error) {
	if x == nil {
		return 0, 0, fmt.Errorf("%s: nil input", op)
	}
	if x.DType() != xdt {
		return 0, 0, fmt.Errorf("%s: input %s is %s, want %s", op, x.Name(), x.DType(), xdt)
	}
	for i, o := range outs {
		s, err := mmCheck(op, o.Y, x, o.W, o.Bias)
		if err != nil {
			return 0, 0, err
		}
		if o.Y.DType() != ydt {
			return 0, 0, fmt.Errorf("%s: output %s is %s, want %s", op, o.Y.Name(), o.Y.DType(), ydt)
		}
		if !MatVecFusable(d, o.W) {
			return 0, 0, fmt.Errorf("%s: weight %s (%s %v) is not a 2-D f16 or wide-kernel quantized matrix within one binding (MatVecFusable)", op, o.W.Name(), o.W.DType(), o.W.Shape())
		}
		if i == 0 {
			m, k = s.M, s.K
		}
	}
	if m < 1 || m > GEMVMaxM {
		return 0, 0, fmt.Errorf("%s: %d rows of %s; the fused mat-vecs take 1 to %d", op, m, x.Name(), GEMVMaxM)
	}
	if uint64(x.Len()) > opMaxU32 {
		return 0, 0, fmt.Errorf("%s: input %s beyond 32-bit indexing", op, x.Name())
	}
	return m, k, nil
}

func checkNorm(op string, norm *runtime.Tensor, k int, eps float32) error {
	if norm == nil || norm.DType() != runtime.F32 || norm.Len() != k {
		return fmt.Errorf("%s: norm weight must be f32 with K=%d elements", op, k)
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("%s: eps %v must be finite and >= 0", op, eps)
	}
	return nil
}

// fusedRope is gemv_norm_rope's epilogue: RoPE at the position in pos and
// the KV append (outs[1].Y and outs[2].Y are the caches).
type fusedRope struct {
	invFreq, pos    *runtime.Tensor
	half, cacheRows int
}

// fusedGrid returns the push constants of a fused mat-vec over outs (the
// products' row counts, the workgroup boundaries G0, G1 between them, the
// bias flags) and its grid: ⌈N_i/rows⌉ workgroups per product (none for
// the second with glu, whose workgroups own a gate and an up row each),
// folded into x and y.
func fusedGrid(d *runtime.Device, shader string, outs []MatVecOut, m, k int, eps float32, rows int, glu bool) (fusedPush, [3]uint32, error) {
	p := fusedPush{M: uint32(m), K: uint32(k), Eps: eps}
	ns := []*uint32{&p.N0, &p.N1, &p.N2}
	var groups [3]int
	for i, o := range outs {
		n := o.W.Shape()[0]
		*ns[i] = uint32(n)
		groups[i] = ceilDiv(n, rows)
		if o.Bias != nil {
			p.HasBias |= 1 << i
		}
	}
	if glu {
		groups[1] = 0
	}
	p.G0 = uint32(groups[0])
	p.G1 = uint32(groups[0] + groups[1])
	total := groups[0] + groups[1] + groups[2]
	mc := d.Info().MaxWorkgroupCount
	gx := min(total, int(mc[0]))
	gy := ceilDiv(total, gx)
	if gy > int(mc[1]) {
		return p, [3]uint32{}, fmt.Errorf("%s: %d workgroups, too many for the device", shader, total)
	}
	return p, [3]uint32{uint32(gx), uint32(gy), 1}, nil
}

// fusedArgs returns the 11 bindings of the fused mat-vecs (gemv_fused.comp,
// gemv_qw.comp): x, norm, W0..W2, Bias0..Bias2, Y0..Y2; the unused slots
// repeat the first weight or output (never read or written).
func fusedArgs(x, norm *runtime.Tensor, outs []MatVecOut) []any {
	w0, y0 := outs[0].W, outs[0].Y
	args := []any{x, w0, w0, w0, w0, w0, w0, w0, y0, y0, y0}
	if norm != nil {
		args[1] = norm
	}
	for i, o := range outs {
		args[2+i] = o.W
		if o.Bias != nil {
			args[5+i] = o.Bias
		}
		args[8+i] = o.Y
	}
	return args
}

// fusedDispatch records gemv_fused's variant shader over outs (groups per
// output unless glu: one set of groups for gate and up together; with rope,
// gemv_norm_rope's epilogue).
func fusedDispatch(r *runtime.Recorder, shader string, x, norm *runtime.Tensor, eps float32, outs []MatVecOut, m, k int, glu bool, rope *fusedRope) error {
	d := r.Device()
	cfg := chooseGemv(d)
	if rope != nil && cfg.NR%2 != 0 {
		cfg.NR++ // a workgroup owns whole rotation pairs
	}
	p, groupsXY, err := fusedGrid(d, shader, outs, m, k, eps, int(cfg.NR), glu)
	if err != nil {
		return err
	}
	vec := k%8 == 0
	nw := 1 // weight matrices a workgroup reads
	if glu {
		nw = 2
	}
	if err := gemvFits(shader, d, cfg, nw, m, 0); err != nil {
		return err
	}
	// A NORM variant keeps the normalised rows in shared memory when they
	// fit beside the reduction's buffer (up to 32 KiB: M·K ≤ 16384).
	xs, xsh := uint32(1), false
	if norm != nil && vec {
		red := uint32(nw*m) * cfg.NR * cfg.WG * 4
		if b := uint32(m * k * 2); b <= 32<<10 && red+b+512 <= d.Caps().MaxSharedMemory {
			xs, xsh = uint32(m*k/8), true
		}
	}
	desc := runtime.KernelDesc{
		Shader: shader, Bindings: 11, ReadOnly: 0xff, PushSize: 36,
		Spec: []uint32{cfg.WG, cfg.NR, b2u(vec), b2u(cfg.Subgroup), xs, b2u(xsh), uint32(m)},
	}
	if rope != nil {
		desc.Bindings, desc.ReadOnly, desc.PushSize = 13, 0xff|0b11<<11, 44
	}
	kern, err := d.Kernel(desc)
	if err != nil {
		return err
	}
	args := fusedArgs(x, norm, outs)
	if rope != nil {
		args = append(args, rope.invFreq, rope.pos)
		return r.Dispatch(kern, groupsXY, struct {
			fusedPush
			Half, CacheRows uint32
		}{p, uint32(rope.half), uint32(rope.cacheRows)}, args...)
	}
	return r.Dispatch(kern, groupsXY, p, args...)
}

// NormMatVec records, in one dispatch per weight type, for the M ≤ GEMVMaxM
// rows of x (f32 [M, K], e.g. the residual stream):
//
//	xn = RMSNorm(x)·norm                          (rounded to f16, not stored)
//	outs[i].Y = xn·outs[i].Wᵀ (+ outs[i].Bias)    for 1 ≤ len(outs) ≤ 3
//
// It stands for RMSNorm into an f16 temporary followed by a MatMul per
// output (e.g. the q, k and v projections of a decode step). Each workgroup
// normalises the rows itself (they are short: K values). norm is f32 [K];
// W_i [N_i, K] f16 or block-quantized (MatVecFusable); Bias_i f32 [N_i] or
// nil; the Y_i [M, N_i] are all f16 or all f32. Products are accumulated in
// f32. Weights of one type share a dispatch; outputs whose weights differ
// in type (Q4_K q and k with a Q6_K v) take a dispatch per type, behind
// the same barrier.
func NormMatVec(r *runtime.Recorder, x, norm *runtime.Tensor, eps float32, outs ...MatVecOut) error {
	const op = "norm matvec"
	if len(outs) < 1 || len(outs) > 3 {
		return fmt.Errorf("%s: %d outputs, want 1 to 3", op, len(outs))
	}
	if outs[0].Y == nil {
		return fmt.Errorf("%s: nil output", op)
	}
	ydt := outs[0].Y.DType()
	m, k, err := fusedCheck(op, r.Device(), x, runtime.F32, outs, ydt)
	if err != nil {
		return err
	}
	if err := checkNorm(op, norm, k, eps); err != nil {
		return err
	}
	// One dispatch per weight type, in the order of first appearance:
	// they read x and write separate outputs, so no barrier parts them.
	for _, g := range groupByType(outs) {
		var err error
		if dt := g[0].W.DType(); dt == runtime.F16 {
			err = fusedDispatch(r, "gemv_norm_"+opSuffix(ydt), x, norm, eps, g, m, k, false, nil)
		} else {
			err = fusedQDispatch(r, "gemv_qw_norm_"+dt.String()+"_"+opSuffix(ydt), x, norm, eps, g, m, k, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// NormMatVecSwiGLU records, in one dispatch, the first half of a gated MLP
// for the M ≤ GEMVMaxM rows of x (f32 [M, K]):
//
//	xn = RMSNorm(x)·norm,  act = SiLU(xn·Wgᵀ) ⊙ (xn·Wuᵀ)
//
// It stands for RMSNorm into an f16 temporary, two MatMuls and SwiGLU; the
// gate and up values keep f32 precision until act (f16 [M, F]) is stored
// (SwiGLU reads them rounded to f16). wGate and wUp
// are [F, K] of one type, f16 or block-quantized (MatVecFusable); a gate and
// an up of different types take NormMatVec and SwiGLU instead. norm is f32
// [K].
func NormMatVecSwiGLU(r *runtime.Recorder, act, x, norm *runtime.Tensor, eps float32, wGate, wUp *runtime.Tensor) error {
	const op = "norm matvec swiglu"
	outs := []MatVecOut{{Y: act, W: wGate}, {Y: act, W: wUp}}
	m, k, err := fusedCheck(op, r.Device(), x, runtime.F32, outs, runtime.F16)
	if err != nil {
		return err
	}
	if err := checkNorm(op, norm, k, eps); err != nil {
		return err
	}
	if !slices.Equal(wGate.Shape(), wUp.Shape()) {
		return fmt.Errorf("%s: gate %s %v and up %s %v differ in shape", op, wGate.Name(), wGate.Shape(), wUp.Name(), wUp.Shape())
	}
	if wGate.DType() != wUp.DType() {
		return fmt.Errorf("%s: gate %s is %s and up %s %s: one dispatch takes one weight type (NormMatVec both, then SwiGLU)",
			op, wGate.Name(), wGate.DType(), wUp.Name(), wUp.DType())
	}
	if dt := wGate.DType(); dt != runtime.F16 {
		return fusedQDispatch(r, "gemv_qw_glu_"+dt.String(), x, norm, eps, outs, m, k, true)
	}
	return fusedDispatch(r, "gemv_norm_glu", x, norm, eps, outs, m, k, true, nil)
}

// NormMatVecRopeKV records, in one dispatch, the attention inputs of a
// decode step for the M ≤ GEMVMaxM rows of x (f32 [M, K]) at the position
// the GPU reads from pos (i32, element 0: P) when the commands run:
//
//	xn = RMSNorm(x)·norm                          (rounded to f16, not stored)
//	q = RoPE(xn·wq.Wᵀ (+ wq.Bias))                into wq.Y, f16 [M, heads·D]
//	K cache row P+r = RoPE(xn·wk.Wᵀ (+ wk.Bias))  (row r of the products)
//	V cache row P+r = xn·wv.Wᵀ (+ wv.Bias)
//
// It stands for NormMatVec into q and f16 temporaries k and v followed by
// RopeKV (pos0 0), and its results equal theirs bit for bit: the products
// are rounded to f16 before the rotation. wk.Y and wv.Y must be nil (k and v
// go to the caches only). The weights are f16 [heads·D, K] and [kvHeads·D, K]
// (MatVecFusable), biases f32 or nil; invFreq is f32 [D/2], as for Rope;
// the caches f16 [rows, kvHeads, D]. Rows past the caches are skipped: the
// caller keeps the positions in range.
func NormMatVecRopeKV(r *runtime.Recorder, x, norm *runtime.Tensor, eps float32, wq, wk, wv MatVecOut, invFreq, kCache, vCache, pos *runtime.Tensor, heads, kvHeads int) error {
	const op = "norm matvec rope kv"
	if wk.Y != nil || wv.Y != nil {
		return fmt.Errorf("%s: k and v go to the caches: their outputs must be nil", op)
	}
	if wq.Y == nil || wq.W == nil || wk.W == nil || wv.W == nil {
		return fmt.Errorf("%s: nil q output or weight", op)
	}
	half, err := checkRopeInputs(op, invFreq, kCache, vCache, pos, heads, kvHeads)
	if err != nil {
		return err
	}
	d := 2 * half
	if nq, nk, nv := wq.W.Shape()[0], wk.W.Shape()[0], wv.W.Shape()[0]; nq != heads*d || nk != kvHeads*d || nv != nk {
		return fmt.Errorf("%s: weights %s, %s and %s have %d, %d and %d rows; want heads %d × D %d and twice kvHeads %d × D",
			op, wq.W.Name(), wk.W.Name(), wv.W.Name(), nq, nk, nv, heads, d, kvHeads)
	}
	if pos.Len() < 1 {
		return fmt.Errorf("%s: pos %s is empty", op, pos.Name())
	}
	rowLen := kvHeads * d
	if kCache.Len() != vCache.Len() || kCache.Len()%rowLen != 0 {
		return fmt.Errorf("%s: caches %s (%d) and %s (%d) must be equal whole rows of %d", op, kCache.Name(), kCache.Len(), vCache.Name(), vCache.Len(), rowLen)
	}
	if uint64(kCache.Len()) > opMaxU32 {
		return fmt.Errorf("%s: caches beyond 32-bit indexing", op)
	}
	// q is checked as NormMatVec's output; k and v, which go to the caches,
	// by their weights and biases.
	m, k, err := fusedCheck(op, r.Device(), x, runtime.F32, []MatVecOut{wq}, runtime.F16)
	if err != nil {
		return err
	}
	for _, o := range []MatVecOut{wk, wv} {
		if o.W.Shape()[1] != k || o.W.DType() != runtime.F16 || !MatVecFusable(r.Device(), o.W) {
			return fmt.Errorf("%s: weight %s (%s %v) is not a 2-D f16 [N, K=%d] matrix within one binding (MatVecFusable)", op, o.W.Name(), o.W.DType(), o.W.Shape(), k)
		}
		if o.Bias != nil && (o.Bias.DType() != runtime.F32 || o.Bias.Len() != o.W.Shape()[0]) {
			return fmt.Errorf("%s: bias %s must be f32 [%d]", op, o.Bias.Name(), o.W.Shape()[0])
		}
	}
	if err := checkNorm(op, norm, k, eps); err != nil {
		return err
	}
	wk.Y, wv.Y = kCache, vCache
	return fusedDispatch(r, "gemv_norm_rope", x, norm, eps, []MatVecOut{wq, wk, wv}, m, k, false,
		&fusedRope{invFreq: invFreq, pos: pos, half: half, cacheRows: kCache.Len() / rowLen})
}

// MatVecAdd records y += x·Wᵀ (+ bias) in one dispatch: a projection and
// the residual add after it, for the M ≤ GEMVMaxM rows of x (f16 [M, K]);
// w [N, K] f16 or block-quantized (MatVecFusable), bias f32 [N] or nil, y
// f32 [M, N]. The sum is rounded once, as MatMul into an f32 temporary
// followed by AddInPlace.
func MatVecAdd(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	const op = "matvec add"
	outs := []MatVecOut{{Y: y, W: w, Bias: bias}}
	m, k, err := fusedCheck(op, r.Device(), x, runtime.F16, outs, runtime.F32)
	if err != nil {
		return err
	}
	if dt := w.DType(); dt != runtime.F16 {
		return fusedQDispatch(r, "gemv_qw_add_"+dt.String(), x, nil, 0, outs, m, k, false)
	}
	return fusedDispatch(r, "gemv_add", x, nil, 0, outs, m, k, false, nil)
}

// RopeKV records a decode step's RoPE and KV-cache append in one dispatch,
// at the position the GPU reads from pos (i32, element 0: P) when the
// commands run. The M rows of q [M, heads, D] and of k and v [M, kvHeads, D]
// (f16) sit at positions P+pos0 … P+pos0+M−1: q is rotated in place, the
// rotated k goes to row P+pos0+r of kCache and v to the same row of vCache
// (f16 [rows, kvHeads, D]); k and v are not changed. Rows past the caches
// are skipped: the caller keeps the positions in range. The results equal
// Rope on q and on k and copies of k and v into the caches, bit for bit.
// invFreq is f32 [D/2], as for Rope.
func RopeKV(r *runtime.Recorder, q, k, v, invFreq, kCache, vCache, pos *runtime.Tensor, heads, kvHeads, pos0 int) error {
	const op = "rope kv"
	m, half, err := checkRopeAppend(op, []namedTensor{{"q", q}, {"k", k}, {"v", v}}, q, invFreq, kCache, vCache, pos, heads, kvHeads, pos0)
	if err != nil {
		return err
	}
	d := 2 * half
	if k.Len() != m*kvHeads*d || v.Len() != k.Len() {
		return fmt.Errorf("%s: k %s (%d) and v %s (%d) must hold %d rows of %d KV heads × D %d", op, k.Name(), k.Len(), v.Name(), v.Len(), m, kvHeads, d)
	}
	rowLen := kvHeads * d
	if m == 0 {
		return nil
	}
	dev := r.Device()
	kern, err := dev.Kernel(runtime.KernelDesc{Shader: "rope_kv", Bindings: 7, ReadOnly: 0b1001110, PushSize: 24, Spec: []uint32{256}})
	if err != nil {
		return err
	}
	n := m * (heads + 2*kvHeads) * half
	return r.Dispatch(kern, dev.Groups1D(n, 256), struct {
		Rows, Hq, Hkv, Half uint32
		Pos0                int32
		CacheRows           uint32
	}{uint32(m), uint32(heads), uint32(kvHeads), uint32(half), int32(pos0), uint32(kCache.Len() / rowLen)},
		q, k, v, invFreq, kCache, vCache, pos)
}

// DecodeAttentionAt is DecodeAttention at a position the GPU reads from pos
// (i32, element 0: P) when the commands run: the queries sit at positions
// P+p.Q0 …, the cache holds P+p.Skv keys (a decode step: p.Q0 = 0,
// p.Skv = p.Sq). The split-KV grid is planned for caches of up to maxSkv keys
// (p.Skv ≤ maxSkv; the caller keeps P+p.Skv ≤ maxSkv, as longer caches would
// lose keys), so that one recording serves every P up to there: splits past
// the cache's last key do nothing. With the same plan, results equal
// DecodeAttention's bit for bit. k and v hold at least maxSkv rows; scratch
// (f32, may be nil: no split) at least DecodeScratchLen of the plan, which
// DecodeScratchMax covers, zero before its first use as DecodeAttention's.
func DecodeAttentionAt(r *runtime.Recorder, o, lse, q, k, v, scratch, pos *runtime.Tensor, p AttnParams, maxSkv int) error {
	const op = "decode attention"
	pm, err := decodePlanParams(p, maxSkv)
	if err != nil {
		return err
	}
	if err := attnCheckIO(op, o, lse, q, k, v, pm); err != nil {
		return err
	}
	if pos == nil || pos.DType() != runtime.I32 || pos.Len() < 1 {
		return fmt.Errorf("%s: pos must be an i32 tensor of at least one element", op)
	}
	if p.Sq == 0 {
		return nil
	}
	pl, err := attnPlanDecode(r.Device(), pm)
	if err != nil {
		return err
	}
	return decodeAttention(r, o, lse, q, k, v, scratch, pos, p, pl)
}

// decodePlanParams is p moved to the longest cache, maxSkv keys: what
// DecodeAttentionAt plans its grid for.
func decodePlanParams(p AttnParams, maxSkv int) (AttnParams, error) {
	if err := p.check("decode attention"); err != nil {
		return p, err
	}
	if maxSkv < p.Skv {
		return p, fmt.Errorf("decode attention: longest cache %d is shorter than Skv=%d", maxSkv, p.Skv)
	}
	pm := p
	pm.Q0 += maxSkv - p.Skv
	pm.Skv = maxSkv
	return pm, nil
}

// RopeQKV records prefill's RoPE and KV-cache append in one dispatch from
// the output of one matmul with the q, k and v projections stacked: row r
// of x [M, Hq·D + 2·Hkv·D] (f16) holds q [Hq, D], then k [Hkv, D], then v
// [Hkv, D] of the token at position P+pos0+r (P = pos[0], i32, read when the
// commands run). The rotated q goes to row r of q [M, Hq, D] (f16), the
// rotated k to row P+pos0+r of kCache and v to the same row of vCache (f16
// [rows, Hkv, D]); x is not changed. Rows past the caches are skipped. The
// results equal RopeKV's on the three column ranges copied apart, bit for
// bit. invFreq is f32 [D/2], as for Rope.
func RopeQKV(r *runtime.Recorder, q, x, invFreq, kCache, vCache, pos *runtime.Tensor, heads, kvHeads, pos0 int) error {
	const op = "rope qkv"
	m, half, err := checkRopeAppend(op, []namedTensor{{"q", q}, {"x", x}}, q, invFreq, kCache, vCache, pos, heads, kvHeads, pos0)
	if err != nil {
		return err
	}
	d := 2 * half
	stride := (heads + 2*kvHeads) * d
	if x.Len() != m*stride {
		return fmt.Errorf("%s: x %s has %d elements, want %d rows of (Hq %d + 2·Hkv %d) × D %d", op, x.Name(), x.Len(), m, heads, kvHeads, d)
	}
	if uint64(x.Len()) > opMaxU32 {
		return fmt.Errorf("%s: x beyond 32-bit indexing", op)
	}
	rowLen := kvHeads * d
	if m == 0 {
		return nil
	}
	dev := r.Device()
	kern, err := dev.Kernel(runtime.KernelDesc{Shader: "rope_qkv", Bindings: 6, ReadOnly: 0b100110, PushSize: 28, Spec: []uint32{256}})
	if err != nil {
		return err
	}
	n := m * (heads + 2*kvHeads) * half
	return r.Dispatch(kern, dev.Groups1D(n, 256), struct {
		Rows, Hq, Hkv, Half uint32
		Pos0                int32
		CacheRows, Stride   uint32
	}{uint32(m), uint32(heads), uint32(kvHeads), uint32(half), int32(pos0), uint32(kCache.Len() / rowLen), uint32(stride)},
		q, x, invFreq, kCache, vCache, pos)
}

// namedTensor is an operand and the name its errors give it.
type namedTensor struct {
	what string
	t    *runtime.Tensor
}

// checkRopeAppend checks the operands of RopeKV and RopeQKV: f16 present
// (non-nil, f16), the rotation and cache operands (checkRopeInputs), q
// whole rows of heads × D, the caches equal whole rows of kvHeads × D
// within 32-bit indexing, pos not empty and pos0 in [0, 2^24). It returns
// q's row count M and D/2.
func checkRopeAppend(op string, f16 []namedTensor, q, invFreq, kCache, vCache, pos *runtime.Tensor, heads, kvHeads, pos0 int) (m, half int, err error) {
	for _, c := range f16 {
		if c.t == nil {
			return 0, 0, fmt.Errorf("%s: %s is nil", op, c.what)
		}
		if err := opDType(op, c.what, c.t, runtime.F16); err != nil {
			return 0, 0, err
		}
	}
	if half, err = checkRopeInputs(op, invFreq, kCache, vCache, pos, heads, kvHeads); err != nil {
		return 0, 0, err
	}
	d := 2 * half
	if q.Len()%(heads*d) != 0 {
		return 0, 0, fmt.Errorf("%s: q %s has %d elements, not a multiple of heads %d × D %d", op, q.Name(), q.Len(), heads, d)
	}
	rowLen := kvHeads * d
	if kCache.Len() != vCache.Len() || kCache.Len()%rowLen != 0 {
		return 0, 0, fmt.Errorf("%s: caches %s (%d) and %s (%d) must be equal whole rows of %d", op, kCache.Name(), kCache.Len(), vCache.Name(), vCache.Len(), rowLen)
	}
	if pos.Len() < 1 {
		return 0, 0, fmt.Errorf("%s: pos %s is empty", op, pos.Name())
	}
	if pos0 < 0 || pos0 >= 1<<24 {
		return 0, 0, fmt.Errorf("%s: position offset %d outside [0, 2^24)", op, pos0)
	}
	if uint64(kCache.Len()) > opMaxU32 {
		return 0, 0, fmt.Errorf("%s: caches beyond 32-bit indexing", op)
	}
	return q.Len() / (heads * d), half, nil
}

// checkRopeInputs checks the rotation and cache operands of RopeKV and
// NormMatVecRopeKV (invFreq f32 [D/2], the caches f16, pos i32, positive
// head counts) and returns D/2.
func checkRopeInputs(op string, invFreq, kCache, vCache, pos *runtime.Tensor, heads, kvHeads int) (int, error) {
	for _, c := range []struct {
		what string
		t    *runtime.Tensor
		dt   runtime.DType
	}{{"invFreq", invFreq, runtime.F32}, {"K cache", kCache, runtime.F16}, {"V cache", vCache, runtime.F16}, {"pos", pos, runtime.I32}} {
		if c.t == nil {
			return 0, fmt.Errorf("%s: %s is nil", op, c.what)
		}
		if err := opDType(op, c.what, c.t, c.dt); err != nil {
			return 0, err
		}
	}
	half := invFreq.Len()
	if half == 0 || heads <= 0 || kvHeads <= 0 {
		return 0, fmt.Errorf("%s: heads %d, kvHeads %d and invFreq %s (%d) must be positive", op, heads, kvHeads, invFreq.Name(), half)
	}
	return half, nil
}
