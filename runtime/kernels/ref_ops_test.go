package kernels

import (
	"math"
	"sort"
)

// RefRMSNorm: y[r, j] = x[r, j] / sqrt(mean_j(x[r, :]²) + eps) · w[j], rows of
// len(w).
func RefRMSNorm(x, w []float32, eps float64) []float64 {
	h := len(w)
	y := make([]float64, len(x))
	for r := 0; r+h <= len(x); r += h {
		var ss float64
		for _, v := range x[r : r+h] {
			ss += float64(v) * float64(v)
		}
		s := 1 / math.Sqrt(ss/float64(h)+eps)
		for j := 0; j < h; j++ {
			y[r+j] = float64(x[r+j]) * s * float64(w[j])
		}
	}
	return y
}

// RefRope applies HF RoPE (rotate_half) to x [rows, heads, D], D =
// 2·len(invFreq), row r at position pos0 + r. The angle is rounded to f32
// exactly as the GPU (and HF) computes it, float32(pos)·inv_freq; cos and sin
// of it are float64.
func RefRope(x, invFreq []float32, heads, pos0 int) []float64 {
	half := len(invFreq)
	d := 2 * half
	out := make([]float64, len(x))
	rows := len(x) / (heads * d)
	for r := 0; r < rows; r++ {
		pos := float32(pos0 + r)
		for h := 0; h < heads; h++ {
			b := (r*heads + h) * d
			for i := 0; i < half; i++ {
				a := float64(pos * invFreq[i])
				c, s := math.Cos(a), math.Sin(a)
				x0, x1 := float64(x[b+i]), float64(x[b+i+half])
				out[b+i] = x0*c - x1*s
				out[b+i+half] = x1*c + x0*s
			}
		}
	}
	return out
}

// RefSiLU is g/(1+e^-g).
func RefSiLU(g float64) float64 { return g / (1 + math.Exp(-g)) }

// RefSwiGLU: out = silu(gate) ⊙ up.
func RefSwiGLU(gate, up []float32) []float64 {
	out := make([]float64, len(gate))
	for i := range out {
		out[i] = RefSiLU(float64(gate[i])) * float64(up[i])
	}
	return out
}

// RefSwiGLUFused: gu [M, 2F] → out [M, F], out[i, j] = silu(gu[i, j])·gu[i, F+j].
func RefSwiGLUFused(gu []float32, f int) []float64 {
	m := len(gu) / (2 * f)
	out := make([]float64, m*f)
	for i := 0; i < m; i++ {
		for j := 0; j < f; j++ {
			out[i*f+j] = RefSiLU(float64(gu[i*2*f+j])) * float64(gu[i*2*f+f+j])
		}
	}
	return out
}

// RefEmbed: out[i, :] = table[ids[i]·h : ids[i]·h + h].
func RefEmbed(table []float32, ids []int32, h int) []float64 {
	out := make([]float64, len(ids)*h)
	for i, id := range ids {
		for j := 0; j < h; j++ {
			out[i*h+j] = float64(table[int(id)*h+j])
		}
	}
	return out
}

// RefSoftmax: softmax of each row of n elements.
func RefSoftmax(x []float32, n int) []float64 {
	out := make([]float64, len(x))
	for r := 0; r+n <= len(x); r += n {
		m := math.Inf(-1)
		for _, v := range x[r : r+n] {
			m = math.Max(m, float64(v))
		}
		var s float64
		for j := 0; j < n; j++ {
			out[r+j] = math.Exp(float64(x[r+j]) - m)
			s += out[r+j]
		}
		for j := 0; j < n; j++ {
			out[r+j] /= s
		}
	}
	return out
}

// RefArgmax: per row of n elements, the index of the largest (ties: lowest
// index; NaN ignored, an all-NaN row gives 0).
func RefArgmax(x []float32, n int) []int32 {
	out := make([]int32, len(x)/n)
	for r := range out {
		best, bi := float32(math.Inf(-1)), -1
		for j, v := range x[r*n : r*n+n] {
			if v > best || (v == best && bi < 0) {
				best, bi = v, j
			}
		}
		out[r] = int32(max(bi, 0))
	}
	return out
}

// refTopKKey orders float32 totally: larger value, larger key; -0 == +0;
// NaN below -inf.
func refTopKKey(v float32) uint32 {
	if v != v {
		return 0
	}
	if v == 0 {
		v = 0
	}
	u := math.Float32bits(v)
	if u&0x80000000 != 0 {
		return ^u
	}
	return u | 0x80000000
}

// RefTopK: per row of n elements, the k largest values descending (ties:
// lower index first; -0 == +0, returned as +0; NaN ranks below -inf) and
// their indices. One ascending scan per row keeping a sorted list of the best
// k (an element enters only if it sorts strictly before the current k-th).
func RefTopK(x []float32, n, k int) (vals []float32, idx []int32) {
	rows := len(x) / n
	vals = make([]float32, 0, rows*k)
	idx = make([]int32, 0, rows*k)
	type cand struct {
		key uint32
		j   int
	}
	for r := 0; r < rows; r++ {
		best := make([]cand, 0, k+1)
		for j, v := range x[r*n : r*n+n] {
			c := cand{refTopKKey(v), j}
			if len(best) == k && c.key <= best[k-1].key {
				continue
			}
			p := sort.Search(len(best), func(i int) bool { return best[i].key < c.key })
			best = append(best, cand{})
			copy(best[p+1:], best[p:])
			best[p] = c
			if len(best) > k {
				best = best[:k]
			}
		}
		for _, c := range best {
			v := x[r*n+c.j]
			if v == 0 {
				v = 0
			}
			vals = append(vals, v)
			idx = append(idx, int32(c.j))
		}
	}
	return vals, idx
}
