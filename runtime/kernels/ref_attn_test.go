package kernels

import "math"

// RefAttention is the float64 reference of FlashAttention and DecodeAttention:
// q [Sq, Hq, D], k and v [≥Skv, Hkv, D] (token-major). It returns o
// [Sq, Hq, D] and lse [Hq, Sq] (natural log; −Inf and a zero row when no key
// is allowed).
func RefAttention(q, k, v []float32, p AttnParams) (o, lse []float64) {
	return refAttention(q, k, v, p, nil)
}

// RefSparseAttention is the float64 reference of SparseAttention: query i of
// head h (position p.Q0+i, block r = (p.Q0+i)/B) attends the keys of the
// blocks cols[rowPtr[h·nb+r] .. rowPtr[h·nb+r+1]), nb = ⌈Skv/B⌉, with the
// causal mask (when p.Causal) at token level.
func RefSparseAttention(q, k, v []float32, rowPtr, cols []int32, p AttnParams, B int) (o, lse []float64) {
	nb := (p.Skv + B - 1) / B
	allowed := func(h, i int) []bool {
		a := make([]bool, p.Skv)
		r := (p.Q0 + i) / B
		for e := rowPtr[h*nb+r]; e < rowPtr[h*nb+r+1]; e++ {
			c := int(cols[e])
			if c < 0 {
				continue
			}
			for j := c * B; j < (c+1)*B && j < p.Skv; j++ {
				a[j] = true
			}
		}
		return a
	}
	return refAttention(q, k, v, p, allowed)
}

func refAttention(q, k, v []float32, p AttnParams, allowed func(h, i int) []bool) (o, lse []float64) {
	D, G := p.D, p.Hq/p.Hkv
	sc := p.scale()
	o = make([]float64, p.Sq*p.Hq*D)
	lse = make([]float64, p.Hq*p.Sq)
	s := make([]float64, p.Skv)
	for h := 0; h < p.Hq; h++ {
		hk := h / G
		for i := 0; i < p.Sq; i++ {
			var a []bool
			if allowed != nil {
				a = allowed(h, i)
			}
			qi := q[(i*p.Hq+h)*D:][:D]
			m := math.Inf(-1)
			for j := 0; j < p.Skv; j++ {
				s[j] = math.Inf(-1)
				if (p.Causal && j > p.Q0+i) || (a != nil && !a[j]) {
					continue
				}
				kj := k[(j*p.Hkv+hk)*D:][:D]
				var d float64
				for x := range D {
					d += float64(qi[x]) * float64(kj[x])
				}
				s[j] = d * sc
				m = math.Max(m, s[j])
			}
			if math.IsInf(m, -1) {
				lse[h*p.Sq+i] = m
				continue
			}
			var l float64
			oi := o[(i*p.Hq+h)*D:][:D]
			for j := 0; j < p.Skv; j++ {
				if math.IsInf(s[j], -1) {
					continue
				}
				w := math.Exp(s[j] - m)
				l += w
				vj := v[(j*p.Hkv+hk)*D:][:D]
				for x := range D {
					oi[x] += w * float64(vj[x])
				}
			}
			for x := range D {
				oi[x] /= l
			}
			lse[h*p.Sq+i] = m + math.Log(l)
		}
	}
	return o, lse
}
