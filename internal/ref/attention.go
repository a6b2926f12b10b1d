package ref

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/share"
)

// SparseAttention runs block-sparse causal attention for one query head
// on the CPU in float64: query row i (block r = i/B) attends the keys of the
// listed blocks of row r, with the element causal mask j ≤ i (only the
// diagonal block can hold masked entries), scores scaled by 1/√d. It
// returns the output [n][dv] and the per-row natural log-sum-exp ℓ_i of the
// scaled scores. A row with no visible key gets a zero output and ℓ = -Inf.
//
// q is [n][d] of the query head; k and v are [n][d] and [n][dv] of its KV
// head (the caller applies the GQA mapping, see KVHead). This is the
// reference the GPU block-sparse kernel is tested against.
func SparseAttention(q, k, v [][]float64, list *share.BlockList, blockSize int) (out [][]float64, lse []float64, err error) {
	n, d, err := checkQK(q, k)
	if err != nil {
		return nil, nil, fmt.Errorf("ref: sparse attention: %w", err)
	}
	if len(v) != n {
		return nil, nil, fmt.Errorf("ref: sparse attention: len(v) = %d, want %d", len(v), n)
	}
	if blockSize < 1 {
		return nil, nil, fmt.Errorf("ref: sparse attention: block size %d < 1", blockSize)
	}
	nb := share.NumBlocks(n, blockSize)
	if list == nil || list.NB != nb {
		return nil, nil, fmt.Errorf("ref: sparse attention: list grid does not match nb = %d", nb)
	}
	if err := list.Validate(); err != nil {
		return nil, nil, fmt.Errorf("ref: sparse attention: %w", err)
	}
	dv := len(v[0])
	scale := 1 / math.Sqrt(float64(d))
	out = make([][]float64, n)
	lse = make([]float64, n)
	idx := make([]int, 0, n)
	sc := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		idx, sc = idx[:0], sc[:0]
		for _, c := range list.Row(i / blockSize) {
			lo := int(c) * blockSize
			hi := min(lo+blockSize, n, i+1)
			for j := lo; j < hi; j++ {
				idx = append(idx, j)
				sc = append(sc, dot(q[i], k[j])*scale)
			}
		}
		o := make([]float64, dv)
		out[i] = o
		if len(idx) == 0 {
			lse[i] = math.Inf(-1)
			continue
		}
		m := math.Inf(-1)
		for _, s := range sc {
			m = max(m, s)
		}
		var z float64
		for t, s := range sc {
			p := math.Exp(s - m)
			z += p
			vj := v[idx[t]]
			for e := range o {
				o[e] += p * vj[e]
			}
		}
		for e := range o {
			o[e] /= z
		}
		lse[i] = m + math.Log(z)
	}
	return out, lse, nil
}

// DenseAttention runs exact causal attention in float64 for one query
// head (see SparseAttention for shapes and outputs).
func DenseAttention(q, k, v [][]float64, blockSize int) (out [][]float64, lse []float64, err error) {
	if blockSize < 1 {
		return nil, nil, fmt.Errorf("ref: dense attention: block size %d < 1", blockSize)
	}
	out, lse, err = SparseAttention(q, k, v, share.DenseList(share.NumBlocks(len(q), blockSize)), blockSize)
	if err != nil {
		return nil, nil, fmt.Errorf("ref: dense attention: %w", err)
	}
	return out, lse, nil
}
