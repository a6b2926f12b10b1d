package kernels

import (
	"math"
	"slices"
)

// float64 references of the estimation and block-map kernels. q is
// [S, Hq, D] and k [S, Hkv, D] in the kernels' layout (pass the values the
// GPU sees, i.e. rounded through f16).

func refDot(q, k []float32, p EstParams, h, i, j int) float64 {
	kvh := h / (p.Hq / p.Hkv)
	qo := (i*p.Hq + h) * p.D
	ko := (j*p.Hkv + kvh) * p.D
	var s float64
	for d := 0; d < p.D; d++ {
		s += float64(q[qo+d]) * float64(k[ko+d])
	}
	return s * float64(p.scale())
}

// RefLSE returns the per-row log-sum-exp of causal attention, [Hq, S]:
// ℓ[h][i] = log Σ_{j ≤ i} exp(s_ij).
func RefLSE(q, k []float32, p EstParams) []float64 {
	out := make([]float64, p.Hq*p.S)
	row := make([]float64, p.S)
	for h := 0; h < p.Hq; h++ {
		for i := 0; i < p.S; i++ {
			m := math.Inf(-1)
			for j := 0; j <= i; j++ {
				row[j] = refDot(q, k, p, h, i, j)
				m = max(m, row[j])
			}
			var l float64
			for j := 0; j <= i; j++ {
				l += math.Exp(row[j] - m)
			}
			out[h*p.S+i] = m + math.Log(l)
		}
	}
	return out
}

// RefBlockMap returns the block map of BlockMap for the listed heads,
// [len(heads), nb, nb]: (1/|r|) Σ_{i∈r} Σ_{j∈c, j≤i} exp(s_ij − lse[h][i]).
func RefBlockMap(q, k []float32, lse []float64, heads []int, p EstParams) []float64 {
	nb := p.NB()
	out := make([]float64, len(heads)*nb*nb)
	for x, h := range heads {
		m := out[x*nb*nb : (x+1)*nb*nb]
		for i := 0; i < p.S; i++ {
			r := i / p.B
			for j := 0; j <= i; j++ {
				m[r*nb+j/p.B] += math.Exp(refDot(q, k, p, h, i, j) - lse[h*p.S+i])
			}
		}
		for r := 0; r < nb; r++ {
			cnt := float64(min((r+1)*p.B, p.S) - r*p.B)
			for c := 0; c <= r; c++ {
				m[r*nb+c] /= cnt
			}
		}
	}
	return out
}

// RefLastBlock returns the last-block estimates of LastBlockEstimates:
// v, s [Hq, S] and vBlk, sBlk [Hq, nb].
func RefLastBlock(q, k []float32, p EstParams) (v, s, vBlk, sBlk []float64) {
	nb, w := p.NB(), p.W()
	v = make([]float64, p.Hq*p.S)
	s = make([]float64, p.Hq*p.S)
	vBlk = make([]float64, p.Hq*nb)
	sBlk = make([]float64, p.Hq*nb)
	row := make([]float64, p.S)
	for h := 0; h < p.Hq; h++ {
		for t := 0; t < w; t++ {
			i := p.S - w + t
			m := math.Inf(-1)
			for j := 0; j <= i; j++ {
				row[j] = refDot(q, k, p, h, i, j)
				m = max(m, row[j])
			}
			var l float64
			for j := 0; j <= i; j++ {
				row[j] = math.Exp(row[j] - m)
				l += row[j]
			}
			for j := 0; j <= i; j++ {
				pij := row[j] / l / float64(w)
				v[h*p.S+j] += pij
				s[h*p.S+i-j] += pij
			}
		}
		for j := 0; j < p.S; j++ {
			vBlk[h*nb+j/p.B] += v[h*p.S+j]
			sBlk[h*nb+j/p.B] += s[h*p.S+j]
		}
	}
	return v, s, vBlk, sBlk
}

func refBlockMeans(x []float32, rows, heads, dim, start, l, ngroups int) []float64 {
	out := make([]float64, ngroups*heads*dim)
	for g := 0; g < ngroups; g++ {
		lo := start + g*l
		hi := min(lo+l, rows)
		for h := 0; h < heads; h++ {
			for d := 0; d < dim; d++ {
				var acc float64
				for i := lo; i < hi; i++ {
					acc += float64(x[(i*heads+h)*dim+d])
				}
				out[(g*heads+h)*dim+d] = acc / float64(hi-lo)
			}
		}
	}
	return out
}

func refSoftmax(x []float64) {
	m := math.Inf(-1)
	for _, e := range x {
		m = max(m, e)
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

func refPooledScores(qbar, kbar []float64, nrows int, causal bool, p EstParams) []float64 {
	nb := p.NB()
	out := make([]float64, p.Hq*nrows*nb)
	sc := float64(p.scale())
	for h := 0; h < p.Hq; h++ {
		kvh := h / (p.Hq / p.Hkv)
		for r := 0; r < nrows; r++ {
			row := out[(h*nrows+r)*nb : (h*nrows+r+1)*nb]
			nc := nb
			if causal {
				nc = r + 1
			}
			for c := 0; c < nc; c++ {
				var dot float64
				for d := 0; d < p.D; d++ {
					dot += qbar[(r*p.Hq+h)*p.D+d] * kbar[(c*p.Hkv+kvh)*p.D+d]
				}
				row[c] = dot * sc
			}
			refSoftmax(row[:nc])
		}
	}
	return out
}

// RefPooledEstimate returns â of PooledEstimate, [Hq, nb].
func RefPooledEstimate(q, k []float32, p EstParams) []float64 {
	w := p.W()
	qbar := refBlockMeans(q, p.S, p.Hq, p.D, p.S-w, w, 1)
	kbar := refBlockMeans(k, p.S, p.Hkv, p.D, 0, p.B, p.NB())
	return refPooledScores(qbar, kbar, 1, false, p)
}

// RefPooledBlockScores returns M of PooledBlockScores, [Hq, nb, nb].
func RefPooledBlockScores(q, k []float32, p EstParams) []float64 {
	nb := p.NB()
	qbar := refBlockMeans(q, p.S, p.Hq, p.D, 0, p.B, nb)
	kbar := refBlockMeans(k, p.S, p.Hkv, p.D, 0, p.B, nb)
	return refPooledScores(qbar, kbar, nb, true, p)
}

// RefCoverCount returns the count of CoverCounts for one vector x (≥ 0):
// sort descending, count the prefix whose running sum stays ≤ γ·Σx, add 1
// for the crossing entry, clamp to len(x).
func RefCoverCount(x []float64, gamma float64) int {
	var total float64
	for _, e := range x {
		total += e
	}
	target := gamma * total
	v := slices.Clone(x)
	slices.SortFunc(v, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	var s float64
	m := 0
	for _, e := range v {
		s += e
		if s > target {
			break
		}
		m++
	}
	return min(m+1, len(x))
}
