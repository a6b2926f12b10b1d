package ref

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/share"
)

// GQALayout says which KV head a query head reads (docs/algorithm.md#gqa).
type GQALayout int

const (
	// GQAGrouped maps query head h to KV head h ÷ G (the Llama layout).
	GQAGrouped GQALayout = iota
	// GQAInterleaved maps query head h to KV head h mod Hkv.
	GQAInterleaved
)

// KVHead returns the KV head read by query head h.
func KVHead(h, numHeads, numKVHeads int, layout GQALayout) int {
	if layout == GQAInterleaved {
		return h % numKVHeads
	}
	return h / (numHeads / numKVHeads)
}

// EstimateOptions configures the CPU reference estimates.
type EstimateOptions struct {
	// BlockSize is B (the estimate window of docs/algorithm.md#last-block-estimates
	// and the pooling block).
	BlockSize int
	// Gamma is the γ used for Kv and Ks.
	Gamma float64
	// PooledMap computes the pooled block map M for every head.
	PooledMap bool
	// Window, when > 0, computes the MInference window estimates WinV and
	// WinS over the last Window queries (64 in MInference).
	Window int
	// Layout is the GQA mapping used by Estimate.
	Layout GQALayout
}

func checkQK(q, k [][]float64) (n, d int, err error) {
	n = len(q)
	if n == 0 {
		return 0, 0, fmt.Errorf("ref: empty q")
	}
	if len(k) != n {
		return 0, 0, fmt.Errorf("ref: len(q) = %d but len(k) = %d", n, len(k))
	}
	d = len(q[0])
	if d == 0 {
		return 0, 0, fmt.Errorf("ref: head dim 0")
	}
	for i := range q {
		if len(q[i]) != d || len(k[i]) != d {
			return 0, 0, fmt.Errorf("ref: row %d: head dim %d/%d, want %d", i, len(q[i]), len(k[i]), d)
		}
	}
	return n, d, nil
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// softmaxInPlace replaces x with softmax(x); -Inf entries become 0.
func softmaxInPlace(x []float64) {
	m := math.Inf(-1)
	for _, e := range x {
		m = max(m, e)
	}
	if math.IsInf(m, -1) {
		clear(x)
		return
	}
	var s float64
	for i, e := range x {
		x[i] = math.Exp(e - m)
		s += x[i]
	}
	for i := range x {
		x[i] /= s
	}
}

// LastBlock returns P_last (W×n, W = min(window, n)): the softmax of the
// last W queries, scaled by 1/√d, against all keys, with the causal mask
// applied only inside the last W×W corner (row t is query i = n−W+t and sees
// keys j ≤ i). q and k are one query head and its KV head, [n][d].
func LastBlock(q, k [][]float64, window int) ([][]float64, error) {
	n, d, err := checkQK(q, k)
	if err != nil {
		return nil, fmt.Errorf("ref: last block: %w", err)
	}
	if window < 1 {
		return nil, fmt.Errorf("ref: last block: window %d < 1", window)
	}
	w := min(window, n)
	scale := 1 / math.Sqrt(float64(d))
	p := make([][]float64, w)
	for t := range p {
		i := n - w + t
		row := make([]float64, n)
		for j := 0; j < n; j++ {
			if j > i {
				row[j] = math.Inf(-1)
				continue
			}
			row[j] = dot(q[i], k[j]) * scale
		}
		softmaxInPlace(row)
		p[t] = row
	}
	return p, nil
}

// TokenVS returns the token-level vertical v (column mean of P_last) and
// slash s (diagonal sums divided by W; s[o] sums P_last[t][i_t − o] over the
// window rows with i_t − o ≥ 0, i_t = n−W+t). Both have length n and sum
// to 1 (docs/algorithm.md#last-block-estimates, steps 2–3).
func TokenVS(p [][]float64) (v, s []float64) {
	w := len(p)
	if w == 0 {
		return nil, nil
	}
	n := len(p[0])
	v = make([]float64, n)
	s = make([]float64, n)
	for t, row := range p {
		i := n - w + t
		for j := 0; j <= i; j++ {
			v[j] += row[j]
			s[i-j] += row[j]
		}
	}
	inv := 1 / float64(w)
	for j := range v {
		v[j] *= inv
		s[j] *= inv
	}
	return v, s
}

// PoolBlocks sums x within consecutive chunks of B entries starting at
// index 0: out[c] = Σ_{j ∈ [c·B, min((c+1)·B, len x))} x[j]; len(out) =
// ⌈len(x)/B⌉. Applied to v it gives V (key blocks); applied to s it gives S
// (block offsets, chunks anchored at the main diagonal, the partial chunk
// last).
func PoolBlocks(x []float64, blockSize int) []float64 {
	nb := share.NumBlocks(len(x), blockSize)
	out := make([]float64, nb)
	for j, e := range x {
		out[j/blockSize] += e
	}
	return out
}

// blockMeans returns the mean of rows of x within each block of B rows
// (the last partial block over its valid rows).
func blockMeans(x [][]float64, blockSize int) [][]float64 {
	n := len(x)
	d := len(x[0])
	nb := share.NumBlocks(n, blockSize)
	out := make([][]float64, nb)
	for c := range out {
		lo := c * blockSize
		hi := min(lo+blockSize, n)
		m := make([]float64, d)
		for j := lo; j < hi; j++ {
			for e := range m {
				m[e] += x[j][e]
			}
		}
		for e := range m {
			m[e] /= float64(hi - lo)
		}
		out[c] = m
	}
	return out
}

// PooledEstimate returns â (docs/algorithm.md#query-aware-gate):
// q̄ = mean of the last W = min(window,
// n) queries scaled by 1/√d, k̄_c = mean of the keys of block c (valid keys
// only), â = softmax over c of q̄·k̄_c, without a block-causal mask.
func PooledEstimate(q, k [][]float64, blockSize, window int) ([]float64, error) {
	n, d, err := checkQK(q, k)
	if err != nil {
		return nil, fmt.Errorf("ref: pooled estimate: %w", err)
	}
	if blockSize < 1 || window < 1 {
		return nil, fmt.Errorf("ref: pooled estimate: block size %d and window %d must be ≥ 1", blockSize, window)
	}
	w := min(window, n)
	qbar := make([]float64, d)
	for i := n - w; i < n; i++ {
		for e := range qbar {
			qbar[e] += q[i][e]
		}
	}
	scale := 1 / (float64(w) * math.Sqrt(float64(d)))
	for e := range qbar {
		qbar[e] *= scale
	}
	kbar := blockMeans(k, blockSize)
	a := make([]float64, len(kbar))
	for c := range a {
		a[c] = dot(qbar, kbar[c])
	}
	softmaxInPlace(a)
	return a, nil
}

// PooledBlockMap returns the pooled block map M
// (docs/algorithm.md#query-aware-selection): queries and keys
// mean-pooled per block (the last partial block over its valid rows),
// M = row-softmax(Q̄K̄ᵀ/√d) under a block-causal mask (c ≤ r), so every row
// sums to 1 and non-causal entries are 0.
func PooledBlockMap(q, k [][]float64, blockSize int) (*share.BlockMap, error) {
	_, d, err := checkQK(q, k)
	if err != nil {
		return nil, fmt.Errorf("ref: pooled block map: %w", err)
	}
	if blockSize < 1 {
		return nil, fmt.Errorf("ref: pooled block map: block size %d < 1", blockSize)
	}
	qb := blockMeans(q, blockSize)
	kb := blockMeans(k, blockSize)
	nb := len(qb)
	m := share.NewBlockMap(nb)
	scale := 1 / math.Sqrt(float64(d))
	for r := 0; r < nb; r++ {
		row := m.Row(r)
		for c := 0; c <= r; c++ {
			row[c] = dot(qb[r], kb[c]) * scale
		}
		softmaxInPlace(row[:r+1])
	}
	return m, nil
}

// BlockMap returns the exact block attention map Â
// (docs/algorithm.md#pivot-map) from full
// causal attention: Â[r,c] = mean over the valid queries i of block r of
// Σ_{j ∈ c, j ≤ i} p_ij, with p the causal softmax of qkᵀ/√d. Every causal
// row sums to 1 (up to rounding) and non-causal entries are 0.
func BlockMap(q, k [][]float64, blockSize int) (*share.BlockMap, error) {
	n, d, err := checkQK(q, k)
	if err != nil {
		return nil, fmt.Errorf("ref: block map: %w", err)
	}
	if blockSize < 1 {
		return nil, fmt.Errorf("ref: block map: block size %d < 1", blockSize)
	}
	nb := share.NumBlocks(n, blockSize)
	m := share.NewBlockMap(nb)
	scale := 1 / math.Sqrt(float64(d))
	row := make([]float64, n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			row[j] = dot(q[i], k[j]) * scale
		}
		softmaxInPlace(row[:i+1])
		r := i / blockSize
		out := m.Row(r)
		for j := 0; j <= i; j++ {
			out[j/blockSize] += row[j]
		}
	}
	for r := 0; r < nb; r++ {
		cnt := float64(min((r+1)*blockSize, n) - r*blockSize)
		out := m.Row(r)
		for c := range out {
			out[c] /= cnt
		}
	}
	return m, nil
}

// WindowVS returns the MInference window estimates
// (docs/algorithm.md#vertical-slash):
// A = softmax of the last L = min(window, n) queries against all keys (causal
// mask only in the last L×L corner); winV[j] = Σ_t A[t][j] (column sums) and
// winS[o] = Σ_t A[t][i_t − o] (diagonal sums by offset o = i − j ≥ 0,
// including the partial far diagonals; the planner drops them).
func WindowVS(q, k [][]float64, window int) (winV, winS []float64, err error) {
	p, err := LastBlock(q, k, window)
	if err != nil {
		return nil, nil, fmt.Errorf("ref: window estimate: %w", err)
	}
	v, s := TokenVS(p)
	w := float64(len(p))
	for j := range v {
		v[j] *= w
		s[j] *= w
	}
	return v, s, nil
}

// EstimateHead computes the estimates of one query head from its queries
// q and its KV head's keys k ([n][d], unscaled, after RoPE): V, S, Kv, Ks,
// Pooled always; M when opt.PooledMap; WinV/WinS when opt.Window > 0.
func EstimateHead(q, k [][]float64, opt EstimateOptions) (*share.HeadEstimates, error) {
	if opt.BlockSize < 1 {
		return nil, fmt.Errorf("ref: estimate: block size %d < 1", opt.BlockSize)
	}
	p, err := LastBlock(q, k, opt.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("ref: estimate: %w", err)
	}
	v, s := TokenVS(p)
	he := &share.HeadEstimates{
		V:  PoolBlocks(v, opt.BlockSize),
		S:  PoolBlocks(s, opt.BlockSize),
		Kv: share.TokenBudget(v, opt.Gamma),
		Ks: share.TokenBudget(s, opt.Gamma),
	}
	if he.Pooled, err = PooledEstimate(q, k, opt.BlockSize, opt.BlockSize); err != nil {
		return nil, fmt.Errorf("ref: estimate: %w", err)
	}
	if opt.PooledMap {
		if he.M, err = PooledBlockMap(q, k, opt.BlockSize); err != nil {
			return nil, fmt.Errorf("ref: estimate: %w", err)
		}
	}
	if opt.Window > 0 {
		if he.WinV, he.WinS, err = WindowVS(q, k, opt.Window); err != nil {
			return nil, fmt.Errorf("ref: estimate: %w", err)
		}
	}
	return he, nil
}

// Estimate computes the estimates of a whole layer: q is [H][n][d]
// (query heads), k is [Hkv][n][d]; query head h reads KV head
// KVHead(h, H, Hkv, opt.Layout).
func Estimate(layer int, q, k [][][]float64, opt EstimateOptions) (*share.LayerEstimates, error) {
	h, hkv := len(q), len(k)
	if h == 0 || hkv == 0 || h%hkv != 0 {
		return nil, fmt.Errorf("ref: layer %d: %d query heads and %d KV heads (need H a positive multiple of Hkv)", layer, h, hkv)
	}
	n := len(q[0])
	le := &share.LayerEstimates{Layer: layer, N: n, NB: share.NumBlocks(n, opt.BlockSize), BlockSize: opt.BlockSize, Heads: make([]share.HeadEstimates, h)}
	for i := range q {
		he, err := EstimateHead(q[i], k[KVHead(i, h, hkv, opt.Layout)], opt)
		if err != nil {
			return nil, fmt.Errorf("ref: layer %d head %d: %w", layer, i, err)
		}
		le.Heads[i] = *he
	}
	return le, nil
}
