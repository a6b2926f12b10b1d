package gpu

import (
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// Bounds on what one GPU-planned SharePrefill layer records (paper preset,
// bench-lm-8k's head layout, a cluster with members in the layer). On a GPU
// every dispatch and every barrier costs microseconds whatever its work, so
// these pin the structure that keeps the estimate and the plan cheap at
// short prompts (issue 21): a regression that adds a dispatch or a barrier
// fails here, on lavapipe.
const (
	// The last-block estimates (statistics with the log-sum-exp folded in,
	// V with the slash combination folded in) and the cover counts.
	maxEstimateDispatches = 3
	// Roles with their gates (plan_roles), and the VS selection, the union,
	// the row-pointer scan and the compaction in one (plan_union_csr_vs;
	// plan_topk, plan_union_scan and plan_compact apart only for long
	// prompts, see kernels.PlanSelectUnionCSR); the pivots' row cover and
	// vs_ratio come on top (maxPivotPlanDispatches).
	maxPlanDispatches      = 2
	maxPivotPlanDispatches = 2
	// Barriers of the whole layer: estimates, plan, sparse attention and
	// the pivot chain (block map, row cover, vs_ratio).
	maxLayerBarriers = 8
	// The first layer recorded with a new estimation workspace also zeroes
	// its LSE and slash counters (a copy before the statistics pass: one barrier
	// here, where q and k come from an earlier submission; in a prefill the
	// barrier after RoPE covers it).
	firstLayerExtraBarriers = 1
)

// TestPlannedLayerStructure records planned layers of a model shaped like
// bench-lm-8k (8 query heads, 2 KV heads; smaller head dim, block and
// prompt, which do not change the structure) and checks the number of
// dispatches per kind (from the trace's labels, kernels.Category) and of
// barriers (the device's counters) against the bounds above. It logs every
// layer's dispatch sequence.
func TestPlannedLayerStructure(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	s := Shape{NumHeads: 8, NumKVHeads: 2, HeadDim: 16, N: 256}
	const layers = 3
	x := randomQKV(t, d, rng, s)
	kc, vc := cache(t, d, x.k, s, 40), cache(t, d, x.v, s, 40)
	cfg := testConfig("paper", 0)
	// As bench/clusters-bench-lm-8k.json: two clusters over every layer,
	// one of them shared.
	cl, err := share.ParseClusters([]byte(`{"clusters": {
		"1": [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3], [2, 0], [2, 1], [2, 2], [2, 3]],
		"2": [[0, 4], [0, 5], [0, 6], [0, 7], [1, 4], [1, 5], [1, 6], [1, 7], [2, 4], [2, 5], [2, 6], [2, 7]]},
		"shared_clusters": ["2"]}`))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := share.NewSharePrefill(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(pl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.begin(d, layers, s, 0); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.onGPU {
		t.Fatal("the layer does not plan on the GPU")
	}
	o, err := d.NewTensor(runtime.F16, s.N, s.NumHeads, s.HeadDim)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	p := kernels.AttnParams{Hq: s.NumHeads, Hkv: s.NumKVHeads, D: s.HeadDim, Sq: s.N, Skv: s.N, Causal: true}
	for l := 0; l < layers; l++ {
		r, err := d.NewRecorder()
		if err != nil {
			t.Fatal(err)
		}
		tr := runtime.NewTrace()
		r.SetTrace(tr)
		before := d.Counters()
		if err := a.Layer(r, l, x.q, kc, vc, o, p); err != nil {
			t.Fatal(err)
		}
		c := d.Counters().Sub(before)
		if l == layers-1 {
			if err := a.End(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		r.Release()
		// Barriers recorded inside Layer (the first of a batch is the
		// batch's own and not counted by the recorder).
		limit := uint64(maxLayerBarriers)
		if l == 0 {
			limit += firstLayerExtraBarriers
		}
		if c.Barriers > limit {
			t.Errorf("layer %d: %d barriers, want ≤ %d", l, c.Barriers, limit)
		}
		ev := tr.GPU()
		if len(ev) == 0 {
			t.Logf("layer %d: %d dispatches, %d barriers (the device writes no timestamps: no labels)", l, c.Dispatches, c.Barriers)
			continue
		}
		kinds := map[string]int{}
		var seq []string
		pivotPlan := 0
		for _, e := range ev {
			if e.Label == "copy" {
				continue
			}
			seq = append(seq, e.Label)
			kinds[kernels.Category(e.Label)]++
			if e.Label == "plan_rowcover" || e.Label == "plan_pivot" {
				pivotPlan++
			}
		}
		t.Logf("layer %d: %d dispatches, %d barriers: %s", l, c.Dispatches, c.Barriers, strings.Join(seq, " "))
		if n := kinds["estimate"]; n > maxEstimateDispatches {
			t.Errorf("layer %d: %d estimate dispatches, want ≤ %d", l, n, maxEstimateDispatches)
		}
		if n := kinds["plan"] - pivotPlan; n > maxPlanDispatches || pivotPlan > maxPivotPlanDispatches {
			t.Errorf("layer %d: %d plan dispatches and %d of the pivots' plan, want ≤ %d and ≤ %d", l, n, pivotPlan, maxPlanDispatches, maxPivotPlanDispatches)
		}
		if kinds["estimate"] == 0 || kinds["plan"] == 0 || kinds["attention"] == 0 {
			t.Errorf("layer %d: dispatches per kind %v: the layer was not planned", l, kinds)
		}
	}
	if st := a.Stats(); st == nil || len(st.Layers) != layers {
		t.Fatalf("statistics %v", st)
	} else {
		t.Logf("heads per method %v", st.Summarize().HeadsPerMethod)
	}
}
