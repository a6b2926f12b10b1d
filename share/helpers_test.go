package share_test

import (
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/share"
)

// layerEst builds a layer of heads with Hkv = H (no GQA) and estimates.
func layerEst(t *testing.T, layer int, heads []ref.Head, opt ref.EstimateOptions) *share.LayerEstimates {
	t.Helper()
	q := make([][][]float64, len(heads))
	k := make([][][]float64, len(heads))
	for i, h := range heads {
		q[i], k[i] = h.Q, h.K
	}
	est, err := ref.Estimate(layer, q, k, opt)
	if err != nil {
		t.Fatal(err)
	}
	return est
}

// checkListInvariants checks CSR validity, column 0 and the diagonal.
func checkListInvariants(t *testing.T, what string, l *share.BlockList) {
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
func runPlanner(t *testing.T, p share.Planner, layers [][]ref.Head, opt ref.EstimateOptions) []*share.LayerPlan {
	t.Helper()
	n := len(layers[0][0].Q)
	if err := p.Begin(n, len(layers), len(layers[0]), len(layers[0])); err != nil {
		t.Fatal(err)
	}
	var plans []*share.LayerPlan
	for l, heads := range layers {
		est := layerEst(t, l, heads, opt)
		plan, err := p.PlanLayer(l, est)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range plan.MapHeads() {
			m, err := ref.BlockMap(heads[h].Q, heads[h].K, opt.BlockSize)
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
