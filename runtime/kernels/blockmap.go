package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

func checkBlockMapArgs(op string, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	if err := p.check(op); err != nil {
		return err
	}
	if err := checkQK(op, q, k, p); err != nil {
		return err
	}
	if err := checkTensor(op, "lse", lse, runtime.F32, p.Hq*p.S, fmt.Sprintf("[Hq=%d, S=%d]", p.Hq, p.S)); err != nil {
		return err
	}
	if heads == nil || heads.DType() != runtime.I32 || heads.Len() < 1 {
		return fmt.Errorf("%s: heads must be a non-empty i32 tensor of query-head indices", op)
	}
	nh, nb := heads.Len(), p.NB()
	return checkTensor(op, "out", out, runtime.F32, nh*nb*nb, fmt.Sprintf("[nheads=%d, nb=%d, nb=%d]", nh, nb, nb))
}

// blockMapKernel returns the pipeline of the block map's variant (variant
// "" for the device's choice, qkPick): the dense or, with csr, the CSR
// module. Both variants take the same bindings, push constants and grid
// (⌈nb/kpw⌉, nb, nheads: blockMapGroups). The cooperative-matrix modules
// fetch each K tile one tile ahead unless noPrefetch or
// Tuning.EstPrefetchOff (qkCMKernel; same bits).
func blockMapKernel(op string, r *runtime.Recorder, csr bool, p EstParams, variant string, noPrefetch bool) (*runtime.Kernel, error) {
	d := r.Device()
	v, cm, err := qkPick(d, "blockmap", op, p, variant)
	if err != nil {
		return nil, err
	}
	bindings, ro := 5, uint32(0b01111)
	if csr {
		bindings, ro = 7, 0b0111111
	}
	if v == "coopmat" {
		sh := "blockmap_cm_dense"
		if csr {
			sh = "blockmap_cm_csr"
		}
		return qkCMKernel(d, sh, bindings, ro, blockMapPushSize, cm, p.D, 0, noPrefetch)
	}
	t, err := estTile(op, d.Caps(), p.D, 0)
	if err != nil {
		return nil, err
	}
	sh := "blockmap_dense"
	if csr {
		sh = "blockmap_csr"
	}
	return d.Kernel(runtime.KernelDesc{Shader: sh, Bindings: bindings, ReadOnly: ro, PushSize: blockMapPushSize,
		Spec: []uint32{uint32(t * t), uint32(t), uint32(p.D)}})
}

// blockMapPushSize is the size of the push-constant block of
// blockmap.comp and qk_cm.comp's BLOCKMAP (blockMapPush).
const blockMapPushSize = 32

// blockMapPush is the push-constant block of the block-map kernels with kpw
// slots (key blocks) per workgroup.
func blockMapPush(p EstParams, nheads, kpw int) any {
	return struct {
		S, Hq, Hkv, B, NB, NHeads uint32
		Scale                     float32
		Kpw                       uint32
	}{uint32(p.S), uint32(p.Hq), uint32(p.Hkv), uint32(p.B), uint32(p.NB()), uint32(nheads), p.scale(), uint32(kpw)}
}

// The block-map kernels take kpw slots (dense: consecutive key blocks) of
// one query block per workgroup, grid (⌈nb/kpw⌉, nb, nheads): with one
// block each, bench-lm-8k's pivot map (nb = 64) ran about 2080 live
// workgroups of about 2 MFLOP each on an H100, their fixed cost (layout
// probe, query load, reduction) dominating. bmMaxBlocksPerGroup is the
// most blocks blockMapBlocksPerGroup gives one workgroup; it leaves at
// least estMinGroups live workgroups.
const bmMaxBlocksPerGroup = 8

// blockMapLiveGroups returns the workgroups of the dense grid with kpw
// blocks each that compute a block for one head: Σ_{r<nb} ⌈(r+1)/kpw⌉
// (the others lie wholly above the diagonal and only write zeros).
func blockMapLiveGroups(nb, kpw int) int {
	n := 0
	for r := 0; r < nb; r++ {
		n += (r + kpw) / kpw
	}
	return n
}

// blockMapBlocksPerGroup returns kpw for nb key blocks and nheads heads:
// the largest count up to bmMaxBlocksPerGroup that leaves at least
// estMinGroups live workgroups (nheads·blockMapLiveGroups), 1 when even one
// block each leaves fewer. The result is in [1, max(nb, 1)].
func blockMapBlocksPerGroup(nb, nheads int) int {
	k := 1
	for k < bmMaxBlocksPerGroup && k < nb && nheads*blockMapLiveGroups(nb, k+1) >= estMinGroups {
		k++
	}
	return k
}

// blockMapIndirectBlocksPerGroup is kpw of BlockMapIndirect: the count of
// heads is read by the GPU, so kpw is chosen for one head (the fewest a
// dispatch that does work has), and PlanDecide writes the matching grid
// width blockMapGroups(nb, kpw).
func blockMapIndirectBlocksPerGroup(nb int) int { return blockMapBlocksPerGroup(nb, 1) }

// blockMapGroups is the grid width ⌈nb/kpw⌉ of the block-map kernels.
func blockMapGroups(nb, kpw int) int { return (nb + kpw - 1) / kpw }

// BlockMap records the exact block attention map of the heads listed in
// heads (i32 query-head indices, e.g. the pivots; docs/algorithm.md#pivot-map):
//
//	out[x][r, c] = (1/|r|) Σ_{i ∈ r} Σ_{j ∈ c, j ≤ i} exp(s_ij − ℓ_i),  h = heads[x]
//
// with s_ij = Scale·q_i·k_j, |r| the valid queries of block r and ℓ the
// final per-row log-sum-exp of the attention kernel (lse f32 [Hq, S]). It
// recomputes the scores (one QKᵀ, no P·V). out: f32 [nheads, nb, nb], zero
// above the diagonal; each causal row sums to 1 when ℓ is the dense LSE.
// A head index outside [0, Hq) gives NaN rows.
//
// The kernel is the first of the device's "blockmap" variant table that
// applies (variants.go, BlockMapKernel): cooperative matrices (qk_cm.go)
// where the device has them and D is a multiple of 16, else the scalar
// kernel; they agree within 1e-4 relative per entry (about 1e-6 seen).
// Each workgroup takes kpw key blocks of one query block
// (blockMapBlocksPerGroup); the map does not depend on kpw, to the bit.
func BlockMap(r *runtime.Recorder, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	return blockMap(r, "", out, q, k, lse, heads, p)
}

// blockMap is BlockMap on variant ("" for the device's choice).
func blockMap(r *runtime.Recorder, variant string, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	return blockMapKPW(r, variant, 0, false, out, q, k, lse, heads, p)
}

// blockMapKPW is blockMap with kpw blocks per workgroup (0 for
// blockMapBlocksPerGroup's choice), without the K-tile prefetch if
// noPrefetch (tests).
func blockMapKPW(r *runtime.Recorder, variant string, kpw int, noPrefetch bool, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	const op = "block map"
	if err := checkBlockMapArgs(op, out, q, k, lse, heads, p); err != nil {
		return err
	}
	kb, err := blockMapKernel(op, r, false, p, variant, noPrefetch)
	if err != nil {
		return err
	}
	nb, nh := p.NB(), heads.Len()
	if kpw <= 0 {
		kpw = blockMapBlocksPerGroup(nb, nh)
	}
	grid := [3]uint32{uint32(blockMapGroups(nb, kpw)), uint32(nb), uint32(nh)}
	if err := checkGrid(op, r.Device(), grid); err != nil {
		return err
	}
	return r.Dispatch(kb, grid, blockMapPush(p, nh, kpw), q, k, lse, heads, out)
}

// BlockMapCSR is BlockMap restricted to listed blocks: rowPtr i32
// [nheads, nb+1] holds, per listed head x and row r, absolute offsets into
// cols (i32) so that row r of head x lists columns
// cols[rowPtr[x·(nb+1)+r] : rowPtr[x·(nb+1)+r+1]] (the per-head CSR of
// share.BlockList, concatenated with row pointers shifted by each head's
// base). Listed causal blocks get Â[r, c]; every other entry is 0 (out is
// zero-filled first). Columns outside [0, nb) are ignored. Use it with the
// LSE of the sparse pass: rows then sum to 1 over the listed blocks.
func BlockMapCSR(r *runtime.Recorder, out, q, k, lse, heads, rowPtr, cols *runtime.Tensor, p EstParams) error {
	return blockMapCSR(r, "", out, q, k, lse, heads, rowPtr, cols, p)
}

// blockMapCSR is BlockMapCSR on variant ("" for the device's choice).
func blockMapCSR(r *runtime.Recorder, variant string, out, q, k, lse, heads, rowPtr, cols *runtime.Tensor, p EstParams) error {
	return blockMapCSRKPW(r, variant, 0, false, out, q, k, lse, heads, rowPtr, cols, p)
}

// blockMapCSRKPW is blockMapCSR with kpw listed blocks per workgroup (0 for
// blockMapBlocksPerGroup's choice, as for the dense map), without the
// K-tile prefetch if noPrefetch (tests).
func blockMapCSRKPW(r *runtime.Recorder, variant string, kpw int, noPrefetch bool, out, q, k, lse, heads, rowPtr, cols *runtime.Tensor, p EstParams) error {
	const op = "block map (CSR)"
	if err := checkBlockMapArgs(op, out, q, k, lse, heads, p); err != nil {
		return err
	}
	nb, nh := p.NB(), heads.Len()
	if err := checkTensor(op, "rowPtr", rowPtr, runtime.I32, nh*(nb+1), fmt.Sprintf("[nheads=%d, nb+1=%d]", nh, nb+1)); err != nil {
		return err
	}
	if cols == nil || cols.DType() != runtime.I32 || cols.Len() < 1 {
		return fmt.Errorf("%s: cols must be a non-empty i32 tensor", op)
	}
	kb, err := blockMapKernel(op, r, true, p, variant, noPrefetch)
	if err != nil {
		return err
	}
	if kpw <= 0 {
		kpw = blockMapBlocksPerGroup(nb, nh)
	}
	grid := [3]uint32{uint32(blockMapGroups(nb, kpw)), uint32(nb), uint32(nh)}
	if err := checkGrid(op, r.Device(), grid); err != nil {
		return err
	}
	if err := Fill(r, out, 0); err != nil {
		return err
	}
	return r.Dispatch(kb, grid, blockMapPush(p, nh, kpw), q, k, lse, heads, rowPtr, cols, out)
}
