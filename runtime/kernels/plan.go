package kernels

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/shareprefill/shareprefill/runtime"
)

// The planning kernels run the sparse-attention planners of package share
// on the GPU (docs/algorithm.md#online-phase): gates, roles, block budgets,
// vertical-slash selection, the query-aware cut, the pivot row cover and
// the compaction of every head's block set into the CSR lists that
// SparseAttention reads. Block sets travel as bitmaps: nbw = ⌈nb/32⌉ uint32
// words per row, bit c%32 of word c/32 for column (or offset) c. Integer and
// bitmap buffers are I32 tensors.

// Head modes of the hplan buffer (word 0 of [Hq, 4]: mode, cluster, nv, ns):
// which blocks plan_union lists for a head.
const (
	PlanModeAll        = 0 // every causal block (dense, pivot)
	PlanModeVS         = 1 // the VS set
	PlanModeShared     = 2 // the cluster's pattern ∪ the VS set
	PlanModeQueryAware = 3 // the query-aware cut ∪ the VS set
)

// Method codes of a statistics record; they equal the share.Method values
// (share/gpu checks this).
const (
	PlanMethodDense = iota
	PlanMethodPivot
	PlanMethodShared
	PlanMethodVerticalSlash
	PlanMethodQueryAware
	PlanMethodExcluded
)

// Reason codes of a statistics record (word 1); share/gpu maps them to the
// planner's reason strings.
const (
	PlanReasonNone = iota
	PlanReasonDenseBelow
	PlanReasonNoCluster
	PlanReasonNotShared
	PlanReasonHighlySparse
	PlanReasonFirstEligible
	PlanReasonSameLayer
	PlanReasonVerticalGate
	PlanReasonSlashGate
	PlanReasonVSRatio
	PlanReasonShares
)

// Statistics records: PlanStatWords int32 per (layer, head), written by
// PlanDecide, PlanScan and PlanPivot. The word indices:
const (
	PlanStatMethod     = 0  // PlanMethod*
	PlanStatReason     = 1  // PlanReason*
	PlanStatNv         = 2  // vertical budget in blocks
	PlanStatNs         = 3  // slash budget in blocks
	PlanStatBlocks     = 4  // listed blocks (PlanScan)
	PlanStatPivotLayer = 5  // the cluster's pivot (shared heads and gates), −1 if none
	PlanStatPivotHead  = 6  //
	PlanStatEvaluated  = 7  // bit i: gate g_i was evaluated
	PlanStatGate0      = 8  // f32 bits of g0..g3 (query, uniform, share V, share S); NaN when not finite
	PlanStatVSRatio    = 12 // f32 bits of the pivot's vs_ratio (PlanPivot)
	PlanStatPattern    = 13 // the pivot's pattern blocks (PlanPivot)
	PlanStatCluster    = 14 // cluster index, −1 for none
	PlanStatPivotDone  = 15 // 1 once PlanPivot wrote words 12 and 13
	PlanStatWords      = 16
)

// PlanMaxHeads is the largest Hq the role kernel handles (one workgroup).
const PlanMaxHeads = 64

// PlanIndirectWords is the size of one chunk's indirect workgroup counts in
// the buffer PlanDecide writes: (BlockMapGroups, nb, z) for BlockMapIndirect, (nb, z, 1)
// for PlanRowCover, (z, 1, 1) for PlanPivot.
const PlanIndirectWords = 9

// Byte offsets of a chunk's counts in the indirect buffer.
const (
	PlanIndirectBlockMap = 0
	PlanIndirectRowCover = 12
	PlanIndirectPivot    = 24
)

// PlanParams describes one layer of GPU planning. Geometry: Hq query heads,
// N tokens in blocks of B (nb = ⌈N/B⌉), NumLayers layers, K clusters.
// Knobs follow share.Config; thresholds are compared in f32.
type PlanParams struct {
	Hq, NumLayers, Layer int
	N, B                 int
	K                    int

	UseQuery  bool    // query-aware gate on (τ_q > 0)
	Exclusion int     // 0 js-uniform, 1 vs-coverage, 2 none (share.Exclusion)
	ExclDist  int     // X of js-uniform: 0 V, 1 S, 2 â (share.ExclusionDist)
	NaNCompat bool    // share.JSDCompat
	DenseAll  bool    // every head dense (n < DenseBelow)
	TauQ      float32 // τ_q
	TauS      float32 // τ_s
	Delta     float32 // δ
	TauF      float32 // τ_f
	// BudLo and BudHi clamp block budgets (share.Config.BlockBudget).
	BudLo, BudHi int
	// Gamma is γ of the query-aware cut and the row cover.
	Gamma float64
	// VSRatioCompat selects the release's over-counting vs_ratio.
	VSRatioCompat bool
	// Chunks pivot chunks of Cap slots each, CapPad ≥ Cap int32 apart.
	Chunks, Cap, CapPad int
}

// NB returns ⌈N/B⌉.
func (p PlanParams) NB() int { return (p.N + p.B - 1) / p.B }

// NBW returns ⌈nb/32⌉, the words of one bitmap row.
func (p PlanParams) NBW() int { return (p.NB() + 31) / 32 }

func (p PlanParams) check(op string) error {
	switch {
	case p.Hq < 1 || p.Hq > PlanMaxHeads:
		return fmt.Errorf("%s: Hq = %d outside [1, %d]", op, p.Hq, PlanMaxHeads)
	case p.N < 1 || p.B < 1:
		return fmt.Errorf("%s: N = %d and B = %d must be ≥ 1", op, p.N, p.B)
	case p.NumLayers < 1 || p.Layer < 0 || p.Layer >= p.NumLayers:
		return fmt.Errorf("%s: layer %d outside [0, %d)", op, p.Layer, p.NumLayers)
	case p.K < 0:
		return fmt.Errorf("%s: %d clusters", op, p.K)
	case p.NB() > 1<<15:
		return fmt.Errorf("%s: nb = %d exceeds %d blocks", op, p.NB(), 1<<15)
	}
	return nil
}

// shift is the fixed-point scale of plan_cover: sums of up to 2·nb entries
// ≤ 2 stay below 2^63.
func (p PlanParams) shift() uint32 { return uint32(61 - bits.Len(uint(p.NB()))) }

func planKernel(d *runtime.Device, shader string, bindings int, ro uint32, push int, local int) (*runtime.Kernel, error) {
	return d.Kernel(runtime.KernelDesc{Shader: shader, Bindings: bindings, ReadOnly: ro, PushSize: push, Spec: []uint32{uint32(local)}})
}

// checkI32 checks an int32 tensor of at least n elements.
func checkI32(op, what string, t *runtime.Tensor, n int) error {
	if t == nil {
		return fmt.Errorf("%s: %s is nil", op, what)
	}
	if t.DType() != runtime.I32 {
		return fmt.Errorf("%s: %s (%s) is %s, want i32", op, what, t.Name(), t.DType())
	}
	if t.Len() < n {
		return fmt.Errorf("%s: %s (%s) has %d elements, want ≥ %d", op, what, t.Name(), t.Len(), n)
	}
	return nil
}

func checkF32Min(op, what string, t *runtime.Tensor, n int) error {
	if t == nil {
		return fmt.Errorf("%s: %s is nil", op, what)
	}
	if t.DType() != runtime.F32 {
		return fmt.Errorf("%s: %s (%s) is %s, want f32", op, what, t.Name(), t.DType())
	}
	if t.Len() < n {
		return fmt.Errorf("%s: %s (%s) has %d elements, want ≥ %d", op, what, t.Name(), t.Len(), n)
	}
	return nil
}

// TopKParams describes TopKBits: Rows rows of two vectors x0, x1 with row
// stride Stride; vector w selects over its first Len[w] entries with budget
// K[w] (or kbuf[h·KStride + KOff + w] when KFromBuf) and the forced prefix
// 0..Forced[w]−1. Words is the output row stride in uint32 words.
type TopKParams struct {
	Rows, Stride int
	Len, K       [2]int
	Forced       [2]int
	Words        int
	KFromBuf     bool
	KStride      int
	KOff         int
}

// TopKBits records the vertical-slash selection of share.TopKForced for
// every row and vector as bitmaps (shaders/plan_topk.comp): out i32
// [Rows, 2, Words], bit i set iff index i is among the forced prefix or the
// first max(min(max(k, 1), len) − forced, 0) other entries in the order
// (value descending, index ascending). Entries must be ≥ 0. x0, x1: f32
// [Rows, Stride]; kbuf (i32) is read only with KFromBuf (may be nil
// otherwise).
func TopKBits(r *runtime.Recorder, out, x0, x1, kbuf *runtime.Tensor, p TopKParams) error {
	const op = "top-k bits"
	if p.Rows < 1 || p.Stride < 1 || p.Words < (p.Stride+31)/32 {
		return fmt.Errorf("%s: rows %d, stride %d, words %d (need rows, stride ≥ 1 and words ≥ ⌈stride/32⌉)", op, p.Rows, p.Stride, p.Words)
	}
	for w := 0; w < 2; w++ {
		if p.Len[w] < 0 || p.Len[w] > p.Stride || p.Forced[w] < 0 {
			return fmt.Errorf("%s: vector %d: length %d (stride %d), forced %d", op, w, p.Len[w], p.Stride, p.Forced[w])
		}
	}
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
	}{{"x0", x0}, {"x1", x1}} {
		if err := checkF32Min(op, e.what, e.t, p.Rows*p.Stride); err != nil {
			return err
		}
	}
	if err := checkI32(op, "out", out, p.Rows*2*p.Words); err != nil {
		return err
	}
	useK := uint32(0)
	if p.KFromBuf {
		useK = 1
		if p.KStride < 2 || p.KOff < 0 || p.KOff+2 > p.KStride {
			return fmt.Errorf("%s: budget stride %d and offset %d", op, p.KStride, p.KOff)
		}
		if err := checkI32(op, "kbuf", kbuf, p.Rows*p.KStride); err != nil {
			return err
		}
	} else {
		kbuf = out // not read; any buffer binds
	}
	d := r.Device()
	grid := [3]uint32{uint32(p.Rows), 2, 1}
	if err := checkGrid(op, d, grid); err != nil {
		return err
	}
	k, err := planKernel(d, "plan_topk", 4, 0b0111, 48, 256)
	if err != nil {
		return err
	}
	push := [12]uint32{uint32(p.Rows), uint32(p.Stride), uint32(p.Len[0]), uint32(p.Len[1]),
		uint32(int32(p.K[0])), uint32(int32(p.K[1])), uint32(p.Forced[0]), uint32(p.Forced[1]),
		uint32(p.Words), useK, uint32(p.KStride), uint32(p.KOff)}
	return r.Dispatch(k, grid, push, x0, x1, kbuf, out)
}

// PlanGates records the JS gates of one layer (shaders/plan_gates.comp):
// gates i32 [Hq, 8] with the f32 bits of JSD(â, V), JSD(X, U), JSD(V_ref, V),
// JSD(S_ref, S) in words 0–3 and a NaN mask in word 4. v, s, pooled: f32
// [Hq, nb] (pooled is read only for the query gate or X = â; pass v
// otherwise); cmap i32 [L·Hq + K] (cluster of each (layer, head), then the
// in-scope flags); meta i32 [K, 4] and refs f32 [K, 2, nb]: the pivot
// dictionary (at least one element each when K = 0).
func PlanGates(r *runtime.Recorder, gates, v, s, pooled, cmap, meta, refs *runtime.Tensor, p PlanParams) error {
	const op = "plan gates"
	if err := p.check(op); err != nil {
		return err
	}
	hq, nb := p.Hq, p.NB()
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
	}{{"v", v}, {"s", s}, {"pooled", pooled}} {
		if err := checkF32Min(op, e.what, e.t, hq*nb); err != nil {
			return err
		}
	}
	if err := checkF32Min(op, "refs", refs, max(1, p.K*2*nb)); err != nil {
		return err
	}
	if err := checkI32(op, "cmap", cmap, p.NumLayers*hq+p.K); err != nil {
		return err
	}
	if err := checkI32(op, "meta", meta, max(1, 4*p.K)); err != nil {
		return err
	}
	if err := checkI32(op, "gates", gates, 8*hq); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_gates", 7, 0b0111111, 36, 128)
	if err != nil {
		return err
	}
	push := [9]uint32{uint32(hq), uint32(nb), uint32(p.N), uint32(p.B), uint32(p.Layer),
		b2u(p.UseQuery), b2u(p.Exclusion == 0), uint32(p.ExclDist), b2u(p.NaNCompat)}
	return r.Dispatch(k, [3]uint32{uint32(hq), 1, 1}, push, v, s, pooled, cmap, meta, refs, gates)
}

// PlanDecide records the roles of one layer (shaders/plan_decide.comp):
// from gates (PlanGates), counts i32 [Hq, 2] (the token budgets k_v, k_s of
// CoverCounts), cmap, v and s it writes hplan i32 [Hq, 4] (mode, cluster,
// nv, ns), the pivot slots pivots i32 [Chunks, CapPad] with their indirect
// counts indirect i32 [Chunks, PlanIndirectWords], statistics row Layer of
// stats i32 [L, Hq, PlanStatWords], and updates the pivot dictionary meta
// i32 [K, 4] and refs f32 [K, 2, nb] (cleared on layer 0).
func PlanDecide(r *runtime.Recorder, gates, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats *runtime.Tensor, p PlanParams) error {
	const op = "plan decide"
	if err := p.check(op); err != nil {
		return err
	}
	hq := p.Hq
	if err := checkPivotChunks(op, p); err != nil {
		return err
	}
	if err := checkI32(op, "gates", gates, 8*hq); err != nil {
		return err
	}
	if err := checkRoleBuffers(op, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats, p); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_decide", 11, 0b00000011111, 76, 64)
	if err != nil {
		return err
	}
	return r.Dispatch(k, [3]uint32{1, 1, 1}, p.rolePush(), gates, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats)
}

// PlanRoles records PlanGates and PlanDecide as one dispatch
// (shaders/plan_decide.comp, variant plan_roles): the workgroup computes
// the gates of every head itself, then the roles, with PlanDecide's outputs
// (hplan, pivots, indirect, the statistics row with the gate bits, meta and
// refs) and no gate buffer. v, s, pooled, cmap, meta and refs are PlanGates'
// inputs (pooled is read only for the query gate or X = â; pass v
// otherwise), counts PlanDecide's. The workgroup (planRolesLocal
// invocations) computes the gates of all heads at once, each head's sums
// over planRolesLocal / 2^⌈log2 Hq⌉ invocations instead of PlanGates' 128,
// so a gate's last bits may differ from PlanGates' (TestPlanGatesAndDecide
// allows that: its gates are held to the float64 ones within 1e-5).
func PlanRoles(r *runtime.Recorder, counts, v, s, pooled, cmap, meta, refs, hplan, pivots, indirect, stats *runtime.Tensor, p PlanParams) error {
	const op = "plan roles"
	if err := p.check(op); err != nil {
		return err
	}
	if err := checkPivotChunks(op, p); err != nil {
		return err
	}
	if err := checkRoleBuffers(op, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats, p); err != nil {
		return err
	}
	if err := checkF32Min(op, "pooled", pooled, p.Hq*p.NB()); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_roles", 11, 0b00000011111, 88, planRolesLocal)
	if err != nil {
		return err
	}
	push := struct {
		planRolePush
		N, ExclDist, NaNCompat uint32
	}{p.rolePush(), uint32(p.N), uint32(p.ExclDist), b2u(p.NaNCompat)}
	return r.Dispatch(k, [3]uint32{1, 1, 1}, push, pooled, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats)
}

// planRolesLocal is the workgroup size of plan_roles: 32 invocations per
// head's gate sums at 8 heads, 4 at PlanMaxHeads.
const planRolesLocal = 256

// planRolePush is the push-constant block of plan_decide.comp that
// PlanDecide and PlanRoles share (PlanRoles appends three words).
type planRolePush struct {
	Layer, L, Hq, NB, K, UseQuery, Exclusion, DenseAll uint32
	TauQ, TauS, Delta, TauF                            float32
	BudLo, BudHi, B                                    int32
	Chunks, Cap, CapPad                                uint32
	// BMGroups is the block map's grid width, the first indirect count
	// (blockMapGroups for BlockMapIndirect's kpw).
	BMGroups uint32
}

func (p PlanParams) rolePush() planRolePush {
	return planRolePush{uint32(p.Layer), uint32(p.NumLayers), uint32(p.Hq), uint32(p.NB()), uint32(p.K), b2u(p.UseQuery), uint32(p.Exclusion), b2u(p.DenseAll),
		p.TauQ, p.TauS, p.Delta, p.TauF, int32(p.BudLo), int32(p.BudHi), int32(p.B), uint32(p.Chunks), uint32(p.Cap), uint32(p.CapPad),
		uint32(p.BlockMapGroups())}
}

// BlockMapGroups is the x workgroup count PlanDecide and PlanRoles write
// for BlockMapIndirect: ⌈nb/kpw⌉ with BlockMapIndirect's kpw key blocks per
// workgroup.
func (p PlanParams) BlockMapGroups() int {
	nb := p.NB()
	return blockMapGroups(nb, blockMapIndirectBlocksPerGroup(nb))
}

// checkRoleBuffers checks the buffers PlanDecide and PlanRoles share.
func checkRoleBuffers(op string, counts, cmap, v, s, meta, refs, hplan, pivots, indirect, stats *runtime.Tensor, p PlanParams) error {
	hq, nb := p.Hq, p.NB()
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{
		{"counts", counts, 2 * hq}, {"cmap", cmap, p.NumLayers*hq + p.K},
		{"meta", meta, max(1, 4*p.K)}, {"hplan", hplan, 4 * hq}, {"pivots", pivots, max(1, p.Chunks*p.CapPad)},
		{"indirect", indirect, max(1, p.Chunks*PlanIndirectWords)}, {"stats", stats, p.NumLayers * hq * PlanStatWords},
	} {
		if err := checkI32(op, e.what, e.t, e.n); err != nil {
			return err
		}
	}
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{{"v", v, hq * nb}, {"s", s, hq * nb}, {"refs", refs, max(1, 2*p.K*nb)}} {
		if err := checkF32Min(op, e.what, e.t, e.n); err != nil {
			return err
		}
	}
	return nil
}

// checkPivotChunks checks PlanDecide's and PlanRoles' pivot chunks.
func checkPivotChunks(op string, p PlanParams) error {
	if p.Chunks < 0 || p.Chunks > 0 && (p.Cap < 1 || p.CapPad < p.Cap) || p.Chunks*p.Cap > PlanMaxHeads*2 {
		return fmt.Errorf("%s: %d pivot chunks of %d slots (stride %d)", op, p.Chunks, p.Cap, p.CapPad)
	}
	return nil
}

// PlanQueryAwareCut records share.QueryAwareCut for every head whose hplan
// mode is PlanModeQueryAware (shaders/plan_cover.comp): m f32 [Hq, nb, nb]
// (the pooled block maps), qabits i32 [Hq, nb, nbw] (every word of those
// heads' rows is written; other heads are untouched).
func PlanQueryAwareCut(r *runtime.Recorder, qabits, m, hplan *runtime.Tensor, p PlanParams) error {
	const op = "plan query-aware cut"
	if err := p.check(op); err != nil {
		return err
	}
	if !(p.Gamma > 0) || math.IsInf(p.Gamma, 0) {
		return fmt.Errorf("%s: gamma %v must be positive and finite", op, p.Gamma)
	}
	hq, nb, nbw := p.Hq, p.NB(), p.NBW()
	if err := checkF32Min(op, "m", m, hq*nb*nb); err != nil {
		return err
	}
	if err := checkI32(op, "hplan", hplan, 4*hq); err != nil {
		return err
	}
	if err := checkI32(op, "qabits", qabits, hq*nb*nbw); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_qacut", 3, 0b011, 36, 128)
	if err != nil {
		return err
	}
	sh := p.shift()
	// The limit of share.QueryAwareCut, γ·nb in float64, in fixed point.
	lim := math.Floor(math.Ldexp(p.Gamma*float64(nb), int(sh)))
	limU := uint64(math.MaxUint64 >> 1)
	if lim < float64(limU) {
		limU = uint64(lim)
	}
	push := [9]uint32{uint32(hq), uint32(nb), uint32(nbw), sh, uint32(limU), uint32(limU >> 32), 0, 0, b2u(p.Gamma >= 1)}
	return r.Dispatch(k, [3]uint32{uint32(hq), 1, 1}, push, m, hplan, qabits)
}

// gammaFrac returns γ·2^64 for γ < 1 (0 otherwise).
func gammaFrac(g float64) uint64 {
	if !(g < 1) || !(g > 0) {
		return 0
	}
	return uint64(math.Ldexp(g, 64))
}

// PlanRowCover records the pivots' row covers (shaders/plan_cover.comp,
// share.RowCover) with the workgroup counts at byte off of counts (written
// by PlanDecide: (nb, z, 1)): for slot x < z, head pivots[x], every row r of
// maps[x] (f32 [Cap, nb, nb], exact block maps) goes to row r of the
// cluster's pattern i32 [K, nb, nbw], and rowstats i32 [Cap, nb, 4] gets the
// row's VS-coverage terms (f32 bits; exact, over-count) for the pivot's VS
// bitmaps vsbits i32 [Hq, 2, nbw] and its pattern blocks. pivots is the
// chunk's slot list (Cap elements).
//
// Up to planRankMaxBlocks blocks the cut ranks each row's entries in one
// pass (every column against every other, in shared memory) instead of
// bisecting on the crossing value with a workgroup sum per step; both keep
// the same blocks. Tuning.PlanRowCoverBisect keeps the bisection at every
// size.
func PlanRowCover(r *runtime.Recorder, counts *runtime.Tensor, off uint64, maps, hplan, pivots, vsbits, pattern, rowstats *runtime.Tensor, p PlanParams) error {
	return planRowCover(r, cutAuto, counts, off, maps, hplan, pivots, vsbits, pattern, rowstats, p)
}

// Which cut PlanRowCover takes (planRowCover's cut).
const (
	cutAuto   = iota // ranks up to planRankMaxBlocks, unless Tuning.PlanRowCoverBisect
	cutRank          // ranks (nb ≤ planRankMaxBlocks)
	cutBisect        // bisection on the crossing value
)

// planRowCoverLocal is plan_rowcover's workgroup size, and
// planRankMaxBlocks the most blocks its rank cut takes (its shared row
// holds 2·planRowCoverLocal columns; the per-column work is O(nb)).
const (
	planRowCoverLocal = 128
	planRankMaxBlocks = 2 * planRowCoverLocal
)

// planRowCover is PlanRowCover with the cut forced by cut (tests).
func planRowCover(r *runtime.Recorder, cut int, counts *runtime.Tensor, off uint64, maps, hplan, pivots, vsbits, pattern, rowstats *runtime.Tensor, p PlanParams) error {
	const op = "plan row cover"
	if err := p.check(op); err != nil {
		return err
	}
	if !(p.Gamma > 0 && p.Gamma <= 1) {
		return fmt.Errorf("%s: gamma %v outside (0, 1]", op, p.Gamma)
	}
	hq, nb, nbw := p.Hq, p.NB(), p.NBW()
	if p.Cap < 1 || p.K < 1 {
		return fmt.Errorf("%s: %d slots, %d clusters", op, p.Cap, p.K)
	}
	if err := checkF32Min(op, "maps", maps, p.Cap*nb*nb); err != nil {
		return err
	}
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{{"hplan", hplan, 4 * hq}, {"pivots", pivots, p.Cap}, {"vsbits", vsbits, hq * 2 * nbw},
		{"pattern", pattern, p.K * nb * nbw}, {"rowstats", rowstats, p.Cap * nb * 4}, {"counts", counts, 3}} {
		if err := checkI32(op, e.what, e.t, e.n); err != nil {
			return err
		}
	}
	d := r.Device()
	if cut == cutAuto {
		cut = cutBisect
		if nb <= planRankMaxBlocks && !d.Tuning().PlanRowCoverBisect {
			cut = cutRank
		}
	}
	if cut == cutRank && nb > planRankMaxBlocks {
		return fmt.Errorf("%s: the rank cut takes at most %d blocks, have %d", op, planRankMaxBlocks, nb)
	}
	k, err := planKernel(d, "plan_rowcover", 6, 0b001111, 40, planRowCoverLocal)
	if err != nil {
		return err
	}
	g := gammaFrac(p.Gamma)
	push := [10]uint32{uint32(hq), uint32(nb), uint32(nbw), p.shift(), 0, 0, uint32(g), uint32(g >> 32), b2u(p.Gamma >= 1), b2u(cut == cutRank)}
	return r.DispatchIndirect(k, counts, off, push, maps, hplan, pivots, vsbits, pattern, rowstats)
}

// PlanPivot records the pivots' vs_ratio and pattern size
// (shaders/plan_pivot.comp) with the workgroup counts at byte off of counts
// ((z, 1, 1), PlanDecide): they go to meta i32 [K, 4] (words 2, 3) and to
// the pivots' statistics records in stats (row Layer).
func PlanPivot(r *runtime.Recorder, counts *runtime.Tensor, off uint64, rowstats, pivots, hplan, meta, stats *runtime.Tensor, p PlanParams) error {
	const op = "plan pivot"
	if err := p.check(op); err != nil {
		return err
	}
	hq, nb := p.Hq, p.NB()
	if p.Cap < 1 || p.K < 1 {
		return fmt.Errorf("%s: %d slots, %d clusters", op, p.Cap, p.K)
	}
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{{"rowstats", rowstats, p.Cap * nb * 4}, {"pivots", pivots, p.Cap}, {"hplan", hplan, 4 * hq},
		{"meta", meta, 4 * p.K}, {"stats", stats, p.NumLayers * hq * PlanStatWords}, {"counts", counts, 3}} {
		if err := checkI32(op, e.what, e.t, e.n); err != nil {
			return err
		}
	}
	d := r.Device()
	k, err := planKernel(d, "plan_pivot", 5, 0b00111, 16, 128)
	if err != nil {
		return err
	}
	push := [4]uint32{uint32(hq), uint32(nb), uint32(p.Layer), b2u(p.VSRatioCompat)}
	return r.DispatchIndirect(k, counts, off, push, rowstats, pivots, hplan, meta, stats)
}

// UnionParams describes PlanUnion: Hq heads on an nb-block grid; VSRows (2
// or 3) bitmap rows per head in vsbits; Mode ≥ 0 gives every head that mode
// (hplan is not read), −1 reads it from hplan; K clusters in pattern.
// NoQueryAware says that no head has a query-aware cut (qabits is then not
// read and may be any buffer).
type UnionParams struct {
	Hq, NB, VSRows, Mode, K int
	NoQueryAware            bool
}

// PlanUnion records the final block set of every (head, row) as a bitmap
// (shaders/plan_union.comp): rowbits i32 [Hq, nb, nbw] (words 0..r/32 of row
// r) and rowcnt i32 [Hq·nb]. vsbits i32 [Hq, VSRows, nbw]; pattern i32
// [K, nb, nbw] and qabits i32 [Hq, nb, nbw] are read for shared and
// query-aware heads (any buffer when none can occur).
func PlanUnion(r *runtime.Recorder, rowbits, rowcnt, hplan, vsbits, pattern, qabits *runtime.Tensor, p UnionParams) error {
	k, push, grid, err := unionKernel(r, "plan union", "plan_union", 64, rowbits, rowcnt, hplan, vsbits, pattern, qabits, p)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, push[:6], hplan, vsbits, pattern, qabits, rowbits, rowcnt)
}

// PlanUnionScan is PlanUnion followed by PlanScan (with statistics) in one
// dispatch (shaders/plan_union.comp, variant plan_union_scan): the last
// workgroup to finish its row writes rowPtr i32 [Hq·nb+1] and word
// PlanStatBlocks of each head's record in row layer of stats i32
// [L, Hq, PlanStatWords]. counter (i32, one element) must be 0 before the
// first call; each call leaves it 0.
func PlanUnionScan(r *runtime.Recorder, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, stats, counter *runtime.Tensor, layer int, p UnionParams) error {
	const op = "plan union and scan"
	k, push, grid, err := unionKernel(r, op, "plan_union_scan", 256, rowbits, rowcnt, hplan, vsbits, pattern, qabits, p)
	if err != nil {
		return err
	}
	if err := checkUnionOut(op, rowPtr, stats, counter, nil, false, layer, p); err != nil {
		return err
	}
	push[6] = uint32(layer)
	return r.Dispatch(k, grid, push, hplan, vsbits, pattern, qabits, rowbits, rowcnt, rowPtr, stats, counter)
}

// PlanUnionCSR records the final block lists of one layer: PlanUnionScan
// (same arguments and outputs) and then PlanCompact into cols (sized as
// PlanCompact says). While the compaction is short, at most
// planCompactFuseMaxCols columns per invocation of one workgroup
// (⌈Hq·nb/256⌉ rows of at most nb blocks), it runs in the union's last
// workgroup (plan_union_csr), which saves PlanCompact's dispatch and
// barrier; Tuning.PlanCompactSeparate keeps the two dispatches at every
// size. Both write the same rowPtr and cols.
func PlanUnionCSR(r *runtime.Recorder, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, cols, stats, counter *runtime.Tensor, layer int, p UnionParams) error {
	return planUnionCSR(r, compactAuto, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, cols, stats, counter, layer, p)
}

// Where PlanUnionCSR compacts (planUnionCSR's mode).
const (
	compactAuto     = iota // fused while short, unless Tuning.PlanCompactSeparate
	compactFused           // plan_union_csr
	compactSeparate        // plan_union_scan, then plan_compact
)

// planCompactFuseMaxCols bounds the columns one invocation of
// plan_union_csr's last workgroup may have to write (its rows, each of up
// to nb blocks). Those stores are serial per invocation: on an H100
// (bench/RESULTS.md, 2026-12-07, sixth session) bench-lm-8k's plan took
// 0.36 ms fused against 0.34 separate at 8K (128 columns an invocation),
// and 0.66 against 0.38 at 16K (512). 128 keeps the fold where it costs
// no more than the dispatch and barrier it saves.
const planCompactFuseMaxCols = 128

// planUnionCSR is PlanUnionCSR with the compaction's place forced by mode
// (tests).
func planUnionCSR(r *runtime.Recorder, mode int, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, cols, stats, counter *runtime.Tensor, layer int, p UnionParams) error {
	const op = "plan union and CSR"
	if mode == compactAuto {
		mode = compactSeparate
		perInv := (p.Hq*p.NB + 255) / 256 * p.NB
		if perInv <= planCompactFuseMaxCols && !r.Device().Tuning().PlanCompactSeparate {
			mode = compactFused
		}
	}
	if mode == compactSeparate {
		if err := PlanUnionScan(r, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, stats, counter, layer, p); err != nil {
			return err
		}
		return PlanCompact(r, cols, rowbits, rowPtr, p.Hq, p.NB)
	}
	k, push, grid, err := unionKernel(r, op, "plan_union_csr", 256, rowbits, rowcnt, hplan, vsbits, pattern, qabits, p)
	if err != nil {
		return err
	}
	if err := checkUnionOut(op, rowPtr, stats, counter, cols, true, layer, p); err != nil {
		return err
	}
	push[6] = uint32(layer)
	return r.Dispatch(k, grid, push, hplan, vsbits, pattern, qabits, rowbits, rowcnt, rowPtr, stats, counter, cols)
}

// checkUnionOut checks the outputs of the union: layer ≥ 0 and rowPtr,
// stats, counter and, withCols (the union with its compaction), cols i32
// and large enough.
func checkUnionOut(op string, rowPtr, stats, counter, cols *runtime.Tensor, withCols bool, layer int, p UnionParams) error {
	if layer < 0 {
		return fmt.Errorf("%s: layer %d", op, layer)
	}
	outs := []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{{"rowPtr", rowPtr, p.Hq*p.NB + 1}, {"stats", stats, (layer + 1) * p.Hq * PlanStatWords}, {"counter", counter, 1}}
	if withCols {
		outs = append(outs, struct {
			what string
			t    *runtime.Tensor
			n    int
		}{"cols", cols, p.Hq * p.NB * (p.NB + 1) / 2})
	}
	for _, e := range outs {
		if err := checkI32(op, e.what, e.t, e.n); err != nil {
			return err
		}
	}
	return nil
}

// PlanSelectUnionCSR records the SharePrefill plan's VS selection and its
// final block lists: TopKBits(vsbits, v, s, hplan, tp) with tp = TopKParams{
// Rows: Hq, Stride: nb, Len: {nb, nb}, Forced: {1, 1}, Words: nbw,
// KFromBuf: true, KStride: 4, KOff: 2} (vsbits i32 [Hq, 2, nbw]; v, s f32
// [Hq, nb]; the budgets in hplan words 2 and 3), then PlanUnionCSR (p.Mode
// −1, p.VSRows 2). Up to planSelectMaxBlocks blocks, where PlanUnionCSR
// compacts in its last workgroup, and unless Tuning.PlanTopKSeparate, the
// selection runs inside the union's workgroups (plan_union_csr_vs: each
// ranks its head's candidates itself, those of row 0 write vsbits), which
// saves plan_topk's dispatch and barrier. Both write the same vsbits,
// rowPtr and cols.
func PlanSelectUnionCSR(r *runtime.Recorder, vsbits, v, s, rowbits, rowcnt, hplan, pattern, qabits, rowPtr, cols, stats, counter *runtime.Tensor, layer int, p UnionParams) error {
	return planSelectUnionCSR(r, compactAuto, vsbits, v, s, rowbits, rowcnt, hplan, pattern, qabits, rowPtr, cols, stats, counter, layer, p)
}

// planSelectMaxBlocks is the most blocks plan_union_csr_vs takes: nb − 1
// candidates, one per invocation of its 256.
const planSelectMaxBlocks = 257

// planSelectUnionCSR is PlanSelectUnionCSR with the selection's place
// forced by mode (tests): compactFused runs plan_union_csr_vs,
// compactSeparate TopKBits and PlanUnionCSR (which then decides the
// compaction's place itself).
func planSelectUnionCSR(r *runtime.Recorder, mode int, vsbits, v, s, rowbits, rowcnt, hplan, pattern, qabits, rowPtr, cols, stats, counter *runtime.Tensor, layer int, p UnionParams) error {
	const op = "plan select, union and CSR"
	if p.Mode != -1 || p.VSRows != 2 {
		return fmt.Errorf("%s: mode %d and %d VS rows, want -1 and 2 (the SharePrefill plan)", op, p.Mode, p.VSRows)
	}
	if mode == compactAuto {
		mode = compactSeparate
		perInv := (p.Hq*p.NB + 255) / 256 * p.NB
		if p.NB <= planSelectMaxBlocks && perInv <= planCompactFuseMaxCols && !r.Device().Tuning().PlanCompactSeparate && !r.Device().Tuning().PlanTopKSeparate {
			mode = compactFused
		}
	}
	if mode == compactSeparate {
		tp := TopKParams{Rows: p.Hq, Stride: p.NB, Len: [2]int{p.NB, p.NB}, Forced: [2]int{1, 1}, Words: (p.NB + 31) / 32, KFromBuf: true, KStride: 4, KOff: 2}
		if err := TopKBits(r, vsbits, v, s, hplan, tp); err != nil {
			return err
		}
		return PlanUnionCSR(r, rowbits, rowcnt, hplan, vsbits, pattern, qabits, rowPtr, cols, stats, counter, layer, p)
	}
	if p.NB > planSelectMaxBlocks {
		return fmt.Errorf("%s: the selection in the union takes at most %d blocks, have %d", op, planSelectMaxBlocks, p.NB)
	}
	k, push, grid, err := unionKernel(r, op, "plan_union_csr_vs", 256, rowbits, rowcnt, hplan, vsbits, pattern, qabits, p)
	if err != nil {
		return err
	}
	if err := checkUnionOut(op, rowPtr, stats, counter, cols, true, layer, p); err != nil {
		return err
	}
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
	}{{"v", v}, {"s", s}} {
		if err := checkF32Min(op, e.what, e.t, p.Hq*p.NB); err != nil {
			return err
		}
	}
	push[6] = uint32(layer)
	return r.Dispatch(k, grid, push, hplan, vsbits, pattern, qabits, rowbits, rowcnt, rowPtr, stats, counter, cols, v, s)
}

// unionKernel checks PlanUnion's arguments and returns the kernel shader
// (local size local), its push constants (6 words, a 7th for the scan
// variant's layer) and grid.
func unionKernel(r *runtime.Recorder, op, shader string, local int, rowbits, rowcnt, hplan, vsbits, pattern, qabits *runtime.Tensor, p UnionParams) (*runtime.Kernel, [7]uint32, [3]uint32, error) {
	var push [7]uint32
	var grid [3]uint32
	if p.Hq < 1 || p.NB < 1 || p.VSRows < 2 || p.VSRows > 3 || p.Mode < -1 || p.Mode > PlanModeQueryAware {
		return nil, push, grid, fmt.Errorf("%s: Hq %d, nb %d, %d VS rows, mode %d", op, p.Hq, p.NB, p.VSRows, p.Mode)
	}
	hq, nb := p.Hq, p.NB
	nbw := (nb + 31) / 32
	for _, e := range []struct {
		what string
		t    *runtime.Tensor
		n    int
	}{{"rowbits", rowbits, hq * nb * nbw}, {"rowcnt", rowcnt, hq * nb}, {"hplan", hplan, 4 * hq},
		{"vsbits", vsbits, hq * p.VSRows * nbw}, {"pattern", pattern, max(1, p.K*nb*nbw)}, {"qabits", qabits, 1}} {
		if err := checkI32(op, e.what, e.t, e.n); err != nil {
			return nil, push, grid, err
		}
	}
	qa := uint32(0)
	if !p.NoQueryAware && (p.Mode < 0 || p.Mode == PlanModeQueryAware) {
		qa = 1
		if err := checkI32(op, "qabits", qabits, hq*nb*nbw); err != nil {
			return nil, push, grid, err
		}
	}
	d := r.Device()
	grid = [3]uint32{uint32(nb), uint32(hq), 1}
	if err := checkGrid(op, d, grid); err != nil {
		return nil, push, grid, err
	}
	bindings, ro, size := 6, uint32(0b001111), 24
	switch shader {
	case "plan_union_scan":
		bindings, size = 9, 28
	case "plan_union_csr":
		bindings, size = 10, 28
	case "plan_union_csr_vs":
		bindings, ro, size = 12, 0b110000001101, 28 // vsbits (1) is written
	}
	k, err := planKernel(d, shader, bindings, ro, size, local)
	if err != nil {
		return nil, push, grid, err
	}
	push = [7]uint32{uint32(hq), uint32(nb), uint32(nbw), uint32(p.VSRows), uint32(int32(p.Mode)), qa, 0}
	return k, push, grid, nil
}

// PlanScan records the CSR row pointers rowPtr i32 [Hq·nb+1] (exclusive
// prefix sums of rowcnt i32 [Hq·nb]; shaders/plan_scan.comp) and, when stats
// is not nil, each head's block count into word PlanStatBlocks of its record
// in row layer of stats i32 [L, Hq, PlanStatWords].
func PlanScan(r *runtime.Recorder, rowPtr, rowcnt, stats *runtime.Tensor, hq, nb, layer int) error {
	const op = "plan scan"
	if hq < 1 || nb < 1 || layer < 0 {
		return fmt.Errorf("%s: Hq %d, nb %d, layer %d", op, hq, nb, layer)
	}
	if err := checkI32(op, "rowcnt", rowcnt, hq*nb); err != nil {
		return err
	}
	if err := checkI32(op, "rowPtr", rowPtr, hq*nb+1); err != nil {
		return err
	}
	with := uint32(1)
	if stats == nil {
		with, stats = 0, rowPtr
	} else if err := checkI32(op, "stats", stats, (layer+1)*hq*PlanStatWords); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_scan", 3, 0b001, 16, 256)
	if err != nil {
		return err
	}
	return r.Dispatch(k, [3]uint32{1, 1, 1}, [4]uint32{uint32(hq), uint32(nb), uint32(layer), with}, rowcnt, rowPtr, stats)
}

// PlanCompact records the CSR columns (shaders/plan_compact.comp): row r of
// head h writes the set bits of rowbits i32 [Hq, nb, nbw], ascending, to
// cols i32 from rowPtr[h·nb + r] on. cols must hold rowPtr[Hq·nb] elements
// (at most Hq·nb(nb+1)/2; the host never sees the total, so size it for
// the worst case).
func PlanCompact(r *runtime.Recorder, cols, rowbits, rowPtr *runtime.Tensor, hq, nb int) error {
	const op = "plan compact"
	if hq < 1 || nb < 1 {
		return fmt.Errorf("%s: Hq %d, nb %d", op, hq, nb)
	}
	nbw := (nb + 31) / 32
	if err := checkI32(op, "rowbits", rowbits, hq*nb*nbw); err != nil {
		return err
	}
	if err := checkI32(op, "rowPtr", rowPtr, hq*nb+1); err != nil {
		return err
	}
	if err := checkI32(op, "cols", cols, hq*nb*(nb+1)/2); err != nil {
		return err
	}
	d := r.Device()
	grid := [3]uint32{uint32(nb), uint32(hq), 1}
	if err := checkGrid(op, d, grid); err != nil {
		return err
	}
	k, err := planKernel(d, "plan_compact", 3, 0b011, 12, 64)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, [3]uint32{uint32(hq), uint32(nb), uint32(nbw)}, rowbits, rowPtr, cols)
}

// PlanVSBlocks records MInference's block mapping (share.MapVSToBlocks;
// shaders/plan_vsblocks.comp): from tokbits i32 [Hq, 2, ⌈n/32⌉] (kept token
// columns and offsets, TopKBits) it writes vsbits i32 [Hq, 3, nbw]: block
// columns, offsets of full block rows, offsets of the last block row. tile is
// MInference's row tile (min(tile, B) rows).
func PlanVSBlocks(r *runtime.Recorder, vsbits, tokbits *runtime.Tensor, hq, n, b, tile int) error {
	const op = "plan vs blocks"
	if hq < 1 || n < 1 || b < 1 || tile < 1 {
		return fmt.Errorf("%s: Hq %d, n %d, B %d, tile %d", op, hq, n, b, tile)
	}
	nb := (n + b - 1) / b
	nbw, nwt := (nb+31)/32, (n+31)/32
	if err := checkI32(op, "tokbits", tokbits, hq*2*nwt); err != nil {
		return err
	}
	if err := checkI32(op, "vsbits", vsbits, hq*3*nbw); err != nil {
		return err
	}
	d := r.Device()
	k, err := planKernel(d, "plan_vsblocks", 2, 0b01, 28, 64)
	if err != nil {
		return err
	}
	push := [7]uint32{uint32(hq), uint32(n), uint32(b), uint32(min(tile, b)), uint32(nb), uint32(nbw), uint32(nwt)}
	return r.Dispatch(k, [3]uint32{uint32(hq), 1, 1}, push, tokbits, vsbits)
}

// BlockMapIndirect is BlockMap with the workgroup counts (g, nb, z) read by
// the GPU at byte off of counts (PlanDecide's pivot chunks): slot x < z
// computes the map of head heads[x] into out[x]. heads i32 [nheads] and
// out f32 [nheads, nb, nb] are sized for the most slots; z ≤ nheads must
// hold (PlanDecide guarantees it). The kernel is BlockMap's (BlockMapKernel):
// every variant takes the grid (slot group, r, slot), kpw =
// blockMapIndirectBlocksPerGroup(nb) key blocks per workgroup: g ≥
// ⌈nb/kpw⌉ (PlanParams.BlockMapGroups, what PlanDecide writes; a larger g
// such as nb only adds workgroups that leave at once).
func BlockMapIndirect(r *runtime.Recorder, counts *runtime.Tensor, off uint64, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	return blockMapIndirect(r, "", counts, off, out, q, k, lse, heads, p)
}

// blockMapIndirect is BlockMapIndirect on variant ("" for the device's
// choice).
func blockMapIndirect(r *runtime.Recorder, variant string, counts *runtime.Tensor, off uint64, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	const op = "block map (indirect)"
	if err := checkBlockMapArgs(op, out, q, k, lse, heads, p); err != nil {
		return err
	}
	if err := checkI32(op, "counts", counts, 3); err != nil {
		return err
	}
	kb, err := blockMapKernel(op, r, false, p, variant, false)
	if err != nil {
		return err
	}
	nb := p.NB()
	kpw := blockMapIndirectBlocksPerGroup(nb)
	if err := checkGrid(op, r.Device(), [3]uint32{uint32(blockMapGroups(nb, kpw)), uint32(nb), uint32(heads.Len())}); err != nil {
		return err
	}
	return r.DispatchIndirect(kb, counts, off, blockMapPush(p, heads.Len(), kpw), q, k, lse, heads, out)
}
