package share_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/share"
)

// smallCfg is a preset scaled to the small test grids: B = 16 and a floor of
// two blocks.
func smallCfg(t *testing.T, preset string) share.Config {
	t.Helper()
	c, err := share.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	c.BlockSize = 16
	c.MinBudget = 32
	return c
}

func optFor(c share.Config) ref.EstimateOptions {
	return ref.EstimateOptions{BlockSize: c.BlockSize, Gamma: c.Gamma, PooledMap: c.TauQuery > 0, Window: 64}
}

func clusterFile(shared []string, clusters map[string][]share.HeadRef) *share.ClusterFile {
	return &share.ClusterFile{Clusters: clusters, SharedClusters: shared}
}

// TestPatternsSelectExpectedBlocks: constructed heads with known patterns
// get the expected blocks from the VS path (no clusters).
func TestPatternsSelectExpectedBlocks(t *testing.T) {
	const n, b = 600, 16
	nb := share.NumBlocks(n, b)
	tests := []struct {
		name  string
		head  ref.Head
		check func(l *share.BlockList) bool
	}{
		{"vertical stripe at key 333", ref.StripeHead(n, 16, 333, 60, 1), func(l *share.BlockList) bool {
			c := 333 / b
			for r := c; r < nb; r++ {
				if !l.Contains(r, c) {
					return false
				}
			}
			return true
		}},
		{"sink at key 0", ref.StripeHead(n, 16, 0, 60, 2), func(l *share.BlockList) bool { return true }},
		{"slash at offset 200", ref.DiagHead(n, 200, 3), func(l *share.BlockList) bool {
			ob := 200 / b
			for r := ob; r < nb; r++ {
				if !l.Contains(r, r-ob) {
					return false
				}
			}
			return true
		}},
		{"local window", ref.DiagHead(n, 0, 3), func(l *share.BlockList) bool { return true }},
	}
	for _, tc := range tests {
		for _, preset := range []string{"paper", "release"} {
			cfg := smallCfg(t, preset)
			cfg.TauQuery = 0
			p, err := share.NewFlexPrefill(cfg)
			if err != nil {
				t.Fatal(err)
			}
			plans := runPlanner(t, p, [][]ref.Head{{tc.head}}, optFor(cfg))
			hp := plans[0].Heads[0]
			checkListInvariants(t, tc.name, hp.List)
			if hp.Method != share.MethodVerticalSlash {
				t.Errorf("%s/%s: method %v, want vertical-slash", tc.name, preset, hp.Method)
			}
			if !tc.check(hp.List) {
				t.Errorf("%s/%s: expected blocks missing", tc.name, preset)
			}
			if d := hp.List.Density(); d > 0.25 {
				t.Errorf("%s/%s: density %.3f, want a sparse list", tc.name, preset, d)
			}
			if p.Stats().Note != share.NoClusterNote {
				t.Errorf("missing no-cluster note: %q", p.Stats().Note)
			}
		}
	}
}

func TestSharingScenarios(t *testing.T) {
	const n, d = 400, 16
	uni := ref.RandomHead(n, d, 0.3, 1)   // broad attention: not excluded
	ret := ref.RetrievalHead(n, 32, 8, 2) // content-dependent, spiky
	stripe := ref.StripeHead(n, d, 250, 60, 3)
	tests := []struct {
		name     string
		preset   string
		mod      func(*share.Config)
		layers   [][]ref.Head
		clusters map[string][]share.HeadRef
		shared   []string
		want     [][]share.Method
	}{
		{
			name:   "paper: alike heads in later layers share, same layer falls back",
			preset: "paper",
			layers: [][]ref.Head{{uni, uni}, {uni, uni}},
			clusters: map[string][]share.HeadRef{
				"1": {{0, 0}, {0, 1}, {1, 1}},
			},
			want: [][]share.Method{{share.MethodPivot, share.MethodVerticalSlash}, {share.MethodVerticalSlash, share.MethodShared}},
		},
		{
			name:     "paper: a one-column head is excluded at δ = 0.3 and cannot be pivot",
			preset:   "paper",
			layers:   [][]ref.Head{{stripe, uni}, {uni, uni}},
			clusters: map[string][]share.HeadRef{"4": {{0, 0}, {0, 1}, {1, 0}}},
			want:     [][]share.Method{{share.MethodExcluded, share.MethodPivot}, {share.MethodShared, share.MethodVerticalSlash}},
		},
		{
			name:     "no exclusion: a differently built head fails the gate",
			preset:   "paper",
			mod:      func(c *share.Config) { c.Exclusion = share.ExcludeNone },
			layers:   [][]ref.Head{{uni}, {stripe}, {uni}},
			clusters: map[string][]share.HeadRef{"2": {{0, 0}, {1, 0}, {2, 0}}},
			want:     [][]share.Method{{share.MethodPivot}, {share.MethodVerticalSlash}, {share.MethodShared}},
		},
		{
			name:     "release: retrieval pivot with low vs_ratio shares",
			preset:   "release",
			layers:   [][]ref.Head{{ret, ret}, {ret, ret}},
			clusters: map[string][]share.HeadRef{"9": {{0, 1}, {1, 0}}, "3": {{0, 0}, {1, 1}}},
			shared:   []string{"9"},
			want:     [][]share.Method{{share.MethodVerticalSlash, share.MethodPivot}, {share.MethodShared, share.MethodVerticalSlash}},
		},
		{
			name:     "release: broad pivot's VS already covers it (vs_ratio ≥ τ_f)",
			preset:   "release",
			mod:      func(c *share.Config) { c.TauQuery = 0 },
			layers:   [][]ref.Head{{uni}, {uni}},
			clusters: map[string][]share.HeadRef{"9": {{0, 0}, {1, 0}}},
			shared:   []string{"9"},
			want:     [][]share.Method{{share.MethodPivot}, {share.MethodVerticalSlash}},
		},
	}
	for _, tc := range tests {
		cfg := smallCfg(t, tc.preset)
		if tc.mod != nil {
			tc.mod(&cfg)
		}
		p, err := share.NewSharePrefill(cfg, clusterFile(tc.shared, tc.clusters))
		if err != nil {
			t.Fatal(err)
		}
		plans := runPlanner(t, p, tc.layers, optFor(cfg))
		for l, plan := range plans {
			for h, hp := range plan.Heads {
				checkListInvariants(t, tc.name, hp.List)
				if hp.Method != tc.want[l][h] {
					t.Errorf("%s: (%d,%d) method %v (%s), want %v", tc.name, l, h, hp.Method, p.Stats().Layers[l].Heads[h].Reason, tc.want[l][h])
				}
				if hp.Method == share.MethodExcluded && !hp.Excluded {
					t.Errorf("%s: excluded head not flagged", tc.name)
				}
				if hp.Method == share.MethodPivot && (!hp.NeedMap || hp.List.Density() != 1) {
					t.Errorf("%s: pivot must be dense and request its map", tc.name)
				}
				if hp.Method == share.MethodShared {
					// The shared list holds the pivot pattern, which covers
					// ≥ γ of every row of the (identical) head's exact map.
					hd := tc.layers[l][h]
					m, _ := ref.BlockMap(hd.Q, hd.K, cfg.BlockSize)
					for r := 0; r < m.NB; r++ {
						var s float64
						for _, c := range hp.List.Row(r) {
							s += m.At(r, int(c))
						}
						if s < cfg.Gamma-1e-9 {
							t.Errorf("%s: shared row %d keeps %.3f < γ", tc.name, r, s)
						}
					}
				}
			}
		}
		if _, err := p.Stats().JSON(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetrievalSharingIsSparse: the shared pattern of a content-dependent
// head is much sparser than dense yet keeps the mass (the point of sharing).
func TestRetrievalSharingIsSparse(t *testing.T) {
	cfg := smallCfg(t, "release")
	cfg.TauQuery = 0
	ret := ref.RetrievalHead(800, 32, 8, 5)
	p, _ := share.NewSharePrefill(cfg, clusterFile([]string{"1"}, map[string][]share.HeadRef{"1": {{0, 0}, {1, 0}}}))
	plans := runPlanner(t, p, [][]ref.Head{{ret}, {ret}}, optFor(cfg))
	if plans[1].Heads[0].Method != share.MethodShared {
		t.Fatalf("method %v", plans[1].Heads[0].Method)
	}
	if d := plans[1].Heads[0].List.Density(); d > 0.6 {
		t.Fatalf("shared density %.3f", d)
	}
	st := p.Stats().Layers[0].Heads[0]
	if st.VSRatio == nil || *st.VSRatio >= cfg.TauFallback || st.PatternDensity == nil {
		t.Fatalf("pivot stats %+v", st)
	}
}

// TestCompatModeBlocksSharing: a pivot whose VS set holds a far column has a
// small de-duplicated vs_ratio but an inflated compat ratio
// (docs/algorithm.md#compatibility-switches), which
// switches sharing off under VSCoverage.
func TestCompatModeBlocksSharing(t *testing.T) {
	const nb, b = 64, 16
	n := nb * b
	he := share.HeadEstimates{V: make([]float64, nb), S: make([]float64, nb), Kv: 1, Ks: 1}
	he.V[0], he.V[60] = 0.5, 0.5
	he.S[0], he.S[1] = 0.5, 0.5
	m := share.NewBlockMap(nb) // mass spread on (r, r/2): not captured by VS
	for r := 0; r < nb; r++ {
		m.Data[r*nb+r/2] += 0.9
		m.Data[r*nb+r] += 0.1
	}
	for _, compat := range []bool{false, true} {
		cfg := smallCfg(t, "release")
		cfg.TauQuery = 0
		cfg.VSRatioCompat = compat
		p, _ := share.NewSharePrefill(cfg, clusterFile([]string{"1"}, map[string][]share.HeadRef{"1": {{0, 0}, {1, 0}}}))
		if err := p.Begin(n, 2, 1, 1); err != nil {
			t.Fatal(err)
		}
		est := &share.LayerEstimates{Layer: 0, N: n, NB: nb, BlockSize: b, Heads: []share.HeadEstimates{he}}
		if _, err := p.PlanLayer(0, est); err != nil {
			t.Fatal(err)
		}
		if err := p.ObserveMap(0, 0, m); err != nil {
			t.Fatal(err)
		}
		est.Layer = 1
		plan, err := p.PlanLayer(1, est)
		if err != nil {
			t.Fatal(err)
		}
		want := share.MethodShared
		if compat {
			want = share.MethodVerticalSlash
		}
		if got := plan.Heads[0].Method; got != want {
			r := p.Stats().Layers[0].Heads[0].VSRatio
			t.Errorf("compat=%v: method %v (vs_ratio %v), want %v", compat, got, *r, want)
		}
	}
}

// TestNaNCompatDisablesGates: with a zero entry the release JSD is NaN, and
// the head neither shares nor goes query-aware (docs/algorithm.md#js-gates).
func TestNaNCompatDisablesGates(t *testing.T) {
	const nb, b = 64, 16
	n := nb * b
	he := share.HeadEstimates{V: make([]float64, nb), S: make([]float64, nb), Pooled: make([]float64, nb), Kv: 1, Ks: 1, M: uniformRowsMap(nb)}
	for i := range he.V {
		he.V[i], he.S[i], he.Pooled[i] = 1.0/nb, 1.0/nb, 1.0/nb
	}
	he.V[3], he.V[4] = 0, 2.0/nb
	for _, compat := range []bool{false, true} {
		cfg := smallCfg(t, "release")
		cfg.NaNCompat = compat
		p, _ := share.NewFlexPrefill(cfg)
		if err := p.Begin(n, 1, 1, 1); err != nil {
			t.Fatal(err)
		}
		plan, err := p.PlanLayer(0, &share.LayerEstimates{N: n, NB: nb, BlockSize: b, Heads: []share.HeadEstimates{he}})
		if err != nil {
			t.Fatal(err)
		}
		want := share.MethodQueryAware
		if compat {
			want = share.MethodVerticalSlash
		}
		if plan.Heads[0].Method != want {
			t.Errorf("NaNCompat=%v: %v, want %v", compat, plan.Heads[0].Method, want)
		}
		if _, err := p.Stats().JSON(); err != nil {
			t.Fatalf("stats with NaN must still encode: %v", err)
		}
	}
}

// TestGammaOneIsDense: with γ = 1 every method's list covers every causal
// block, so the sparse output equals dense attention.
func TestGammaOneIsDense(t *testing.T) {
	const n, d = 300, 8
	heads := []ref.Head{ref.RandomHead(n, d, 1, 1), ref.RandomHead(n, d, 0.2, 2), ref.StripeHead(n, d, 100, 8, 3), ref.DiagHead(n, 5, 1)}
	layers := [][]ref.Head{heads, heads}
	cl := map[string][]share.HeadRef{"1": {{0, 0}, {1, 0}}, "2": {{0, 1}, {0, 2}, {1, 1}, {1, 2}}}
	type mk func() (share.Planner, ref.EstimateOptions)
	planners := map[string]mk{}
	for _, preset := range []string{"paper", "release"} {
		for _, tq := range []float64{0, 0.5} {
			cfg := smallCfg(t, preset)
			cfg.Gamma, cfg.TauQuery, cfg.TauShare, cfg.Exclusion = 1, tq, 0.8, share.ExcludeNone
			cfg.ShareScope = share.ScopeAll
			key := preset + map[bool]string{true: "/qa", false: ""}[tq > 0]
			planners[key+"/share"] = func() (share.Planner, ref.EstimateOptions) {
				p, _ := share.NewSharePrefill(cfg, clusterFile(nil, cl))
				return p, optFor(cfg)
			}
			planners[key+"/flex"] = func() (share.Planner, ref.EstimateOptions) {
				p, _ := share.NewFlexPrefill(cfg)
				return p, optFor(cfg)
			}
		}
	}
	planners["vertical-slash"] = func() (share.Planner, ref.EstimateOptions) {
		c := share.DefaultVSConfig()
		c.BlockSize = 16
		p, _ := share.NewVerticalSlash(c) // n ≤ 1000 keeps every column
		return p, ref.EstimateOptions{BlockSize: 16, Gamma: 1, Window: 64}
	}
	planners["dense"] = func() (share.Planner, ref.EstimateOptions) {
		p, _ := share.NewDense(16)
		return p, ref.EstimateOptions{BlockSize: 16, Gamma: 1}
	}
	methods := map[share.Method]bool{}
	for name, f := range planners {
		p, opt := f()
		for l, plan := range runPlanner(t, p, layers, opt) {
			for h, hp := range plan.Heads {
				methods[hp.Method] = true
				if hp.List.NumBlocks() != share.CausalBlocks(plan.NB) {
					t.Fatalf("%s: (%d,%d) %v lists %d of %d causal blocks", name, l, h, hp.Method, hp.List.NumBlocks(), share.CausalBlocks(plan.NB))
				}
			}
			if l == 1 {
				hd := heads[3]
				o1, _, _ := ref.SparseAttention(hd.Q, hd.K, hd.Q, plan.Heads[3].List, 16)
				o2, _, _ := ref.DenseAttention(hd.Q, hd.K, hd.Q, 16)
				for i := range o1 {
					for e := range o1[i] {
						if o1[i][e] != o2[i][e] {
							t.Fatalf("%s: output differs from dense", name)
						}
					}
				}
			}
		}
	}
	for _, m := range []share.Method{share.MethodDense, share.MethodPivot, share.MethodShared, share.MethodVerticalSlash, share.MethodQueryAware} {
		if !methods[m] {
			t.Errorf("method %v not exercised", m)
		}
	}
}

func TestVerticalSlashPlanner(t *testing.T) {
	const n = 2500
	c := share.DefaultVSConfig()
	c.VerticalSize, c.SlashSize = 31, 101 // 30 forced sinks + 1, 100 forced diagonals + 1
	p, err := share.NewVerticalSlash(c)
	if err != nil {
		t.Fatal(err)
	}
	heads := []ref.Head{ref.StripeHead(n, 16, 1700, 60, 1), ref.DiagHead(n, 700, 3)}
	plan := runPlanner(t, p, [][]ref.Head{heads}, ref.EstimateOptions{BlockSize: 128, Gamma: 0.9, Window: c.LastQ})[0]
	nb := plan.NB
	for h, hp := range plan.Heads {
		checkListInvariants(t, "vertical-slash", hp.List)
		if hp.List.Density() > 0.6 {
			t.Errorf("head %d density %.3f", h, hp.List.Density())
		}
	}
	for r := 1700 / 128; r < nb; r++ {
		if !plan.Heads[0].List.Contains(r, 1700/128) {
			t.Fatalf("stripe column missing in row %d", r)
		}
	}
	// Offset 700 from rows [a, a+64) reaches keys [a−700, a−637]: block
	// (a−700)/128 or (a−637)/128.
	for r := 6; r < nb; r++ {
		a := r * 128
		if !plan.Heads[1].List.Contains(r, (a-700)/128) || !plan.Heads[1].List.Contains(r, (a+127-700)/128) {
			t.Fatalf("slash blocks missing in row %d: %v", r, plan.Heads[1].List.Row(r))
		}
	}
	// Forced sinks and local diagonals.
	cols, offs := p.SelectTokens(make([]float64, n), make([]float64, n))
	if len(cols) != 31 || cols[29] != 29 || len(offs) != 101 || offs[99] != 99 {
		t.Fatalf("forced entries: %d cols (%v…), %d offs", len(cols), cols[:3], len(offs))
	}
}

// TestMapVSToBlocksRule checks the 64-row-half rule directly.
func TestMapVSToBlocksRule(t *testing.T) {
	// n = 512, B = 128, offset 200: rows [64, 128) reach keys [−136, −73]
	// (none); rows [192, 256) reach [−8, 55] → block 0; rows [320, 384)
	// reach [120, 183] → blocks 0 and 1.
	l := share.MapVSToBlocks(512, 128, 64, nil, []int{200})
	if len(l.Row(0)) != 0 || len(l.Row(1)) != 1 || !l.Contains(1, 0) || len(l.Row(2)) != 2 || !l.Contains(2, 1) {
		t.Fatalf("rows: %v %v %v", l.Row(0), l.Row(1), l.Row(2))
	}
	l = share.MapVSToBlocks(512, 128, 64, []int{300}, nil)
	if l.Contains(1, 2) || !l.Contains(2, 2) || !l.Contains(3, 2) || l.NumBlocks() != 2 {
		t.Fatalf("vertical: %+v", l)
	}
}

func TestPlannerContract(t *testing.T) {
	cfg := smallCfg(t, "paper")
	p, _ := share.NewSharePrefill(cfg, clusterFile(nil, map[string][]share.HeadRef{"1": {{0, 0}, {1, 0}}}))
	h := ref.RandomHead(100, 8, 0.3, 1)
	est := layerEst(t, 0, []ref.Head{h}, optFor(cfg))
	if _, err := p.PlanLayer(0, est); err == nil {
		t.Fatal("PlanLayer before Begin must fail")
	}
	if err := p.Begin(100, 2, 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PlanLayer(1, est); err == nil {
		t.Fatal("out-of-order layer must fail")
	}
	plan, err := p.PlanLayer(0, est)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.MapHeads()) != 1 {
		t.Fatal("pivot map not requested")
	}
	if _, err := p.PlanLayer(1, layerEst(t, 1, []ref.Head{h}, optFor(cfg))); err == nil || !strings.Contains(err.Error(), "not observed") {
		t.Fatalf("missing ObserveMap must fail, got %v", err)
	}
	if err := p.ObserveMap(0, 0, share.NewBlockMap(3)); err == nil {
		t.Fatal("wrong map size must fail")
	}
	if err := p.ObserveMap(1, 0, share.NewBlockMap(7)); err == nil {
		t.Fatal("unrequested map must fail")
	}
	// Cluster file out of range for the model.
	q, _ := share.NewSharePrefill(cfg, clusterFile(nil, map[string][]share.HeadRef{"1": {{5, 0}}}))
	if err := q.Begin(100, 2, 1, 1); err == nil {
		t.Fatal("out-of-range cluster must fail at Begin")
	}
	// DenseBelow.
	cfg.DenseBelow = 200
	r, _ := share.NewFlexPrefill(cfg)
	_ = r.Begin(100, 1, 1, 1)
	plan, err = r.PlanLayer(0, nil)
	if err != nil || plan.Heads[0].Method != share.MethodDense {
		t.Fatalf("DenseBelow: %v %v", err, plan)
	}
}

func TestStatsJSONAndSummary(t *testing.T) {
	cfg := smallCfg(t, "paper")
	uni := ref.RandomHead(300, 8, 0.3, 1)
	p, _ := share.NewSharePrefill(cfg, clusterFile(nil, map[string][]share.HeadRef{"1": {{0, 0}, {1, 0}}}))
	runPlanner(t, p, [][]ref.Head{{uni, ref.StripeHead(300, 8, 10, 60, 2)}, {uni, uni}}, optFor(cfg))
	st := p.Stats()
	if err := st.SetGPUTime(1, 1000, 5000); err != nil {
		t.Fatal(err)
	}
	if err := st.SetGPUTime(7, 1, 1); err == nil {
		t.Fatal("unplanned layer accepted")
	}
	b, err := st.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back share.Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	s := back.Summary
	if s.HeadsPerMethod["pivot"] != 1 || s.HeadsPerMethod["shared"] != 1 || s.HeadsPerMethod["vertical-slash"] != 2 {
		t.Fatalf("summary %+v", s)
	}
	if back.Config.Exclusion != share.ExcludeJSUniform || back.Layers[1].AttentionGPU != 5000 || s.AttentionGPU != 5000 {
		t.Fatalf("round trip lost fields: %+v", back.Layers[1])
	}
	if s.MeanDensity <= 0 || s.MeanDensity > 1 || math.IsNaN(s.MeanDensity) {
		t.Fatalf("mean density %v", s.MeanDensity)
	}
	if !strings.Contains(st.String(), "pivot=1") {
		t.Fatalf("String() = %q", st.String())
	}
}

func TestPresetsAndValidate(t *testing.T) {
	for _, name := range append(share.PresetNames, "") {
		c, err := share.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	r, _ := share.Preset("release")
	if r.Gamma != 0.95 || r.TauShare != 0.5 || r.Exclusion != share.ExcludeVSCoverage || r.TauQuery != 0.1 || r.ShareScope != share.ScopeSharedClusters {
		t.Fatalf("release preset %+v", r)
	}
	if _, err := share.Preset("nope"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	bad := share.DefaultConfig()
	bad.Gamma, bad.BlockSize = 0, 0
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "gamma") || !strings.Contains(err.Error(), "BlockSize") {
		t.Fatalf("validate: %v", err)
	}
	for _, v := range []any{share.ExcludeVSCoverage, share.DistPooled, share.ScopeSharedClusters, share.MethodShared} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), "(") {
			t.Fatalf("enum %v encodes as %s", v, b)
		}
	}
}

// TestPresetSpecs: the three bases, FlexPrefill's own defaults and the
// knob overrides.
func TestPresetSpecs(t *testing.T) {
	f, err := share.Preset("flex")
	if err != nil {
		t.Fatal(err)
	}
	if f.Gamma != 0.9 || f.TauQuery != 0.1 || f.MinBudget != 1024 || f.BlockSize != 128 || !f.ShortBypass || f.Exclusion != share.ExcludeNone {
		t.Fatalf("flex preset %+v", f)
	}
	if f.ShortBypassLen() != 1024 || !f.DenseFor(1024) || f.DenseFor(1025) {
		t.Fatalf("flex bypass: len %d, dense(1024) %v, dense(1025) %v", f.ShortBypassLen(), f.DenseFor(1024), f.DenseFor(1025))
	}
	p, _ := share.Preset("paper")
	if p.DenseFor(100) || p.ShortBypass {
		t.Fatal("paper preset must not bypass short prompts")
	}
	c, err := share.Preset(" release : exclusion=none, gamma=0.9,tau_share=0.25,share_scope=all,short_bypass=true,dense_below=7")
	if err != nil {
		t.Fatal(err)
	}
	if c.Exclusion != share.ExcludeNone || c.Gamma != 0.9 || c.TauShare != 0.25 || c.ShareScope != share.ScopeAll || !c.ShortBypass || c.DenseBelow != 7 || c.TauQuery != 0.1 {
		t.Fatalf("overrides not applied: %+v", c)
	}
	if c, _ := share.Preset("paper:exclusion_dist=slash,delta=0.5"); c.ExclusionKey() != "js-uniform(S)" || !strings.Contains(c.ExclusionRule(), "JSD(S, U) > δ = 0.5") {
		t.Fatalf("exclusion naming: %q / %q", c.ExclusionKey(), c.ExclusionRule())
	}
	for _, bad := range []string{"paper:gamma", "paper:gamma=x", "paper:nope=1", "paper:gamma=1.5", "paper:exclusion=some", "flexible"} {
		if _, err := share.Preset(bad); err == nil {
			t.Errorf("Preset(%q) accepted", bad)
		}
	}
}

// TestFlexShortBypass: FlexPrefill plans every head dense up to
// max(2B, ⌈min_budget/B⌉·B) tokens and plans from the next token on;
// SharePrefill's presets never bypass.
func TestFlexShortBypass(t *testing.T) {
	for _, tc := range []struct {
		preset    string
		n         int
		wantDense bool
	}{
		{"flex", 32, true}, // B = 16, min_budget 32: bypass up to 32 tokens
		{"flex", 33, false},
		{"flex:min_budget=64", 64, true},
		{"flex:min_budget=64", 65, false},
		{"paper", 20, false},
		{"release", 20, false},
	} {
		cfg := smallCfg(t, tc.preset)
		if strings.Contains(tc.preset, "min_budget=64") {
			cfg.MinBudget = 64
		}
		p, err := share.NewFlexPrefill(cfg)
		if err != nil {
			t.Fatal(err)
		}
		plans := runPlanner(t, p, [][]ref.Head{{ref.RandomHead(tc.n, 8, 0.3, 1)}}, optFor(cfg))
		dense := plans[0].Heads[0].Method == share.MethodDense
		if dense != tc.wantDense {
			t.Errorf("%s n=%d: method %v, want dense %v", tc.preset, tc.n, plans[0].Heads[0].Method, tc.wantDense)
		}
		if dense && !strings.Contains(p.Stats().Layers[0].Heads[0].Reason, "short-prompt bypass") {
			t.Errorf("%s n=%d: reason %q", tc.preset, tc.n, p.Stats().Layers[0].Heads[0].Reason)
		}
		if dense {
			if qa, err := p.QueryAwareHeads(nil); err != nil || qa != nil {
				t.Errorf("%s n=%d: a bypassed call selects query-aware heads %v (%v)", tc.preset, tc.n, qa, err)
			}
		}
	}
}

// TestEachPresetPlans runs the CPU planner of every preset on one model and
// checks what sets each apart: paper ignores shared_clusters and says so,
// excluding by JSD(V, U); release honours them and counts the members its
// vs_ratio rule keeps from sharing; flex has no clusters, takes the
// query-aware path on near-uniform heads and reports no exclusion.
func TestEachPresetPlans(t *testing.T) {
	const n, d = 400, 16
	uni := ref.RandomHead(n, d, 0.05, 1) // near-uniform: query-aware under τ = 0.1
	broad := ref.RandomHead(n, d, 0.3, 2)
	stripe := ref.StripeHead(n, d, 250, 60, 3)
	layers := [][]ref.Head{{stripe, broad, uni}, {broad, broad, uni}, {broad, stripe, uni}}
	cl := map[string][]share.HeadRef{"1": {{0, 0}, {0, 1}, {1, 0}, {2, 0}, {2, 1}}, "2": {{1, 1}, {2, 2}}, "3": {{0, 2}, {1, 2}}}
	for _, preset := range []string{"paper", "release", "flex"} {
		cfg := smallCfg(t, preset)
		var (
			p   *share.SharePrefill
			err error
		)
		if preset == "flex" {
			p, err = share.NewFlexPrefill(cfg)
		} else {
			p, err = share.NewSharePrefill(cfg, clusterFile([]string{"1"}, cl))
		}
		if err != nil {
			t.Fatal(err)
		}
		plans := runPlanner(t, p, layers, optFor(cfg))
		st := p.Stats()
		sum := st.Summarize()
		for _, plan := range plans {
			for h, hp := range plan.Heads {
				checkListInvariants(t, preset, hp.List)
				if preset == "flex" && (hp.Method == share.MethodPivot || hp.Method == share.MethodShared || hp.Cluster != "") {
					t.Errorf("flex: head %d of layer %d has method %v cluster %q", h, plan.Layer, hp.Method, hp.Cluster)
				}
			}
		}
		t.Logf("%s: %s; excluded_by %v; scope %q", preset, st, sum.ExcludedBy, st.Scope)
		switch preset {
		case "paper":
			if !strings.Contains(st.Scope, "shared_clusters (1 of 3 clusters) are ignored") {
				t.Errorf("paper: scope %q does not say shared_clusters are ignored", st.Scope)
			}
			if sum.Excluded == 0 || sum.ExcludedBy["js-uniform(V)"] != sum.Excluded || !strings.Contains(st.Exclusion, "JSD(V, U) > δ = 0.3") {
				t.Errorf("paper: excluded %d, by rule %v, rule %q", sum.Excluded, sum.ExcludedBy, st.Exclusion)
			}
			if sum.HeadsPerMethod["pivot"] < 2 {
				t.Errorf("paper: %d pivots, want one per cluster with eligible members outside shared_clusters too", sum.HeadsPerMethod["pivot"])
			}
		case "release":
			if !strings.Contains(st.Scope, "the 1 of 3 clusters in the file's shared_clusters may elect a pivot") {
				t.Errorf("release: scope %q", st.Scope)
			}
			if sum.HeadsPerMethod["pivot"] != 1 || sum.Excluded != 0 || !strings.Contains(st.Exclusion, "vs_ratio ≥ τ_f = 0.95") {
				t.Errorf("release: heads %v excluded %d rule %q", sum.HeadsPerMethod, sum.Excluded, st.Exclusion)
			}
			for l, ls := range st.Layers {
				for _, hs := range ls.Heads {
					if hs.Reason == "pivot vs_ratio ≥ τ_f" && hs.ExcludedBy != "vs-coverage" {
						t.Errorf("release: layer %d head %d kept from sharing by vs_ratio but excluded_by %q", l, hs.Head, hs.ExcludedBy)
					}
				}
			}
		case "flex":
			if sum.HeadsPerMethod["query-aware"] == 0 || len(sum.ExcludedBy) != 0 || st.Note != share.NoClusterNote || st.Scope != "" || !strings.HasPrefix(st.Exclusion, "none") {
				t.Errorf("flex: heads %v excluded_by %v note %q rule %q", sum.HeadsPerMethod, sum.ExcludedBy, st.Note, st.Exclusion)
			}
		}
	}
}

// TestVSCoverageCountsExcluded: the release rule's refusals are counted per
// rule in the summary.
func TestVSCoverageCountsExcluded(t *testing.T) {
	cfg := smallCfg(t, "release")
	cfg.TauQuery = 0
	uni := ref.RandomHead(300, 16, 0.3, 1)
	p, _ := share.NewSharePrefill(cfg, clusterFile([]string{"9"}, map[string][]share.HeadRef{"9": {{0, 0}, {1, 0}, {2, 0}}}))
	runPlanner(t, p, [][]ref.Head{{uni}, {uni}, {uni}}, optFor(cfg))
	b, err := p.Stats().JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back share.Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Summary.ExcludedBy["vs-coverage"]; got != 2 || back.Summary.Excluded != 0 {
		t.Fatalf("excluded_by %v, excluded %d: want 2 members refused by vs-coverage, none excluded as sparse", back.Summary.ExcludedBy, back.Summary.Excluded)
	}
}
