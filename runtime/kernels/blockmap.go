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

func blockMapKernel(op string, r *runtime.Recorder, csr bool, p EstParams) (*runtime.Kernel, error) {
	d := r.Device()
	t, err := estTile(op, d.Caps(), p.D, 0)
	if err != nil {
		return nil, err
	}
	desc := runtime.KernelDesc{Shader: "blockmap_dense", Bindings: 5, ReadOnly: 0b01111, PushSize: 28,
		Spec: []uint32{uint32(t * t), uint32(t), uint32(p.D)}}
	if csr {
		desc.Shader, desc.Bindings, desc.ReadOnly = "blockmap_csr", 7, 0b0111111
	}
	return d.Kernel(desc)
}

func blockMapPush(p EstParams, nheads int) any {
	return struct {
		S, Hq, Hkv, B, NB, NHeads uint32
		Scale                     float32
	}{uint32(p.S), uint32(p.Hq), uint32(p.Hkv), uint32(p.B), uint32(p.NB()), uint32(nheads), p.scale()}
}

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
func BlockMap(r *runtime.Recorder, out, q, k, lse, heads *runtime.Tensor, p EstParams) error {
	const op = "block map"
	if err := checkBlockMapArgs(op, out, q, k, lse, heads, p); err != nil {
		return err
	}
	kb, err := blockMapKernel(op, r, false, p)
	if err != nil {
		return err
	}
	nb, nh := p.NB(), heads.Len()
	grid := [3]uint32{uint32(nb), uint32(nb), uint32(nh)}
	if err := checkGrid(op, r.Device(), grid); err != nil {
		return err
	}
	return r.Dispatch(kb, grid, blockMapPush(p, nh), q, k, lse, heads, out)
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
	kb, err := blockMapKernel(op, r, true, p)
	if err != nil {
		return err
	}
	grid := [3]uint32{uint32(nb), uint32(nb), uint32(nh)}
	if err := checkGrid(op, r.Device(), grid); err != nil {
		return err
	}
	if err := Fill(r, out, 0); err != nil {
		return err
	}
	return r.Dispatch(kb, grid, blockMapPush(p, nh), q, k, lse, heads, rowPtr, cols, out)
}
