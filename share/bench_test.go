package share_test

import (
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/share"
)

// synthLayer builds synthetic estimates of a 128K-token layer (nb = 1024,
// B = 128) with budgets of about 10% of the tokens.
func synthLayer(layer, h, nb, b int, r *rand.Rand) *share.LayerEstimates {
	est := &share.LayerEstimates{Layer: layer, N: nb * b, NB: nb, BlockSize: b, Heads: make([]share.HeadEstimates, h)}
	for i := range est.Heads {
		est.Heads[i] = share.HeadEstimates{V: randDist(r, nb, false), S: randDist(r, nb, false), Kv: nb * b / 10, Ks: nb * b / 20}
	}
	return est
}

// BenchmarkPlanLayer128K measures PlanLayer for 32 heads at n = 128K with
// half the heads in clusters spanning two layers (pivots in layer 0, shared
// or fallback in layer 1).
func BenchmarkPlanLayer128K(b *testing.B) {
	const nb, bs, h = 1024, 128, 32
	r := rand.New(rand.NewPCG(1, 1))
	cl := map[string][]share.HeadRef{}
	for i := 0; i < h/2; i++ {
		id := string(rune('1' + i%9))
		if i >= 9 {
			id = "1" + string(rune('0'+i-9))
		}
		cl[id] = []share.HeadRef{{0, i}, {1, i}}
	}
	cfg := share.DefaultConfig()
	cfg.Exclusion = share.ExcludeNone
	cfg.TauShare = 0.8
	l0, l1 := synthLayer(0, h, nb, bs, r), synthLayer(1, h, nb, bs, r)
	amap := uniformRowsMap(nb)
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		p, err := share.NewSharePrefill(cfg, &share.ClusterFile{Clusters: cl, SharedClusters: []string{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Begin(nb*bs, 2, h, 8); err != nil {
			b.Fatal(err)
		}
		plan, err := p.PlanLayer(0, l0)
		if err != nil {
			b.Fatal(err)
		}
		for _, hd := range plan.MapHeads() {
			if err := p.ObserveMap(0, hd, amap); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.PlanLayer(1, l1); err != nil {
			b.Fatal(err)
		}
	}
}
