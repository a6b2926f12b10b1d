package share

import (
	"math"
	"math/rand/v2"
	"testing"
)

// headQK is one constructed head: queries and keys [n][d].
type headQK struct{ q, k [][]float64 }

func matrix(n, d int) [][]float64 {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, d)
	}
	return m
}

// randomHead draws Gaussian q and k scaled by s: small s gives nearly
// uniform causal attention.
func randomHead(n, d int, s float64, seed uint64) headQK {
	r := rand.New(rand.NewPCG(seed, 7))
	q, k := matrix(n, d), matrix(n, d)
	for i := 0; i < n; i++ {
		for e := 0; e < d; e++ {
			q[i][e] = s * r.NormFloat64()
			k[i][e] = s * r.NormFloat64()
		}
	}
	return headQK{q, k}
}

// stripeHead makes every query attend key col (a vertical stripe) with
// score gap ≈ strength/√d over the other keys.
func stripeHead(n, d, col int, strength float64, seed uint64) headQK {
	h := randomHead(n, d, 0.1, seed)
	for i := 0; i < n; i++ {
		h.q[i][0] = math.Sqrt(strength)
	}
	h.k[col][0] = math.Sqrt(strength)
	return h
}

// diagHead makes query i attend key i − off (a slash at offset off; off = 0
// gives a local window) using a sum of rotations at halving frequencies,
// peaked only at i − j = off.
func diagHead(n, off int, amp float64) headQK {
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
	return headQK{q, k}
}

// retrievalHead makes query i attend one random earlier key t(i) (a
// content-dependent pattern that vertical-slash sets do not capture).
func retrievalHead(n, d int, amp float64, seed uint64) headQK {
	r := rand.New(rand.NewPCG(seed, 11))
	h := randomHead(n, d, 1/math.Sqrt(float64(d)), seed+1)
	for j := 0; j < n; j++ {
		var nrm float64
		for e := range h.k[j] {
			nrm += h.k[j][e] * h.k[j][e]
		}
		nrm = math.Sqrt(nrm)
		for e := range h.k[j] {
			h.k[j][e] *= amp / nrm
		}
	}
	for i := 0; i < n; i++ {
		t := r.IntN(i + 1)
		copy(h.q[i], h.k[t])
	}
	return h
}

// layerOf builds a layer of heads with Hkv = H (no GQA) and estimates.
func layerEst(t *testing.T, layer int, heads []headQK, opt EstimateOptions) *LayerEstimates {
	t.Helper()
	q := make([][][]float64, len(heads))
	k := make([][][]float64, len(heads))
	for i, h := range heads {
		q[i], k[i] = h.q, h.k
	}
	est, err := EstimateRef(layer, q, k, opt)
	if err != nil {
		t.Fatal(err)
	}
	return est
}

// checkListInvariants checks CSR validity, column 0 and the diagonal.
func checkListInvariants(t *testing.T, what string, l *BlockList) {
	t.Helper()
	if err := l.Validate(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for r := 0; r < l.NB; r++ {
		if !l.Contains(r, 0) || !l.Contains(r, r) {
			t.Fatalf("%s: row %d lacks column 0 or the diagonal: %v", what, r, l.Row(r))
		}
	}
}

// runPlanner plans every layer, observing maps from the given heads.
func runPlanner(t *testing.T, p Planner, layers [][]headQK, opt EstimateOptions) []*LayerPlan {
	t.Helper()
	n := len(layers[0][0].q)
	if err := p.Begin(n, len(layers), len(layers[0]), len(layers[0])); err != nil {
		t.Fatal(err)
	}
	var plans []*LayerPlan
	for l, heads := range layers {
		est := layerEst(t, l, heads, opt)
		plan, err := p.PlanLayer(l, est)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range plan.MapHeads() {
			m, err := BlockMapRef(heads[h].q, heads[h].k, opt.BlockSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ObserveMap(l, h, m); err != nil {
				t.Fatal(err)
			}
		}
		plans = append(plans, plan)
	}
	return plans
}
