package kernels

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/runtime"
)

// EstParams describes the shapes read by the estimation and block-map
// kernels (docs/algorithm.md#online-phase).
//
// Layouts: Q [S, Hq, D] f16, K [S, Hkv, D] f16 (query head h reads KV head
// h / (Hq/Hkv)). Blocks have B tokens, nb = ⌈S/B⌉, the last block may be
// partial. Scores are s_ij = Scale · q_i·k_j; Scale 0 means 1/√D.
type EstParams struct {
	Hq, Hkv, D, S, B int
	Scale            float32
}

// NB returns ⌈S/B⌉.
func (p EstParams) NB() int { return (p.S + p.B - 1) / p.B }

// W returns the estimate window min(B, S): the number of last queries used
// by the last-block and pooled estimates.
func (p EstParams) W() int { return min(p.B, p.S) }

func (p EstParams) scale() float32 {
	if p.Scale == 0 {
		return float32(1 / math.Sqrt(float64(p.D)))
	}
	return p.Scale
}

func (p EstParams) check(op string) error {
	switch {
	case p.Hq < 1 || p.Hkv < 1 || p.Hq%p.Hkv != 0:
		return fmt.Errorf("%s: Hq = %d and Hkv = %d: need Hq a positive multiple of Hkv", op, p.Hq, p.Hkv)
	case p.D < 1 || p.D > 1024:
		return fmt.Errorf("%s: head dim D = %d outside [1, 1024]", op, p.D)
	case p.S < 1:
		return fmt.Errorf("%s: sequence length S = %d < 1", op, p.S)
	case p.B < 1 || p.B > 1024:
		return fmt.Errorf("%s: block size B = %d outside [1, 1024]", op, p.B)
	case math.IsNaN(float64(p.Scale)) || math.IsInf(float64(p.Scale), 0):
		return fmt.Errorf("%s: scale %v is not finite", op, p.Scale)
	}
	return nil
}

// checkTensor validates dtype and element count of one argument.
func checkTensor(op, what string, t *runtime.Tensor, dt runtime.DType, n int, shape string) error {
	if t == nil {
		return fmt.Errorf("%s: %s is nil", op, what)
	}
	if t.DType() != dt {
		return fmt.Errorf("%s: %s (%s) is %s, want %s", op, what, t.Name(), t.DType(), dt)
	}
	if t.Len() != n {
		return fmt.Errorf("%s: %s (%s) has %d elements, want %s = %d", op, what, t.Name(), t.Len(), shape, n)
	}
	return nil
}

func checkQK(op string, q, k *runtime.Tensor, p EstParams) error {
	if err := checkTensor(op, "q", q, runtime.F16, p.S*p.Hq*p.D, fmt.Sprintf("[S=%d, Hq=%d, D=%d]", p.S, p.Hq, p.D)); err != nil {
		return err
	}
	return checkTensor(op, "k", k, runtime.F16, p.S*p.Hkv*p.D, fmt.Sprintf("[S=%d, Hkv=%d, D=%d]", p.S, p.Hkv, p.D))
}

func checkGrid(op string, d *runtime.Device, g [3]uint32) error {
	mx := d.Info().MaxWorkgroupCount
	for i := range g {
		if g[i] > mx[i] {
			return fmt.Errorf("%s: grid %v exceeds the device's workgroup count limit %v", op, g, mx)
		}
	}
	return nil
}

// estTile picks the side T of the T×T score sub-tile (local size T²) for
// head dim d and block size b so that the shared arrays of est_last and
// blockmap fit the device's shared memory.
func estTile(op string, caps runtime.Caps, d, b int) (int, error) {
	for _, t := range []int{16, 8, 4} {
		words := 2*t*(d+1) + t*(t+1) + 3*b + t + t*t
		if 4*words <= int(caps.MaxSharedMemory) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%s: head dim %d and block %d do not fit %d bytes of shared memory", op, d, b, caps.MaxSharedMemory)
}

const (
	estLocal   = 64  // est_pool, est_softmax, est_last_lse, est_last_slash
	coverLocal = 256 // est_cover (est_cover_bins: coverBinsConfig)
)

// EstWorkspace holds the scratch buffers of the estimation kernels. Make it
// with NewEstWorkspace for the largest shapes it will serve; it may be used
// for any EstParams with the same or smaller sizes. Free it after the last
// Submit that used it. The first LastBlockEstimates recorded with it also
// records the zeroing of its counters: submit that recording before
// another one uses the workspace (if it is discarded instead, free the
// workspace).
type EstWorkspace struct {
	stats *runtime.Tensor // f32 [Hq, nb, W, 2]: per-block row max and sum
	lse   *runtime.Tensor // f32 [Hq, W]
	spart *runtime.Tensor // f32 [Hq, nb, 2B]: slash partials
	qbar  *runtime.Tensor // f32 [nb, Hq, D]
	kbar  *runtime.Tensor // f32 [nb, Hkv, D]
	ctr   *runtime.Tensor // u32 [ctrLen]: the fused LSE's per-head, the fused slash's per-chunk and est_cover_hist's per-(head, vector) counters, 0 between dispatches
	hist  *runtime.Tensor // u32 [coverHistLen]: est_cover_hist's chunk histograms
	// coverOff is where est_cover_hist's counters start in ctr (the
	// workspace's coverCtrOff: CoverCounts' own EstParams may lack B).
	coverOff int
	zeros    *runtime.HostBuffer
	armed    bool // a zeroing of ctr has been recorded
}

type wsSizes struct{ stats, lse, spart, qbar, kbar int }

// slashCtrOff is where the fused slash combination's counters start in
// the estimate's counters: after the Hq of the fused LSE, at a multiple of
// 256 bytes (the largest storage-buffer offset alignment Vulkan allows).
func (p EstParams) slashCtrOff() int { return (p.Hq + 63) / 64 * 64 }

// coverCtrOff is where est_cover_hist's counters start in the estimate's
// counters: after the fused slash combination's, at a multiple of 256
// bytes.
func (p EstParams) coverCtrOff() int { return (p.slashCtrOff() + p.Hq*p.NB() + 63) / 64 * 64 }

// ctrLen is the count of the estimate's counters: Hq for the fused LSE,
// then Hq·nb for the fused slash combination from slashCtrOff, then 2·Hq
// for est_cover_hist from coverCtrOff.
func (p EstParams) ctrLen() int { return p.coverCtrOff() + 2*p.Hq }

// coverHistLen is the size of est_cover_hist's scratch for p: 3·256
// words per chunk and (head, vector), for min(coverHistMaxChunks,
// ⌈S/coverHistMinChunk⌉) chunks, which bounds the chunks of
// coverHistChunk at any length up to S.
func (p EstParams) coverHistLen() int {
	return 2 * p.Hq * min(coverHistMaxChunks, (p.S+coverHistMinChunk-1)/coverHistMinChunk) * 3 * coverHistBins
}

func (p EstParams) wsSizes() wsSizes {
	nb, w := p.NB(), p.W()
	return wsSizes{
		stats: 2 * p.Hq * nb * w,
		lse:   p.Hq * w,
		spart: 2 * p.Hq * nb * p.B,
		qbar:  nb * p.Hq * p.D,
		kbar:  nb * p.Hkv * p.D,
	}
}

// NewEstWorkspace allocates the scratch buffers for p (about
// Hq·S·(4 + D/B)·4 bytes: O(S) per head, never S×S).
func NewEstWorkspace(d *runtime.Device, p EstParams) (*EstWorkspace, error) {
	if err := p.check("estimation workspace"); err != nil {
		return nil, err
	}
	sz := p.wsSizes()
	ws := &EstWorkspace{}
	for _, e := range []struct {
		dst  **runtime.Tensor
		name string
		n    int
	}{
		{&ws.stats, "est.stats", sz.stats},
		{&ws.lse, "est.lse", sz.lse},
		{&ws.spart, "est.slash_partials", sz.spart},
		{&ws.qbar, "est.qbar", sz.qbar},
		{&ws.kbar, "est.kbar", sz.kbar},
	} {
		t, err := d.NewNamedTensor(e.name, runtime.F32, e.n)
		if err != nil {
			ws.Free()
			return nil, fmt.Errorf("estimation workspace: %w", err)
		}
		*e.dst = t
	}
	// The counters are zeroed by a copy that the first estimate records
	// (an upload here would make the host wait).
	ctr, err := d.NewNamedTensor("est.counters", runtime.I32, p.ctrLen())
	if err == nil {
		ws.ctr = ctr
		ws.coverOff = p.coverCtrOff()
		ws.hist, err = d.NewNamedTensor("est.cover_hist", runtime.I32, p.coverHistLen())
	}
	if err == nil {
		ws.zeros, err = d.NewHostBuffer(uint64(4 * p.ctrLen()))
	}
	if err == nil {
		clear(ws.zeros.Bytes())
	}
	if err != nil {
		ws.Free()
		return nil, fmt.Errorf("estimation workspace: %w", err)
	}
	return ws, nil
}

// Free releases the workspace buffers.
func (ws *EstWorkspace) Free() {
	if ws == nil {
		return
	}
	for _, t := range []*runtime.Tensor{ws.stats, ws.lse, ws.spart, ws.qbar, ws.kbar, ws.ctr, ws.hist} {
		if t != nil {
			t.Free()
		}
	}
	ws.zeros.Free()
	*ws = EstWorkspace{}
}

// arm records the zeroing of ws's counters unless an earlier recording
// has: the kernels that count on them (the fused LSE and slash tails,
// est_cover_hist) leave them at 0 after each use.
func (ws *EstWorkspace) arm(r *runtime.Recorder) error {
	if ws.armed {
		return nil
	}
	if err := r.CopyFromHost(ws.ctr, 0, ws.zeros, 0, uint64(4*ws.ctr.Len())); err != nil {
		return err
	}
	ws.armed = true
	return nil
}

func (ws *EstWorkspace) fits(op string, p EstParams) error {
	if ws == nil || ws.stats == nil {
		return fmt.Errorf("%s: nil or freed workspace", op)
	}
	sz := p.wsSizes()
	for _, e := range []struct {
		t    *runtime.Tensor
		need int
	}{{ws.stats, sz.stats}, {ws.lse, sz.lse}, {ws.spart, sz.spart}, {ws.qbar, sz.qbar}, {ws.kbar, sz.kbar}, {ws.ctr, p.ctrLen()}, {ws.hist, p.coverHistLen()}} {
		if e.t.Len() < e.need {
			return fmt.Errorf("%s: workspace %s has %d elements, need %d for %+v (make it with NewEstWorkspace for the largest shapes)", op, e.t.Name(), e.t.Len(), e.need, p)
		}
	}
	return nil
}

// LastBlockEstimates records the last-block estimates of every query head
// (docs/algorithm.md#last-block-estimates). With W = min(B, S) and P the f32 row softmax of
// the last W queries (rows S−W..S−1) against all keys, causal inside the
// last W×W corner:
//
//	v[h][j]    = (1/W) Σ_t P[t, j]                       f32 [Hq, S]
//	s[h][o]    = (1/W) Σ_{i_t − j = o} P[t, j]           f32 [Hq, S], o = 0..S−1
//	vBlk[h][c] = Σ_{j ∈ block c} v[h][j]                 f32 [Hq, nb]
//	sBlk[h][b] = Σ_{o ∈ [bB, min(bB+B, S))} s[h][o]      f32 [Hq, nb]
//
// Slash pooling is anchored at the main diagonal (offset 0 starts block 0),
// so when S mod B ≠ 0 the partial chunk is the last, farthest one; this is
// the float64 reference's pooling (ref.PoolBlocks in internal/ref). Each of
// v, s, vBlk, sBlk sums to 1.
//
// Two to four dispatches: row statistics per (key block, head), their
// combination into ℓ_t, a second score pass accumulating column and
// diagonal sums, and the slash combination. P is never stored; scratch
// lives in ws. Up to estFuseLSEMaxBlocks key blocks the combination into
// ℓ_t runs inside the statistics pass, in the last of a head's workgroups
// to finish (est_lse.glsl), which saves a dispatch and a barrier; ℓ then
// differs from the separate pass's by f32 rounding only. The slash
// combination runs inside the second score pass, each chunk of B offsets
// in the workgroup that completes its partials (est_slash.glsl), unless
// the device's Tuning sets EstSlashSeparate; s is then the same, and sBlk
// differs from the separate pass's by f32 rounding only.
//
// The two score passes run the first kernel of the device's "estimate"
// variant table that applies (variants.go, EstimateKernel): cooperative
// matrices (qk_cm.go) where the device has them and D is a multiple of
// 16, else the scalar kernel; they agree within 1e-4 relative per entry
// (about 1e-6 seen).
func LastBlockEstimates(r *runtime.Recorder, ws *EstWorkspace, v, s, vBlk, sBlk, q, k *runtime.Tensor, p EstParams) error {
	return lastBlockEstimates(r, estCfg{}, ws, v, s, vBlk, sBlk, q, k, p)
}

// estFuseLSEMaxBlocks is the most key blocks for which the statistics pass
// combines ℓ_t itself: its last workgroup per head reads nb·W statistics
// (256 blocks: 32K tokens at B = 128), while the separate pass spreads them
// over W·Hq workgroups, which wins once a tail that long outlasts a
// dispatch gap.
const estFuseLSEMaxBlocks = 256

// Whether the statistics pass combines ℓ_t (estCfg.lse).
const (
	lseAuto     = iota // fused up to estFuseLSEMaxBlocks key blocks
	lseFused           // est_last_*stats_lse
	lseSeparate        // est_last_lse after the statistics pass
)

// estCfg forces parts of LastBlockEstimates (tests): variant of the score
// passes ("" for the device's choice), kpw key blocks per workgroup in the
// cooperative-matrix score passes (0 for estBlocksPerGroup's choice; the
// scalar passes take one), where ℓ_t is combined, and noPrefetch: the
// cooperative-matrix passes without the K-tile prefetch, as with
// Tuning.EstPrefetchOff.
type estCfg struct {
	variant    string
	kpw        int
	lse        int
	slash      int
	noPrefetch bool
}

// Whether the V pass combines the slash partials (estCfg.slash).
const (
	slashAuto     = iota // fused unless Tuning.EstSlashSeparate
	slashFused           // est_last_*vs_slash
	slashSeparate        // est_last_slash after the V pass
)

// lastBlockEstimates is LastBlockEstimates with parts forced by c.
func lastBlockEstimates(r *runtime.Recorder, c estCfg, ws *EstWorkspace, v, s, vBlk, sBlk, q, k *runtime.Tensor, p EstParams) error {
	const op = "last-block estimates"
	if err := p.check(op); err != nil {
		return err
	}
	if err := checkQK(op, q, k, p); err != nil {
		return err
	}
	nb, w := p.NB(), p.W()
	for _, e := range []struct {
		name string
		t    *runtime.Tensor
		n    int
	}{{"v", v, p.S}, {"s", s, p.S}, {"vBlk", vBlk, nb}, {"sBlk", sBlk, nb}} {
		if err := checkTensor(op, e.name, e.t, runtime.F32, p.Hq*e.n, fmt.Sprintf("[Hq=%d, %d]", p.Hq, e.n)); err != nil {
			return err
		}
	}
	if err := ws.fits(op, p); err != nil {
		return err
	}
	d := r.Device()
	grid := [3]uint32{uint32(nb), uint32(p.Hq), 1}
	if err := checkGrid(op, d, grid); err != nil {
		return err
	}
	variant, kpw := c.variant, c.kpw
	fuse := c.lse == lseFused || c.lse == lseAuto && nb <= estFuseLSEMaxBlocks
	fuseSlash := c.slash == slashFused || c.slash == slashAuto && !d.Tuning().EstSlashSeparate
	kStats, kVS, cm, err := estScoreKernels(op, d, p, variant, fuse, fuseSlash, c.noPrefetch)
	if err != nil {
		return err
	}
	kLSE, err := d.Kernel(runtime.KernelDesc{Shader: "est_last_lse", Bindings: 2, ReadOnly: 0b01, PushSize: 20, Spec: []uint32{estLocal}})
	if err != nil {
		return err
	}
	kSlash, err := d.Kernel(runtime.KernelDesc{Shader: "est_last_slash", Bindings: 3, ReadOnly: 0b001, PushSize: 20, Spec: []uint32{estLocal}})
	if err != nil {
		return err
	}
	var push any = struct {
		S, Hq, Hkv, NB, W uint32
		Scale             float32
	}{uint32(p.S), uint32(p.Hq), uint32(p.Hkv), uint32(nb), uint32(w), p.scale()}
	scoreGrid := grid
	if cm {
		if kpw <= 0 {
			kpw = estBlocksPerGroup(nb, p.Hq, d.Tuning().EstBlocksPerGroup)
		}
		kpw = min(kpw, nb)
		scoreGrid[0] = uint32((nb + kpw - 1) / kpw)
		push = struct {
			S, Hq, Hkv, NB, W uint32
			Scale             float32
			KPW               uint32
		}{uint32(p.S), uint32(p.Hq), uint32(p.Hkv), uint32(nb), uint32(w), p.scale(), uint32(kpw)}
	}
	push2 := [5]uint32{uint32(p.S), uint32(p.Hq), uint32(nb), uint32(w), uint32(p.B)}
	sz := p.wsSizes()
	stats := ws.stats.Slice(0, sz.stats)
	lse := ws.lse.Slice(0, sz.lse)
	spart := ws.spart.Slice(0, sz.spart)
	if fuse || fuseSlash {
		if err := ws.arm(r); err != nil {
			return err
		}
	}
	if fuse {
		if err := r.Dispatch(kStats, scoreGrid, push, q, k, stats, lse, ws.ctr.Slice(0, p.Hq)); err != nil {
			return err
		}
	} else {
		if err := r.Dispatch(kStats, scoreGrid, push, q, k, stats); err != nil {
			return err
		}
		if err := r.Dispatch(kLSE, [3]uint32{uint32(w), uint32(p.Hq), 1}, push2, stats, lse); err != nil {
			return err
		}
	}
	if fuseSlash {
		return r.Dispatch(kVS, scoreGrid, push, q, k, lse, v, vBlk, spart, s, sBlk, ws.ctr.Slice(p.slashCtrOff(), p.Hq*nb))
	}
	if err := r.Dispatch(kVS, scoreGrid, push, q, k, lse, v, vBlk, spart); err != nil {
		return err
	}
	return r.Dispatch(kSlash, grid, push2, spart, s, sBlk)
}

// estScoreKernels returns the pipelines of the last-block estimate's two
// score passes (statistics, then V and slash partials) of variant ("" for
// the device's choice, qkPick), and whether they are the
// cooperative-matrix ones. Both variants take the same bindings; the
// scalar passes take 24 bytes of push constants and grid (nb, Hq), the
// cooperative-matrix ones 28 (kpw added) and grid (⌈nb/kpw⌉, Hq). With
// fuseLSE the statistics pass is the one that also combines ℓ_t (two more
// bindings: lse, the per-head counters); with fuseSlash the V pass is the
// one that also combines the slash partials (three more: s, sBlk, the
// per-chunk counters). noPrefetch turns the cooperative-matrix passes'
// K-tile prefetch off (qkCMKernel).
func estScoreKernels(op string, d *runtime.Device, p EstParams, variant string, fuseLSE, fuseSlash, noPrefetch bool) (stats, vs *runtime.Kernel, coopmat bool, err error) {
	v, cm, err := qkPick(d, "estimate", op, p, variant)
	if err != nil {
		return nil, nil, false, err
	}
	statsName, statsBind, statsRO := "_stats", 3, uint32(0b011)
	if fuseLSE {
		statsName, statsBind = "_stats_lse", 5
	}
	vsName, vsBind := "_vs", 6
	if fuseSlash {
		vsName, vsBind = "_vs_slash", 9
	}
	if v == "coopmat" {
		if stats, err = qkCMKernel(d, "est_last_cm"+statsName, statsBind, statsRO, 28, cm, p.D, p.B, noPrefetch); err != nil {
			return nil, nil, false, err
		}
		vs, err = qkCMKernel(d, "est_last_cm"+vsName, vsBind, 0b000111, 28, cm, p.D, p.B, noPrefetch)
		return stats, vs, true, err
	}
	t, err := estTile(op, d.Caps(), p.D, p.B)
	if err != nil {
		return nil, nil, false, err
	}
	spec := []uint32{uint32(t * t), uint32(t), uint32(p.D), uint32(p.B)}
	if stats, err = d.Kernel(runtime.KernelDesc{Shader: "est_last" + statsName, Bindings: statsBind, ReadOnly: statsRO, PushSize: 24, Spec: spec}); err != nil {
		return nil, nil, false, err
	}
	vs, err = d.Kernel(runtime.KernelDesc{Shader: "est_last" + vsName, Bindings: vsBind, ReadOnly: 0b000111, PushSize: 24, Spec: spec})
	return stats, vs, false, err
}

// pool records out[g][h][:] = mul · mean of rows [start+g·l, min(start+(g+1)·l, S)) of x [S, h, D].
func pool(r *runtime.Recorder, out runtime.Arg, x *runtime.Tensor, s, h, dim, l, start, ngroups int, mul float32) error {
	d := r.Device()
	kp, err := d.Kernel(runtime.KernelDesc{Shader: "est_pool", Bindings: 2, ReadOnly: 0b01, PushSize: 28, Spec: []uint32{estLocal}})
	if err != nil {
		return err
	}
	n := ngroups * h * dim
	return r.Dispatch(kp, d.Groups1D(n, estLocal), struct {
		S, H, D, L, Start, NGroups uint32
		Mul                        float32
	}{uint32(s), uint32(h), uint32(dim), uint32(l), uint32(start), uint32(ngroups), mul}, x, out)
}

func pooledSoftmax(r *runtime.Recorder, out *runtime.Tensor, qbar, kbar runtime.Arg, nrows int, causal bool, p EstParams) error {
	d := r.Device()
	ks, err := d.Kernel(runtime.KernelDesc{Shader: "est_softmax", Bindings: 3, ReadOnly: 0b011, PushSize: 24, Spec: []uint32{estLocal, uint32(p.D)}})
	if err != nil {
		return err
	}
	c := uint32(0)
	if causal {
		c = 1
	}
	grid := [3]uint32{uint32(nrows), uint32(p.Hq), 1}
	if err := checkGrid("pooled softmax", d, grid); err != nil {
		return err
	}
	return r.Dispatch(ks, grid, struct {
		NRows, NB, Hq, Hkv, Causal uint32
		Scale                      float32
	}{uint32(nrows), uint32(p.NB()), uint32(p.Hq), uint32(p.Hkv), c, p.scale()}, qbar, kbar, out)
}

// PooledEstimate records the pooled estimate â (docs/algorithm.md#query-aware-gate):
// q̄ = mean of the last W = min(B, S) queries of each head, k̄_c = mean of
// the keys of block c (the last partial block over its valid keys) per KV
// head, â[h] = softmax over c of Scale·q̄·k̄_c with no causal mask.
// a: f32 [Hq, nb]. q̄ and k̄ go through ws as f32.
func PooledEstimate(r *runtime.Recorder, ws *EstWorkspace, a, q, k *runtime.Tensor, p EstParams) error {
	const op = "pooled estimate"
	if err := p.check(op); err != nil {
		return err
	}
	if err := checkQK(op, q, k, p); err != nil {
		return err
	}
	nb := p.NB()
	if err := checkTensor(op, "a", a, runtime.F32, p.Hq*nb, fmt.Sprintf("[Hq=%d, nb=%d]", p.Hq, nb)); err != nil {
		return err
	}
	if err := ws.fits(op, p); err != nil {
		return err
	}
	qbar := ws.qbar.Slice(0, p.Hq*p.D)
	kbar := ws.kbar.Slice(0, nb*p.Hkv*p.D)
	w := p.W()
	if err := pool(r, qbar, q, p.S, p.Hq, p.D, w, p.S-w, 1, 1); err != nil {
		return err
	}
	if err := pool(r, kbar, k, p.S, p.Hkv, p.D, p.B, 0, nb, 1); err != nil {
		return err
	}
	return pooledSoftmax(r, a, qbar, kbar, 1, false, p)
}

// PooledBlockScores records the pooled block map M of query-aware heads
// (docs/algorithm.md#query-aware-selection): queries and keys mean-pooled per block (the last
// partial block over its valid rows), M[h][r][c] = softmax over c ≤ r of
// Scale·Q̄_r·K̄_c, zeros above the diagonal, so every row sums to 1.
// m: f32 [Hq, nb, nb].
func PooledBlockScores(r *runtime.Recorder, ws *EstWorkspace, m, q, k *runtime.Tensor, p EstParams) error {
	const op = "pooled block scores"
	if err := p.check(op); err != nil {
		return err
	}
	if err := checkQK(op, q, k, p); err != nil {
		return err
	}
	nb := p.NB()
	if err := checkTensor(op, "m", m, runtime.F32, p.Hq*nb*nb, fmt.Sprintf("[Hq=%d, nb=%d, nb=%d]", p.Hq, nb, nb)); err != nil {
		return err
	}
	if err := ws.fits(op, p); err != nil {
		return err
	}
	qbar := ws.qbar.Slice(0, nb*p.Hq*p.D)
	kbar := ws.kbar.Slice(0, nb*p.Hkv*p.D)
	if err := pool(r, qbar, q, p.S, p.Hq, p.D, p.B, 0, nb, 1); err != nil {
		return err
	}
	if err := pool(r, kbar, k, p.S, p.Hkv, p.D, p.B, 0, nb, 1); err != nil {
		return err
	}
	return pooledSoftmax(r, m, qbar, kbar, nb, true, p)
}

// CoverCounts records the γ budget counts (docs/algorithm.md#budgets) of every head:
// counts[h] = (k_v, k_s), with k(x) = min(1 + m*, S) and m* the largest m
// such that the m largest entries of x sum to ≤ γ·Σx (the sorted prefix
// that stays within γ, plus the crossing entry). For distributions with
// Σx = 1 this is share.TokenBudget. It needs no sort: a search on the
// float bit patterns, 4 bits a pass, finds the crossing value (≤ 8 passes
// over x), and ties at the crossing value are resolved arithmetically, so
// the count equals the sort-based one whatever the order of equal
// entries; where a prefix sum lies within f32 rounding of γ·Σx it may
// differ by one. v, s: f32 [Hq, S], entries ≥ 0; counts: i32 [Hq, 2]. ws
// is the estimate's workspace made for p's heads and length or larger
// (est_cover_hist keeps its histograms and counters there; the first
// CoverCounts or LastBlockEstimates recorded with it also records the
// zeroing of its counters, as LastBlockEstimates says).
//
// It runs the first kernel of the device's "cover" variant table
// (variants.go), or the one Tuning.Cover names: est_cover_sg (the
// reference's search with the vector cached in shared memory and the probe
// sums added with subgroup operations, one barrier a pass; est_cover.comp
// with SG) where the device has subgroup arithmetic; est_cover (15
// compares per entry and pass, shared-memory trees), the reference;
// est_cover_hist (grid (⌈S/CH⌉, Hq, 2): chunk histograms over the
// exponent, then the last workgroup of a (head, vector) searches inside
// the crossing bin only; est_cover_hist.comp) and est_cover_bins (each
// entry read into one of 16 private bins per pass, the probe sums reduced
// with subgroup operations where the device has them;
// est_cover_bins.comp) when named or forced (tests).
func CoverCounts(r *runtime.Recorder, ws *EstWorkspace, counts, v, s *runtime.Tensor, gamma float32, p EstParams) error {
	return coverCounts(r, coverCfg{}, ws, counts, v, s, gamma, p)
}

// coverCfg forces a CoverCounts kernel (tests): variant "" is the device's
// choice (Tuning.Cover, else the table), "sg", "hist", "bins" or
// "probes"; local > 0 sets est_cover_bins', est_cover_sg's or
// est_cover_hist's workgroup size, noSubgroup est_cover_bins'
// shared-memory reduction, cache > 0 bounds est_cover_sg's cached entries
// or est_cover_hist's gathered ones, and chunk > 0 sets est_cover_hist's
// chunk.
type coverCfg struct {
	variant    string
	local      int
	noSubgroup bool
	cache      int
	chunk      int
}

// scan reports whether est_cover_sg walks every cached entry in every
// search pass (variant "sg-scan") instead of dropping those below the
// bracket (its COMPACT spec constant off; the same counts).
func (c coverCfg) scan(d *runtime.Device) bool {
	v := c.variant
	if v == "" {
		v = d.Tuning().Cover.Variant
	}
	return v == "sg-scan"
}

// coverSGMaxCache is the most entries est_cover_sg caches in shared memory
// (64 KiB; devices with less take what fits).
const coverSGMaxCache = 16384

// coverLocalSize is a cover kernel's workgroup size: c.local, else
// Tuning.Cover.WG, else coverLocal.
func coverLocalSize(d *runtime.Device, c coverCfg) int {
	if c.local > 0 {
		return c.local
	}
	if wg := int(d.Tuning().Cover.WG); wg > 0 {
		return wg
	}
	return coverLocal
}

// coverSGConfig returns est_cover_sg's spec constants for the device: local
// size c.local (Tuning.Cover.WG when 0, else coverLocal), CN, the entries
// cached (what fits the shared memory with 512 bytes to spare, at most
// coverSGMaxCache, or c.cache), PARTS ≥ the workgroup's subgroups and
// COMPACT (off for the variant "sg-scan"); ok
// is false when the device has no subgroup arithmetic or the local size
// exceeds its invocation limit.
func coverSGConfig(d *runtime.Device, c coverCfg) (spec []uint32, ok bool) {
	caps, info := d.Caps(), d.Info()
	l := coverLocalSize(d, c)
	if !caps.SubgroupArithmetic || l > int(info.MaxWorkgroupInvocations) {
		return nil, false
	}
	minSG := int(info.MinSubgroupSize)
	if minSG < 1 {
		minSG = max(1, int(caps.SubgroupSize))
	}
	parts := (l + minSG - 1) / minSG
	rest := 4*(2*15*parts+6*parts) + 512
	cn := min((int(caps.MaxSharedMemory)-rest)/4, coverSGMaxCache)
	if c.cache > 0 {
		cn = min(cn, c.cache)
	}
	if cn < 1 {
		return nil, false
	}
	return []uint32{uint32(l), uint32(cn), uint32(parts), attnBool(!c.scan(d))}, true
}

// coverBinsShared returns the shared memory bytes of est_cover_bins at
// local size l with parts subgroup partials (0: the tree reduction).
func coverBinsShared(l, parts int) int {
	const nbin = 16
	if parts == 0 {
		return 4 * ((nbin+1)*l + nbin*l + 2*l)
	}
	return 4 * ((nbin+1)*l + 2*nbin*parts + 2*parts)
}

// coverBinsConfig returns est_cover_bins' spec constants for the device:
// the largest local size of 512, 256, 128, 64 within its invocation limit
// whose shared arrays fit with 512 bytes to spare (ok false when none
// does), SUBGROUP where it has subgroup arithmetic (unless noSubgroup),
// CACHE 16 and PARTS ≥ the workgroup's subgroups.
func coverBinsConfig(d *runtime.Device, c coverCfg) (spec []uint32, ok bool) {
	caps, info := d.Caps(), d.Info()
	sub := caps.SubgroupArithmetic && !c.noSubgroup
	minSG := int(info.MinSubgroupSize)
	if minSG < 1 {
		minSG = max(1, int(caps.SubgroupSize))
	}
	locals := []int{512, 256, 128, 64}
	if c.local > 0 {
		locals = []int{c.local}
	} else if wg := d.Tuning().Cover.WG; wg > 0 {
		locals = []int{int(wg)}
	}
	for _, l := range locals {
		parts := 0
		if sub {
			parts = (l + minSG - 1) / minSG
		}
		if l > int(info.MaxWorkgroupInvocations) || coverBinsShared(l, parts)+512 > int(caps.MaxSharedMemory) {
			continue
		}
		b := uint32(0)
		if sub {
			b = 1
		}
		return []uint32{uint32(l), b, 16, uint32(max(parts, 1))}, true
	}
	return nil, false
}

// est_cover_hist's shape: the exponent bins, the default chunk's least
// size and the most chunks of a (head, vector).
const (
	coverHistBins      = 256
	coverHistMinChunk  = 1024
	coverHistMaxChunks = 64
	coverHistMaxCap    = 8192 // the most entries of the search bin kept in shared memory
	coverHistMaxS      = 1 << 20
)

// coverHistChunk returns est_cover_hist's default chunk for length n: 1024
// entries, or the power of two that keeps the chunks within
// coverHistMaxChunks.
func coverHistChunk(n int) int {
	ch := coverHistMinChunk
	for (n+ch-1)/ch > coverHistMaxChunks {
		ch *= 2
	}
	return ch
}

// coverHistConfig returns est_cover_hist's spec constants for the device
// and length n: local size c.local (Tuning.Cover.WG when 0, else
// coverLocal), CH (c.chunk or coverHistChunk), CAP (what fits the shared
// memory with 512 bytes to spare, at most coverHistMaxCap, or c.cache)
// and PARTS ≥ the workgroup's subgroups; err says why the device cannot
// run it.
func coverHistConfig(d *runtime.Device, c coverCfg, n int) (spec []uint32, err error) {
	caps, info := d.Caps(), d.Info()
	l := coverLocalSize(d, c)
	switch {
	case !caps.SubgroupArithmetic:
		return nil, fmt.Errorf("est_cover_hist needs subgroup arithmetic")
	case l < 16 || l&(l-1) != 0 || l > int(info.MaxWorkgroupInvocations):
		return nil, fmt.Errorf("est_cover_hist: local size %d is not a power of two in [16, %d]", l, info.MaxWorkgroupInvocations)
	}
	minSG := int(info.MinSubgroupSize)
	if minSG < 1 {
		minSG = max(1, int(caps.SubgroupSize))
	}
	parts := (l + minSG - 1) / minSG
	rest := 4*(3*coverHistBins+2*coverHistBins+16+2*3*15*parts+4) + 512
	capn := min((int(caps.MaxSharedMemory)-rest)/4, coverHistMaxCap)
	if c.cache > 0 {
		capn = min(capn, c.cache)
	}
	if capn < 1 {
		return nil, fmt.Errorf("est_cover_hist: %d bytes of shared memory do not hold its %d-byte arrays", caps.MaxSharedMemory, rest)
	}
	ch := c.chunk
	if ch <= 0 {
		ch = coverHistChunk(n)
	}
	return []uint32{uint32(l), uint32(ch), uint32(capn), uint32(parts)}, nil
}

func coverCounts(r *runtime.Recorder, c coverCfg, ws *EstWorkspace, counts, v, s *runtime.Tensor, gamma float32, p EstParams) error {
	const op = "cover counts"
	if p.Hq < 1 || p.S < 1 {
		return fmt.Errorf("%s: Hq = %d and S = %d must be ≥ 1", op, p.Hq, p.S)
	}
	if !(gamma >= 0) || math.IsInf(float64(gamma), 0) {
		return fmt.Errorf("%s: gamma %v must be finite and ≥ 0", op, gamma)
	}
	shape := fmt.Sprintf("[Hq=%d, S=%d]", p.Hq, p.S)
	if err := checkTensor(op, "v", v, runtime.F32, p.Hq*p.S, shape); err != nil {
		return err
	}
	if err := checkTensor(op, "s", s, runtime.F32, p.Hq*p.S, shape); err != nil {
		return err
	}
	if err := checkTensor(op, "counts", counts, runtime.I32, 2*p.Hq, fmt.Sprintf("[Hq=%d, 2]", p.Hq)); err != nil {
		return err
	}
	d := r.Device()
	tb, err := tablesOf(d)
	if err != nil {
		return err
	}
	spec, binsOK := coverBinsConfig(d, c)
	binsOK = binsOK && tb.has("cover", "bins")
	sgSpec, sgOK := coverSGConfig(d, c)
	sgOK = sgOK && tb.has("cover", "sg")
	desc := runtime.KernelDesc{Shader: "est_cover", Bindings: 3, ReadOnly: 0b011, PushSize: 12, Spec: []uint32{coverLocal}}
	variant := c.variant
	if variant == "" {
		variant = d.Tuning().Cover.Variant
	}
	histSpec, histErr := coverHistConfig(d, c, p.S)
	histOK := histErr == nil && tb.has("cover", "hist")
	if variant == "" {
		variant = "probes"
		for _, v := range tb.ops["cover"] {
			if v == "sg" && sgOK || v == "hist" && histOK || v == "bins" && binsOK || v == "probes" {
				variant = v
				break
			}
		}
	}
	switch variant {
	case "sg", "sg-scan":
		if !sgOK {
			return fmt.Errorf("%s: est_cover_sg needs subgroup arithmetic and a workgroup within %d invocations", op, d.Info().MaxWorkgroupInvocations)
		}
		desc.Shader, desc.Spec = "est_cover_sg", sgSpec
	case "bins":
		if !binsOK {
			return fmt.Errorf("%s: est_cover_bins does not fit the device (%d bytes of shared memory, %d invocations)", op, d.Caps().MaxSharedMemory, d.Info().MaxWorkgroupInvocations)
		}
		desc.Shader, desc.Spec = "est_cover_bins", spec
	case "hist":
		if histErr != nil {
			return fmt.Errorf("%s: %w", op, histErr)
		}
		if !histOK {
			return fmt.Errorf("%s: est_cover_hist is not usable on this device", op)
		}
		return coverHist(r, op, histSpec, ws, counts, v, s, gamma, p)
	case "probes":
	default:
		return fmt.Errorf("%s: unknown variant %q", op, variant)
	}
	kc, err := d.Kernel(desc)
	if err != nil {
		return err
	}
	grid := [3]uint32{uint32(p.Hq), 2, 1}
	if err := checkGrid(op, d, grid); err != nil {
		return err
	}
	return r.Dispatch(kc, grid, coverPush(gamma, p), v, s, counts)
}

func coverPush(gamma float32, p EstParams) any {
	return struct {
		S, Hq uint32
		Gamma float32
	}{uint32(p.S), uint32(p.Hq), gamma}
}

// coverHist records est_cover_hist with spec (coverHistConfig) on ws's
// scratch and counters, arming the counters first if no recording has.
func coverHist(r *runtime.Recorder, op string, spec []uint32, ws *EstWorkspace, counts, v, s *runtime.Tensor, gamma float32, p EstParams) error {
	if p.S > coverHistMaxS {
		return fmt.Errorf("%s: est_cover_hist takes S ≤ %d, not %d", op, coverHistMaxS, p.S)
	}
	if ws == nil || ws.ctr == nil || ws.hist == nil {
		return fmt.Errorf("%s: est_cover_hist needs a workspace (nil or freed)", op)
	}
	chunks := (p.S + int(spec[1]) - 1) / int(spec[1])
	need := 2 * p.Hq * chunks * 3 * coverHistBins
	if ws.hist.Len() < need {
		return fmt.Errorf("%s: workspace %s has %d elements, need %d for %d chunks of %d heads (make it with NewEstWorkspace for the largest shapes)", op, ws.hist.Name(), ws.hist.Len(), need, chunks, p.Hq)
	}
	off := ws.coverOff
	if ws.ctr.Len() < off+2*p.Hq {
		return fmt.Errorf("%s: workspace %s has %d counters, need %d for Hq = %d", op, ws.ctr.Name(), ws.ctr.Len(), off+2*p.Hq, p.Hq)
	}
	d := r.Device()
	grid := [3]uint32{uint32(chunks), uint32(p.Hq), 2}
	if err := checkGrid(op, d, grid); err != nil {
		return err
	}
	kc, err := d.Kernel(runtime.KernelDesc{Shader: "est_cover_hist", Bindings: 5, ReadOnly: 0b00011, PushSize: 12, Spec: spec})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ws.arm(r); err != nil {
		return fmt.Errorf("%s: arming the counters: %w", op, err)
	}
	return r.Dispatch(kc, grid, coverPush(gamma, p), v, s, counts, ws.hist.Slice(0, need), ws.ctr.Slice(off, 2*p.Hq))
}
