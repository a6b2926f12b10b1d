package gpu

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// gateTol is how close to its threshold a gate value (a JS divergence or a
// vs_ratio) may lie before the f32 GPU planner and the float64 host planner
// may legitimately decide differently: the GPU computes the divergences in
// f32 (relative error about 1e-6, docs/algorithm.md#js-gates) and vs_ratio
// as an f32 sum. Heads whose decision rests on such a value are excluded
// from the block-for-block comparison and counted.
const gateTol = 2e-5

// planCase is one planner configuration of the GPU-versus-host tests.
type planCase struct {
	name string
	mk   func(t *testing.T) share.Planner
}

func planCases() []planCase {
	share1 := func(preset string, clusters string, mut func(c *share.Config)) func(t *testing.T) share.Planner {
		return func(t *testing.T) share.Planner {
			c := testConfig(preset, 0)
			if mut != nil {
				mut(&c)
			}
			var cf *share.ClusterFile
			if clusters != "" {
				var err error
				if cf, err = share.LoadClusters(clusters); err != nil {
					t.Fatal(err)
				}
			}
			p, err := share.NewSharePrefill(c, cf)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	flex := func(preset string, mut func(c *share.Config)) func(t *testing.T) share.Planner {
		return func(t *testing.T) share.Planner {
			c := testConfig(preset, 0)
			if mut != nil {
				mut(&c)
			}
			p, err := share.NewFlexPrefill(c)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	const stories, official = "testdata/clusters_stories260k.json", "../testdata/clusters_official_small.json"
	wideQuery := func(c *share.Config) { c.TauQuery = 0.3 }
	return []planCase{
		{"flex-paper", flex("paper", nil)},
		{"flex-release", flex("release", wideQuery)},
		{"share-paper-stories", share1("paper", stories, func(c *share.Config) { c.TauShare = 0.5 })},
		{"share-paper-official", share1("paper", official, func(c *share.Config) { c.TauShare, c.Delta = 0.5, 0.45 })},
		{"share-paper-noclusters", share1("paper", "", nil)},
		{"share-sharing", share1("paper", stories, func(c *share.Config) { c.Exclusion, c.TauShare = share.ExcludeNone, 0.8 })},
		{"share-sharing-vs-coverage", share1("release", official, func(c *share.Config) { c.TauShare, c.TauFallback, c.ShareScope = 0.8, 0.99, share.ScopeAll })},
		{"share-release-stories", share1("release", stories, wideQuery)},
		{"share-release-official", share1("release", official, func(c *share.Config) { c.TauQuery, c.ShareScope = 0.2, share.ScopeAll })},
		{"share-release-compat", share1("release", stories, func(c *share.Config) { c.VSRatioCompat, c.NaNCompat, c.TauFallback = true, true, 2 })},
		{"share-pooled-exclusion", share1("paper", stories, func(c *share.Config) {
			c.ExclusionDist, c.TauShare, c.MaxBudget, c.Gamma = share.DistPooled, 0.6, 6*testBlock, 0.8
		})},
		{"share-none-dense-below", share1("paper", official, func(c *share.Config) { c.Exclusion, c.DenseBelow = share.ExcludeNone, 1<<20 })},
		{"vs", func(t *testing.T) share.Planner {
			p, err := share.NewVerticalSlash(share.VSConfig{BlockSize: testBlock, LastQ: 64, VerticalSize: 60, SlashSize: 120, ForcedColumns: 5, ForcedDiagonals: 20, Tile: 16})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"dense", func(t *testing.T) share.Planner {
			p, err := share.NewDense(testBlock)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
}

// near reports whether the decision of head hs rests on a value within
// gateTol of its threshold.
func nearThreshold(c share.Config, hs share.HeadStat, pivotRatio *float64) bool {
	close := func(x *float64, thr float64) bool { return x != nil && math.Abs(*x-thr) < gateTol }
	return close(hs.JSDQuery, c.TauQuery) || close(hs.JSDUniform, c.Delta) || close(hs.JSDShareV, c.TauShare) ||
		close(hs.JSDShareS, c.TauShare) || c.Exclusion == share.ExcludeVSCoverage && close(pivotRatio, c.TauFallback)
}

// hostTwin runs the host planner p on the estimates and maps the GPU path
// computed, layer by layer, from the testHook of a (which must plan on the
// GPU), and compares every head's block list.
type hostTwin struct {
	t        *testing.T
	a        *Attention
	p        share.Planner
	excluded int
	compared int
}

func (tw *hostTwin) hook(r *runtime.Recorder, l int) error {
	t, a := tw.t, tw.a
	if err := r.Submit(); err != nil {
		return err
	}
	if l == 0 {
		if err := tw.p.Begin(a.shape.N, a.layers, a.shape.NumHeads, a.shape.NumKVHeads); err != nil {
			return err
		}
	}
	hq, nb := a.shape.NumHeads, a.nb
	est, err := a.est.read(l)
	if err != nil {
		return err
	}
	if a.est.needs.PooledMap {
		rows, err := downloadRows(a.est.m, hq, nb*nb)
		if err != nil {
			return err
		}
		for h := range est.Heads {
			est.Heads[h].M = &share.BlockMap{NB: nb, Data: rows[h]}
		}
	}
	plan, err := tw.p.PlanLayer(l, est)
	if err != nil {
		return err
	}
	rowPtr, err := a.rowPtr.DownloadI32()
	if err != nil {
		return err
	}
	cols, err := a.cols.DownloadI32()
	if err != nil {
		return err
	}
	// The host planner's statistics of this layer, for the tolerance rule.
	var hstats []share.HeadStat
	for _, ls := range tw.p.Stats().Layers {
		if ls.Layer == l {
			hstats = ls.Heads
		}
	}
	ratio := map[string]*float64{} // pivot vs_ratio per cluster, from the host's statistics
	for _, ls := range tw.p.Stats().Layers {
		for _, hs := range ls.Heads {
			if hs.Method == share.MethodPivot {
				ratio[hs.Cluster] = hs.VSRatio
			}
		}
	}
	cfg := share.Config{}
	if c, ok := tw.p.(interface{ Config() share.Config }); ok {
		cfg = c.Config()
	}
	for h := 0; h < hq; h++ {
		base := rowPtr[h*nb]
		got := &share.BlockList{NB: nb, RowPtr: make([]int32, nb+1), Cols: slices.Clone(cols[base:rowPtr[(h+1)*nb]])}
		for r := 0; r <= nb; r++ {
			got.RowPtr[r] = rowPtr[h*nb+r] - base
		}
		want := plan.Heads[h].List
		if slices.Equal(got.RowPtr, want.RowPtr) && slices.Equal(got.Cols, want.Cols) {
			tw.compared++
			continue
		}
		if hstats != nil && nearThreshold(cfg, hstats[h], ratio[hstats[h].Cluster]) {
			tw.excluded++
			t.Logf("layer %d head %d: lists differ with a gate within %g of its threshold (%+v); excluded", l, h, gateTol, hstats[h])
			continue
		}
		if err := got.Validate(); err != nil {
			t.Errorf("layer %d head %d: GPU list invalid: %v", l, h, err)
		}
		t.Errorf("layer %d head %d (%v): GPU list differs from the host planner's:\n gpu  %v\n host %v", l, h, plan.Heads[h].Method, got, want)
	}
	// The maps the host planner asks for, from the GPU's block-map slots.
	if heads := plan.MapHeads(); len(heads) > 0 {
		slots, err := a.gpu.pivots.DownloadI32()
		if err != nil {
			return err
		}
		maps, err := downloadRows(a.maps, a.mapCap, nb*nb)
		if err != nil {
			return err
		}
		if a.gpu.pp.Chunks != 1 {
			return fmt.Errorf("the test reads one chunk of pivot maps, the call has %d", a.gpu.pp.Chunks)
		}
		for _, h := range heads {
			x := slices.Index(slots[:a.mapCap], int32(h))
			if x < 0 {
				return fmt.Errorf("layer %d: the host planner wants the map of head %d, the GPU made none (pivots %v)", l, h, slots[:a.mapCap])
			}
			if err := tw.p.ObserveMap(l, h, &share.BlockMap{NB: nb, Data: maps[x]}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameStats compares the GPU planner's statistics with the host planner's:
// everything equal except the gate values and vs_ratio (within gateTol) and
// the host times.
func sameStats(t *testing.T, got, want *share.Stats) {
	t.Helper()
	if got.Planner != want.Planner || got.Note != want.Note || got.N != want.N || got.NB != want.NB || len(got.Layers) != len(want.Layers) {
		t.Fatalf("statistics header: got %s, want %s", got, want)
	}
	near := func(a, b *float64) bool {
		return a == nil && b == nil || a != nil && b != nil && math.Abs(*a-*b) < gateTol
	}
	for l := range want.Layers {
		for h, w := range want.Layers[l].Heads {
			g := got.Layers[l].Heads[h]
			gv, wv := g, w
			gv.JSDQuery, gv.JSDUniform, gv.JSDShareV, gv.JSDShareS, gv.VSRatio = nil, nil, nil, nil, nil
			wv.JSDQuery, wv.JSDUniform, wv.JSDShareV, wv.JSDShareS, wv.VSRatio = nil, nil, nil, nil, nil
			gj, _ := json.Marshal(gv)
			wj, _ := json.Marshal(wv)
			if string(gj) != string(wj) || !near(g.JSDQuery, w.JSDQuery) || !near(g.JSDUniform, w.JSDUniform) ||
				!near(g.JSDShareV, w.JSDShareV) || !near(g.JSDShareS, w.JSDShareS) || !near(g.VSRatio, w.VSRatio) {
				t.Errorf("layer %d head %d statistics:\n gpu  %s %v\n host %s %v", l, h, gj, fmtGates(g), wj, fmtGates(w))
			}
		}
		if math.Abs(got.Layers[l].MeanDensity-want.Layers[l].MeanDensity) > 1e-12 {
			t.Errorf("layer %d mean density %v, want %v", l, got.Layers[l].MeanDensity, want.Layers[l].MeanDensity)
		}
	}
	gs, ws := got.Summarize(), want.Summarize()
	if fmt.Sprint(gs.HeadsPerMethod) != fmt.Sprint(ws.HeadsPerMethod) || gs.Excluded != ws.Excluded {
		t.Errorf("summary %v (%d excluded), want %v (%d)", gs.HeadsPerMethod, gs.Excluded, ws.HeadsPerMethod, ws.Excluded)
	}
}

func fmtGates(h share.HeadStat) string {
	f := func(x *float64) string {
		if x == nil {
			return "-"
		}
		return fmt.Sprintf("%.7f", *x)
	}
	return fmt.Sprintf("q %s u %s v %s s %s ratio %s", f(h.JSDQuery), f(h.JSDUniform), f(h.JSDShareV), f(h.JSDShareS), f(h.VSRatio))
}

// TestGPUPlannerEqualsHostPlanner runs a whole prefill with the planner on
// the GPU for every method (FlexPrefill and SharePrefill in both presets,
// with and without cluster files, the compatibility switches, the pooled
// exclusion distribution, a budget cap, DenseBelow; MInference's
// vertical-slash; dense) and, at the end of every layer, plans the same
// layer on the host from the same estimates (read back) and the same pivot
// maps: every head's CSR list must equal the host planner's block for
// block, and the statistics decoded once per call must equal the host
// planner's. Heads whose gate lies within gateTol of its threshold are
// excluded and counted (see gateTol).
func TestGPUPlannerEqualsHostPlanner(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	tokens := randomTokens(rng, testN, e.Config().VocabSize)
	methods := map[string]bool{}
	for _, c := range planCases() {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(c.mk(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !a.OnGPU() {
				t.Fatal("the planner does not run on the GPU")
			}
			tw := &hostTwin{t: t, a: a, p: c.mk(t)}
			a.testHook = tw.hook
			allLogits(t, e, a, tokens)
			sameStats(t, a.Stats(), tw.p.Stats())
			sum := a.Stats().Summarize()
			for m := range sum.HeadsPerMethod {
				methods[m] = true
			}
			t.Logf("%s; %d heads compared, %d excluded near a threshold", a.Stats(), tw.compared, tw.excluded)
			if tw.compared == 0 {
				t.Errorf("no head compared")
			}
		})
	}
	var ms []string
	for m := range methods {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	if len(ms) != 6 {
		t.Errorf("methods seen %v: every method should occur in some case", ms)
	}
}

// countingAttention wraps an Attention and records the device's submits
// and host waits inside every Layer call.
type countingAttention struct {
	*Attention
	dev    *runtime.Device
	inside runtime.Counters
	layers int
}

func (c *countingAttention) Layer(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	before := c.dev.Counters()
	err := c.Attention.Layer(r, l, q, k, v, o, p)
	d := c.dev.Counters().Sub(before)
	c.inside.Submits += d.Submits
	c.inside.Waits += d.Waits
	c.layers++
	return err
}

// randomEngine builds an engine on a random model with the given number of
// layers (8 query heads, 2 KV heads, head dim 16).
func randomEngine(t *testing.T, d *runtime.Device, layers int) *model.Engine {
	t.Helper()
	cfg := model.Config{
		Architecture: model.ArchLlama, HiddenSize: 64, NumLayers: layers, NumHeads: 8, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 96, VocabSize: 64, MaxPositionEmbeddings: 512, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "float32",
	}
	dir := t.TempDir()
	if err := model.WriteRandomCheckpoint(dir, cfg, 7); err != nil {
		t.Fatal(err)
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	e, err := model.NewEngine(d, &cfg, ck, model.EngineOptions{Context: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestPlannedLayerHasNoHostWait: with the planner on the GPU, no Layer call
// of any method submits or waits for the GPU, and a whole prefill waits as
// often as a dense one: a fixed number of times for a prompt the engine
// records in one batch (the same for 2 and 5 layers), and exactly as often
// as dense attention when the engine flushes every layer. The host planner,
// for contrast, waits inside every layer.
func TestPlannedLayerHasNoHostWait(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	engines := map[int]*model.Engine{2: randomEngine(t, d, 2), 5: randomEngine(t, d, 5)}
	clusters := func(layers int) *share.ClusterFile {
		// Head h of every layer in cluster h+1; odd clusters shared.
		cf := &share.ClusterFile{Clusters: map[string][]share.HeadRef{}}
		for h := 0; h < 8; h++ {
			id := fmt.Sprint(h + 1)
			for l := 0; l < layers; l++ {
				cf.Clusters[id] = append(cf.Clusters[id], share.HeadRef{Layer: l, Head: h})
			}
			if h%2 == 1 {
				cf.SharedClusters = append(cf.SharedClusters, id)
			}
		}
		return cf
	}
	type mk func(layers int) share.Planner
	planners := map[string]mk{
		"flex-paper":   func(int) share.Planner { p, _ := share.NewFlexPrefill(testConfig("paper", 0)); return p },
		"flex-release": func(int) share.Planner { p, _ := share.NewFlexPrefill(testConfig("release", 0)); return p },
		"share-paper": func(l int) share.Planner {
			p, _ := share.NewSharePrefill(testConfig("paper", 0), clusters(l))
			return p
		},
		"share-release": func(l int) share.Planner {
			p, _ := share.NewSharePrefill(testConfig("release", 0), clusters(l))
			return p
		},
		"vs": func(int) share.Planner {
			p, _ := share.NewVerticalSlash(share.VSConfig{BlockSize: testBlock, LastQ: 64, VerticalSize: 60, SlashSize: 120, ForcedColumns: 5, ForcedDiagonals: 20, Tile: 16})
			return p
		},
	}
	prefill := func(e *model.Engine, att model.Attention, n int) runtime.Counters {
		t.Helper()
		if err := e.SetAttention(att); err != nil {
			t.Fatal(err)
		}
		e.Reset()
		tokens := randomTokens(rng, n, e.Config().VocabSize)
		before := d.Counters()
		if _, err := e.Prefill(t.Context(), tokens); err != nil {
			t.Fatal(err)
		}
		return d.Counters().Sub(before)
	}
	// Dense baselines: n = 224 is recorded in one batch, n = 448 flushes a
	// batch per layer without waiting.
	type key struct{ layers, n int }
	dense := map[key]runtime.Counters{}
	for layers, e := range engines {
		for _, n := range []int{224, 448} {
			dense[key{layers, n}] = prefill(e, nil, n)
		}
	}
	for name, mkp := range planners {
		t.Run(name, func(t *testing.T) {
			lengths := []int{224}
			if name == "share-release" {
				lengths = append(lengths, 448)
			}
			for _, n := range lengths {
				waits := map[int]uint64{}
				for layers, e := range engines {
					a, err := New(mkp(layers), Options{})
					if err != nil {
						t.Fatal(err)
					}
					ca := &countingAttention{Attention: a, dev: d}
					c := prefill(e, ca, n)
					if ca.layers != layers {
						t.Fatalf("%d Layer calls for %d layers", ca.layers, layers)
					}
					if ca.inside.Submits != 0 || ca.inside.Waits != 0 {
						t.Errorf("n=%d, %d layers: %d submits and %d host waits inside Layer, want none", n, layers, ca.inside.Submits, ca.inside.Waits)
					}
					if dc := dense[key{layers, n}]; c.Waits != dc.Waits || c.Submits != dc.Submits {
						t.Errorf("n=%d, %d layers: prefill made %d submits and %d waits, dense attention %d and %d", n, layers, c.Submits, c.Waits, dc.Submits, dc.Waits)
					}
					if st := a.Stats(); st == nil || len(st.Layers) != layers {
						t.Errorf("statistics %v", st)
					}
					waits[layers] = c.Waits
				}
				if waits[2] != 1 || waits[5] != 1 {
					t.Errorf("n=%d: a prefill waits %d times with 2 layers and %d with 5, want once whatever the layers", n, waits[2], waits[5])
				}
				t.Logf("n=%d: host waits per prefill %v (by layers)", n, waits)
			}
		})
	}
	// The host planner, for contrast, waits inside its layers.
	a, err := New(planners["flex-paper"](2), Options{HostPlanner: true})
	if err != nil {
		t.Fatal(err)
	}
	ca := &countingAttention{Attention: a, dev: d}
	prefill(engines[2], ca, 224)
	if ca.inside.Waits == 0 {
		t.Errorf("the host planner made no host wait inside Layer: the counters do not see waits")
	}
}

// TestManyHeadsPlanOnHost: the GPU planner handles up to
// kernels.PlanMaxHeads query heads; a call with more plans on the host,
// and the next call with fewer plans on the GPU again.
func TestManyHeadsPlanOnHost(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p, err := share.NewFlexPrefill(testConfig("paper", 0))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, hq := range []int{kernels.PlanMaxHeads + 8, kernels.PlanMaxHeads} {
		s := Shape{NumHeads: hq, NumKVHeads: 8, HeadDim: 8, N: 96}
		x := randomQKV(t, d, rng, s)
		if err := a.begin(d, 1, s, 0); err != nil {
			t.Fatal(err)
		}
		if want := hq <= kernels.PlanMaxHeads; a.onGPU != want {
			t.Errorf("%d heads: planned on the GPU %v, want %v", hq, a.onGPU, want)
		}
		o, err := d.NewTensor(runtime.F16, s.N, hq, s.HeadDim)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Free()
		err = d.Run(func(r *runtime.Recorder) error {
			p := kernels.AttnParams{Hq: hq, Hkv: s.NumKVHeads, D: s.HeadDim, Sq: s.N, Skv: s.N, Causal: true}
			if err := a.Layer(r, 0, x.q, x.k, x.v, o, p); err != nil {
				return err
			}
			return a.End(r)
		})
		if err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st == nil || st.NumHeads != hq || len(st.Layers) != 1 || len(st.Layers[0].Heads) != hq {
			t.Errorf("%d heads: statistics %v", hq, st)
		}
	}
}

// TestGPUPlannerReusesBuffers: one Attention serves calls of different
// lengths (its buffers are views of buffers that only grow, and the pivot
// dictionary is cleared per call); every call still plans like a fresh
// host planner.
func TestGPUPlannerReusesBuffers(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	var mk func(t *testing.T) share.Planner
	for _, c := range planCases() {
		if c.name == "share-release-stories" {
			mk = c.mk
		}
	}
	a, err := New(mk(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{testN, 300, testN, 129, 40, testBlock} {
		tw := &hostTwin{t: t, a: a, p: mk(t)}
		a.testHook = tw.hook
		allLogits(t, e, a, randomTokens(rng, n, e.Config().VocabSize))
		sameStats(t, a.Stats(), tw.p.Stats())
		if tw.compared == 0 {
			t.Errorf("n=%d: no head compared", n)
		}
		t.Logf("n=%d: %s; %d compared, %d excluded", n, a.Stats(), tw.compared, tw.excluded)
	}
	// Statistics still decode after Close freed the buffers.
	a.testHook = nil
	allLogits(t, e, a, randomTokens(rng, 200, e.Config().VocabSize))
	a.Close()
	if st := a.Stats(); st == nil || st.N != 200 || len(st.Layers) != e.Config().NumLayers || st.Layers[0].Heads[0].Blocks == 0 {
		t.Errorf("statistics after Close: %v", st)
	}
}
