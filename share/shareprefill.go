package share

import (
	"fmt"
	"time"
)

// NoClusterNote is the statistics note of a SharePrefill or FlexPrefill
// planner without a cluster file. Such a planner is FlexPrefill only with
// FlexConfig; with a SharePrefill preset it is the ablation "no sharing".
const NoClusterNote = "no cluster file: every head alone (no pivot, no sharing)"

// pivotEntry is one entry of the per-call pivot dictionary
// (docs/algorithm.md#per-call-state).
type pivotEntry struct {
	pivot   HeadRef
	vRef    []float64
	sRef    []float64
	vs      VSSet      // the pivot's own γ-budget VS set
	pattern *BlockList // P_c; nil until ObserveMap
	vsRatio float64
	stat    *HeadStat // the pivot's stat, to record vs_ratio
}

// SharePrefill is the cluster-aware planner of docs/algorithm.md#online-phase.
// Without a cluster file every head is noise and the planner is FlexPrefill
// (query-aware gate + VS with γ budgets).
type SharePrefill struct {
	cfg      Config
	clusters *ClusterFile
	name     string

	st        callState
	clusterOf [][]int // [layer][head] → index into ids, −1 for noise
	ids       []string
	inScope   []bool
	uniform   []float64
	dict      map[int]*pivotEntry
	pending   map[HeadRef]int // pivots whose map is awaited → cluster index
	stats     *Stats
}

// NewSharePrefill returns a SharePrefill planner. clusters may be nil (then
// it behaves as FlexPrefill); it is checked against the model in Begin.
func NewSharePrefill(cfg Config, clusters *ClusterFile) (*SharePrefill, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("share: new shareprefill planner: %w", err)
	}
	return &SharePrefill{cfg: cfg, clusters: clusters, name: "shareprefill"}, nil
}

// NewFlexPrefill returns the FlexPrefill planner: SharePrefill without
// clusters (query-aware heads take the pooled selection plus floor VS, all
// others VS with γ budgets). FlexConfig (the "flex" preset) holds
// FlexPrefill's own defaults: the τ = 0.1 query-aware gate, γ = 0.9 and the
// short-prompt dense bypass (Config.ShortBypass, applied in PlanLayer: a
// prompt of at most 1024 tokens gets a dense plan for every head). With
// another configuration it is SharePrefill's online phase without clusters,
// not FlexPrefill.
func NewFlexPrefill(cfg Config) (*SharePrefill, error) {
	p, err := NewSharePrefill(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("share: new flexprefill planner: %w", err)
	}
	p.name = "flexprefill"
	return p, nil
}

// Config returns the planner's configuration.
func (p *SharePrefill) Config() Config { return p.cfg }

// Clusters returns the planner's cluster file (nil without one). It must
// not be modified.
func (p *SharePrefill) Clusters() *ClusterFile { return p.clusters }

// Name implements Planner.
func (p *SharePrefill) Name() string { return p.name }

// Needs implements Planner.
func (p *SharePrefill) Needs() Needs {
	return Needs{
		BlockSize: p.cfg.BlockSize,
		LastBlock: true,
		Gamma:     p.cfg.Gamma,
		Pooled:    p.cfg.TauQuery > 0 || (p.cfg.Exclusion == ExcludeJSUniform && p.cfg.ExclusionDist == DistPooled),
		PooledMap: p.cfg.TauQuery > 0,
	}
}

// Begin implements Planner. It validates the cluster file against the
// model and clears the pivot dictionary.
func (p *SharePrefill) Begin(n, numLayers, numHeads, numKVHeads int) error {
	if err := p.st.begin(p.name, n, numLayers, numHeads, numKVHeads, p.cfg.BlockSize); err != nil {
		return err
	}
	p.clusterOf = make([][]int, numLayers)
	for l := range p.clusterOf {
		p.clusterOf[l] = make([]int, numHeads)
		for h := range p.clusterOf[l] {
			p.clusterOf[l][h] = -1
		}
	}
	p.ids, p.inScope = nil, nil
	p.stats = newStats(p.name, n, p.st.nb, p.cfg.BlockSize, numLayers, numHeads, numKVHeads)
	cfg := p.cfg
	p.stats.Config = &cfg
	if p.clusters == nil {
		p.stats.Note = NoClusterNote
	} else {
		if err := p.clusters.Validate(numLayers, numHeads); err != nil {
			return fmt.Errorf("share: %s: begin: %w", p.name, err)
		}
		shared := map[string]bool{}
		for _, id := range p.clusters.SharedClusters {
			shared[id] = true
		}
		p.ids = p.clusters.IDs()
		p.inScope = make([]bool, len(p.ids))
		for i, id := range p.ids {
			p.inScope[i] = p.cfg.ShareScope == ScopeAll || shared[id]
			for _, h := range p.clusters.Clusters[id] {
				p.clusterOf[h.Layer][h.Head] = i
			}
		}
		p.stats.Scope = p.clusters.ScopeNote(p.cfg.ShareScope)
	}
	p.stats.Exclusion = p.cfg.ExclusionRule()
	p.uniform = UniformBlocks(n, p.cfg.BlockSize)
	p.dict = map[int]*pivotEntry{}
	p.pending = map[HeadRef]int{}
	return nil
}

// ScopeNote says, for the statistics (Stats.Scope), which clusters of f may
// elect a pivot under scope, and whether f's shared_clusters list is
// honoured or ignored.
func (f *ClusterFile) ScopeNote(scope ShareScope) string {
	shared := map[string]bool{}
	for _, id := range f.SharedClusters {
		shared[id] = true
	}
	ids := f.IDs()
	listed := 0
	for _, id := range ids {
		if shared[id] {
			listed++
		}
	}
	return scopeNote(scope, listed, len(ids))
}

// scopeNote says which clusters may elect a pivot, and whether the file's
// shared_clusters list is honoured or ignored.
func scopeNote(scope ShareScope, listed, clusters int) string {
	if scope == ScopeSharedClusters {
		return fmt.Sprintf("share scope shared-clusters: the %d of %d clusters in the file's shared_clusters may elect a pivot, the others take VS", listed, clusters)
	}
	if listed < clusters {
		return fmt.Sprintf("share scope all: the cluster file's shared_clusters (%d of %d clusters) are ignored, every cluster may elect a pivot", listed, clusters)
	}
	return fmt.Sprintf("share scope all: every one of the %d clusters may elect a pivot", clusters)
}

// denseReason is the statistics reason of a dense call (Config.DenseFor).
func (p *SharePrefill) denseReason() string { return p.cfg.DenseReason(p.st.n) }

// checkHead checks the lengths of the estimates a head needs.
func (p *SharePrefill) checkHead(layer, h int, he *HeadEstimates) error {
	nb := p.st.nb
	if len(he.V) != nb || len(he.S) != nb {
		return fmt.Errorf("share: %s: layer %d head %d: len(V) = %d, len(S) = %d, want nb = %d", p.name, layer, h, len(he.V), len(he.S), nb)
	}
	if p.Needs().Pooled && len(he.Pooled) != nb {
		return fmt.Errorf("share: %s: layer %d head %d: len(Pooled) = %d, want nb = %d", p.name, layer, h, len(he.Pooled), nb)
	}
	return nil
}

// queryAware evaluates the query-aware gate JSD(â, V) < τ_q.
func (p *SharePrefill) queryAware(he *HeadEstimates) (bool, float64) {
	if !(p.cfg.TauQuery > 0) {
		return false, 0
	}
	d := p.cfg.jsd(he.Pooled, he.V)
	return d < p.cfg.TauQuery, d
}

// QueryAwareHeads implements QueryAwareSelector: the heads of the layer
// whose gate JSD(â, V) < τ_q passes (none when τ_q = 0 or the call is
// dense, Config.DenseFor).
func (p *SharePrefill) QueryAwareHeads(est *LayerEstimates) ([]int, error) {
	if !(p.cfg.TauQuery > 0) || p.cfg.DenseFor(p.st.n) {
		return nil, nil
	}
	if err := p.st.checkLayer(p.name, est.Layer, est, true); err != nil {
		return nil, err
	}
	var hs []int
	for h := range est.Heads {
		he := &est.Heads[h]
		if err := p.checkHead(est.Layer, h, he); err != nil {
			return nil, err
		}
		if qa, _ := p.queryAware(he); qa {
			hs = append(hs, h)
		}
	}
	return hs, nil
}

// exclusionDist returns X of the JSUniform test.
func (p *SharePrefill) exclusionDist(he *HeadEstimates) []float64 {
	switch p.cfg.ExclusionDist {
	case DistSlash:
		return he.S
	case DistPooled:
		return he.Pooled
	}
	return he.V
}

// PlanLayer implements Planner (docs/algorithm.md#roles).
func (p *SharePrefill) PlanLayer(layer int, est *LayerEstimates) (*LayerPlan, error) {
	start := time.Now()
	dense := p.st.begun && p.cfg.DenseFor(p.st.n)
	if err := p.st.checkLayer(p.name, layer, est, !dense); err != nil {
		return nil, err
	}
	for h, c := range p.pending {
		if h.Layer < layer {
			return nil, fmt.Errorf("share: %s: PlanLayer(%d): exact map of pivot %v (cluster %q) was not observed", p.name, layer, h, p.ids[c])
		}
	}
	nb := p.st.nb
	plan := &LayerPlan{Layer: layer, N: p.st.n, NB: nb, BlockSize: p.cfg.BlockSize, Heads: make([]HeadPlan, p.st.numHeads)}
	stats := make([]HeadStat, p.st.numHeads)
	floor := p.cfg.FloorBudget(nb)
	for h := range plan.Heads {
		hp, hs := &plan.Heads[h], &stats[h]
		if dense {
			hp.Method, hp.List, hs.Reason = MethodDense, DenseList(nb), p.denseReason()
			continue
		}
		he := &est.Heads[h]
		if err := p.checkHead(layer, h, he); err != nil {
			return nil, err
		}
		ci := p.clusterOf[layer][h]
		if ci >= 0 {
			hp.Cluster = p.ids[ci]
		}
		// Query-aware path (docs/algorithm.md#query-aware-gate): pooled selection + floor VS.
		qa, dq := p.queryAware(he)
		if p.cfg.TauQuery > 0 {
			hs.JSDQuery = fptr(dq)
		}
		if qa {
			if he.M == nil || he.M.NB != nb || len(he.M.Data) != nb*nb {
				return nil, fmt.Errorf("share: %s: layer %d head %d is query-aware but has no %d×%d pooled block map M", p.name, layer, h, nb, nb)
			}
			vs := SelectVS(he.V, he.S, floor, floor)
			hp.Method = MethodQueryAware
			hp.List = unionList(nb, false, nil, QueryAwareCut(he.M, p.cfg.Gamma), &vs)
			hs.Nv, hs.Ns = floor, floor
			continue
		}
		nv, ns := p.cfg.BlockBudget(he.Kv, nb), p.cfg.BlockBudget(he.Ks, nb)
		vsG := SelectVS(he.V, he.S, nv, ns)
		hs.Nv, hs.Ns = nv, ns
		vsFallback := func(m Method, reason string) {
			hp.Method, hp.List, hs.Reason = m, vsG.List(nb), reason
		}
		// docs/algorithm.md#roles, step 1: outside the scope.
		if ci < 0 {
			vsFallback(MethodVerticalSlash, "no cluster")
			continue
		}
		if !p.inScope[ci] {
			vsFallback(MethodVerticalSlash, "cluster not shared")
			continue
		}
		// Step 2: exclusion (JSUniform).
		if p.cfg.Exclusion == ExcludeJSUniform {
			du := p.cfg.jsd(p.exclusionDist(he), p.uniform)
			hs.JSDUniform = fptr(du)
			if du > p.cfg.Delta {
				hp.Excluded = true
				hs.ExcludedBy = p.cfg.ExclusionKey()
				vsFallback(MethodExcluded, "highly sparse")
				continue
			}
		}
		e := p.dict[ci]
		// Step 3: pivot.
		if e == nil {
			hp.Method, hp.List, hp.NeedMap = MethodPivot, DenseList(nb), true
			hs.Reason = "first eligible member"
			p.dict[ci] = &pivotEntry{pivot: HeadRef{layer, h}, vRef: clone(he.V), sRef: clone(he.S), vs: vsG, stat: hs}
			p.pending[HeadRef{layer, h}] = ci
			continue
		}
		// Step 5 (same layer): the pattern does not exist yet.
		if e.pivot.Layer == layer {
			vsFallback(MethodVerticalSlash, "pivot in the same layer")
			continue
		}
		// Step 4: share gates.
		dv, ds := p.cfg.jsd(e.vRef, he.V), p.cfg.jsd(e.sRef, he.S)
		hs.JSDShareV, hs.JSDShareS = fptr(dv), fptr(ds)
		switch {
		case !(dv < p.cfg.TauShare):
			vsFallback(MethodVerticalSlash, "vertical gate failed")
		case !(ds < p.cfg.TauShare):
			vsFallback(MethodVerticalSlash, "slash gate failed")
		case p.cfg.Exclusion == ExcludeVSCoverage && !(e.vsRatio < p.cfg.TauFallback):
			hs.ExcludedBy = p.cfg.ExclusionKey()
			vsFallback(MethodVerticalSlash, "pivot vs_ratio ≥ τ_f")
		default:
			vs := SelectVS(he.V, he.S, floor, floor)
			hp.Method = MethodShared
			hp.List = unionList(nb, false, e.pattern, nil, &vs)
			hs.Nv, hs.Ns = floor, floor
			hs.Reason = "shares pivot " + e.pivot.String()
		}
	}
	p.st.nextLayer++
	p.stats.finishLayer(plan, stats, time.Since(start))
	return plan, nil
}

// ObserveMap implements Planner: it stores the pivot pattern
// P_c = RowCover(Â, γ) and the cluster's vs_ratio (docs/algorithm.md#pivot-map).
func (p *SharePrefill) ObserveMap(layer, head int, m *BlockMap) error {
	hr := HeadRef{layer, head}
	ci, ok := p.pending[hr]
	if !ok {
		return fmt.Errorf("share: %s: ObserveMap: head %v did not request a map", p.name, hr)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("share: %s: ObserveMap %v: %w", p.name, hr, err)
	}
	if m.NB != p.st.nb {
		return fmt.Errorf("share: %s: ObserveMap %v: map is %d×%d, want nb = %d", p.name, hr, m.NB, m.NB, p.st.nb)
	}
	e := p.dict[ci]
	e.pattern = RowCover(m, p.cfg.Gamma)
	e.vsRatio = VSRatio(m, e.vs, p.cfg.VSRatioCompat)
	if e.stat != nil {
		e.stat.VSRatio = fptr(e.vsRatio)
		e.stat.PatternDensity = fptr(e.pattern.Density())
	}
	delete(p.pending, hr)
	return nil
}

// Stats implements Planner.
func (p *SharePrefill) Stats() *Stats { return p.stats }

// Pattern returns the stored pattern of a cluster in the current call (nil
// if none yet), for tests and logging.
func (p *SharePrefill) Pattern(cluster string) *BlockList {
	for i, id := range p.ids {
		if id == cluster {
			if e := p.dict[i]; e != nil {
				return e.pattern
			}
		}
	}
	return nil
}

func clone(x []float64) []float64 { return append([]float64(nil), x...) }

// unionList builds the final list of docs/algorithm.md#final-lists: all
// causal blocks when all is
// set, else the union of the pattern, the query-aware selection and the VS
// set (any may be nil); causal, de-duplicated, sorted per row.
func unionList(nb int, all bool, pattern, qa *BlockList, vs *VSSet) *BlockList {
	if all {
		return DenseList(nb)
	}
	hint := 0
	if pattern != nil {
		hint += pattern.NumBlocks()
	}
	if qa != nil {
		hint += qa.NumBlocks()
	}
	if vs != nil {
		hint += nb * (len(vs.Cols) + len(vs.Offs))
	}
	b := newListBuilderCap(nb, hint)
	for r := 0; r < nb; r++ {
		if pattern != nil {
			for _, c := range pattern.Row(r) {
				b.add(r, int(c))
			}
		}
		if qa != nil {
			for _, c := range qa.Row(r) {
				b.add(r, int(c))
			}
		}
		if vs != nil {
			vs.addRow(b, r)
		}
		b.endRow()
	}
	return b.finish()
}
