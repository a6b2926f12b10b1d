package kernels_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// TestEstRefsMatchShare checks that the kernels' float64 references use the
// same definitions as the planner-level references of internal/ref (the
// estimates share's planners are tested with): window,
// slash pooling alignment, pooled means of partial blocks, block-causal
// softmax, block map normalisation and the token budget. CPU only.
func TestEstRefsMatchShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	cases := []kernels.EstParams{
		{S: 1, B: 32, Hq: 1, Hkv: 1, D: 8},
		{S: 50, B: 32, Hq: 4, Hkv: 2, D: 8},
		{S: 100, B: 64, Hq: 4, Hkv: 1, D: 16},
		{S: 257, B: 32, Hq: 2, Hkv: 2, D: 8},
	}
	const gamma = 0.9
	for _, p := range cases {
		nb := p.NB()
		q := make([]float32, p.S*p.Hq*p.D)
		k := make([]float32, p.S*p.Hkv*p.D)
		for i := range q {
			q[i] = float32(rng.NormFloat64() * 1.5)
		}
		for i := range k {
			k[i] = float32(rng.NormFloat64() * 1.5)
		}
		// ref's [head][token][dim] views.
		qh := make([][][]float64, p.Hq)
		for h := range qh {
			qh[h] = make([][]float64, p.S)
			for i := range qh[h] {
				qh[h][i] = make([]float64, p.D)
				for d := range qh[h][i] {
					qh[h][i][d] = float64(q[(i*p.Hq+h)*p.D+d])
				}
			}
		}
		kh := make([][][]float64, p.Hkv)
		for h := range kh {
			kh[h] = make([][]float64, p.S)
			for i := range kh[h] {
				kh[h][i] = make([]float64, p.D)
				for d := range kh[h][i] {
					kh[h][i][d] = float64(k[(i*p.Hkv+h)*p.D+d])
				}
			}
		}
		le, err := ref.Estimate(0, qh, kh, ref.EstimateOptions{BlockSize: p.B, Gamma: gamma, PooledMap: true})
		if err != nil {
			t.Fatal(err)
		}
		v, s, vb, sb := kernels.RefLastBlock(q, k, p)
		a := kernels.RefPooledEstimate(q, k, p)
		m := kernels.RefPooledBlockScores(q, k, p)
		lse := kernels.RefLSE(q, k, p)
		heads := make([]int, p.Hq)
		for h := range heads {
			heads[h] = h
		}
		bm := kernels.RefBlockMap(q, k, lse, heads, p)
		near := func(what string, h int, got, want []float64) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("S=%d B=%d head %d %s: length %d, ref has %d", p.S, p.B, h, what, len(got), len(want))
			}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-7 { // the kernels use Scale = float32(1/√D)
					t.Fatalf("S=%d B=%d head %d %s[%d] = %g, ref has %g", p.S, p.B, h, what, i, got[i], want[i])
				}
			}
		}
		for h := 0; h < p.Hq; h++ {
			he := le.Heads[h]
			near("V", h, vb[h*nb:(h+1)*nb], he.V)
			near("S", h, sb[h*nb:(h+1)*nb], he.S)
			near("pooled", h, a[h*nb:(h+1)*nb], he.Pooled)
			for r := 0; r < nb; r++ {
				near("M row", h, m[(h*nb+r)*nb:(h*nb+r+1)*nb], he.M.Row(r))
			}
			if kv := kernels.RefCoverCount(v[h*p.S:(h+1)*p.S], gamma); kv != he.Kv {
				t.Errorf("S=%d head %d: k_v %d, share.TokenBudget %d", p.S, h, kv, he.Kv)
			}
			if ks := kernels.RefCoverCount(s[h*p.S:(h+1)*p.S], gamma); ks != he.Ks {
				t.Errorf("S=%d head %d: k_s %d, share.TokenBudget %d", p.S, h, ks, he.Ks)
			}
			want, err := ref.BlockMap(qh[h], kh[h/(p.Hq/p.Hkv)], p.B)
			if err != nil {
				t.Fatal(err)
			}
			for r := 0; r < nb; r++ {
				near("Â row", h, bm[(h*nb+r)*nb:(h*nb+r+1)*nb], want.Row(r))
			}
		}
	}
}
