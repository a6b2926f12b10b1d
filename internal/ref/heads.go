package ref

import (
	"math"
	"math/rand/v2"
)

// Head is one constructed attention head: queries Q and keys K, [n][d]
// each, unscaled (the references scale scores by 1/√d).
type Head struct{ Q, K [][]float64 }

// matrix returns an n×d zero matrix.
func matrix(n, d int) [][]float64 {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, d)
	}
	return m
}

// RandomHead draws Gaussian q and k scaled by s: small s gives nearly
// uniform causal attention.
func RandomHead(n, d int, s float64, seed uint64) Head {
	r := rand.New(rand.NewPCG(seed, 7))
	q, k := matrix(n, d), matrix(n, d)
	for i := 0; i < n; i++ {
		for e := 0; e < d; e++ {
			q[i][e] = s * r.NormFloat64()
			k[i][e] = s * r.NormFloat64()
		}
	}
	return Head{Q: q, K: k}
}

// StripeHead makes every query attend key col (a vertical stripe) with
// score gap ≈ strength/√d over the other keys.
func StripeHead(n, d, col int, strength float64, seed uint64) Head {
	h := RandomHead(n, d, 0.1, seed)
	for i := 0; i < n; i++ {
		h.Q[i][0] = math.Sqrt(strength)
	}
	h.K[col][0] = math.Sqrt(strength)
	return h
}

// DiagHead makes query i attend key i − off (a slash at offset off; off = 0
// gives a local window) using a sum of rotations at halving frequencies,
// peaked only at i − j = off.
func DiagHead(n, off int, amp float64) Head {
	f := 1
	for 1<<f < 2*n {
		f++
	}
	d := 2 * f
	q, k := matrix(n, d), matrix(n, d)
	for e := 0; e < f; e++ {
		w := 2 * math.Pi / float64(int(1)<<(e+1))
		for i := 0; i < n; i++ {
			q[i][2*e] = amp * math.Cos(w*float64(i))
			q[i][2*e+1] = amp * math.Sin(w*float64(i))
			k[i][2*e] = amp * math.Cos(w*float64(i+off))
			k[i][2*e+1] = amp * math.Sin(w*float64(i+off))
		}
	}
	return Head{Q: q, K: k}
}

// RetrievalHead makes query i attend one random earlier key t(i) (a
// content-dependent pattern that vertical-slash sets do not capture).
func RetrievalHead(n, d int, amp float64, seed uint64) Head {
	r := rand.New(rand.NewPCG(seed, 11))
	h := RandomHead(n, d, 1/math.Sqrt(float64(d)), seed+1)
	for j := 0; j < n; j++ {
		var nrm float64
		for e := range h.K[j] {
			nrm += h.K[j][e] * h.K[j][e]
		}
		nrm = math.Sqrt(nrm)
		for e := range h.K[j] {
			h.K[j][e] *= amp / nrm
		}
	}
	for i := 0; i < n; i++ {
		t := r.IntN(i + 1)
		copy(h.Q[i], h.K[t])
	}
	return h
}
