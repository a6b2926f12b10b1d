package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// planKind is the planner a gpuPlan reproduces.
type planKind int

const (
	kindShare planKind = iota // share.SharePrefill (FlexPrefill without clusters)
	kindVS                    // share.VerticalSlash (MInference)
	kindDense                 // share.Dense
)

// gpuPlan makes a planner's plans on the GPU (docs/algorithm.md#online-phase):
// per layer it records the planning kernels of runtime/kernels between the
// estimates and kernels.SparseAttention, and for pivots the block maps and
// row covers after it. The semantics are those of the planner's PlanLayer
// and ObserveMap, which stay the reference (Options.HostPlanner).
type gpuPlan struct {
	kind      planKind
	name      string
	cfg       share.Config
	vs        share.VSConfig
	clusters  *share.ClusterFile
	blockSize int

	// Per call.
	ids      []string
	pp       kernels.PlanParams // Layer set per layer
	chunks   []int              // pivot chunks to record per layer
	planCPU  []time.Duration    // host time recording each layer's planning
	ar       arena
	cmapHost *runtime.HostBuffer // clusterOf [L, Hq], inScope [K], then 0 (the counter's start)
	statHost *runtime.HostBuffer // the statistics records, copied in End
	cmapLen  int

	cmap, meta, refs, pattern        *runtime.Tensor
	gates, hplan, pivots, indirect   *runtime.Tensor
	stats, vsbits, tokbits, qabits   *runtime.Tensor
	rowbits, rowcnt, rowstats, dummy *runtime.Tensor
	counter                          *runtime.Tensor // the union's last-workgroup counter (PlanUnionCSR); zeroed with the first layer
}

// newGPUPlan returns the GPU planner of p, or nil when p has none.
func newGPUPlan(p share.Planner) *gpuPlan {
	switch pl := p.(type) {
	case *share.SharePrefill:
		return &gpuPlan{kind: kindShare, name: pl.Name(), cfg: pl.Config(), clusters: pl.Clusters(), blockSize: pl.Config().BlockSize}
	case *share.VerticalSlash:
		return &gpuPlan{kind: kindVS, name: pl.Name(), vs: pl.Config(), blockSize: pl.Config().BlockSize}
	case *share.Dense:
		return &gpuPlan{kind: kindDense, name: pl.Name(), blockSize: pl.Needs().BlockSize}
	}
	return nil
}

func (g *gpuPlan) free() {
	g.ar.free()
	g.cmapHost.Free()
	g.statHost.Free()
	g.cmapHost, g.statHost = nil, nil
}

// begin prepares a call: cluster maps (uploaded with the first layer), the
// per-layer pivot bounds and the buffers.
func (g *gpuPlan) begin(a *Attention) error {
	dev := a.dev
	g.ar.dev = dev
	L, hq, n, nb := a.layers, a.shape.NumHeads, a.shape.N, a.nb
	nbw := (nb + 31) / 32
	g.ids = nil
	clusterOf := make([]int32, L*hq)
	for i := range clusterOf {
		clusterOf[i] = -1
	}
	var inScope []int32
	if g.kind == kindShare && g.clusters != nil {
		if err := g.clusters.Validate(L, hq); err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
		shared := map[string]bool{}
		for _, id := range g.clusters.SharedClusters {
			shared[id] = true
		}
		g.ids = g.clusters.IDs()
		inScope = make([]int32, len(g.ids))
		for i, id := range g.ids {
			if g.cfg.ShareScope == share.ScopeAll || shared[id] {
				inScope[i] = 1
			}
			for _, h := range g.clusters.Clusters[id] {
				clusterOf[h.Layer*hq+h.Head] = int32(i)
			}
		}
	}
	K := len(g.ids)
	c := g.cfg
	lo, hi := budgetRange(c, nb)
	g.pp = kernels.PlanParams{
		Hq: hq, NumLayers: L, N: n, B: g.blockSize, K: K,
		UseQuery: c.TauQuery > 0, Exclusion: int(c.Exclusion), ExclDist: int(c.ExclusionDist), NaNCompat: c.NaNCompat,
		DenseAll: g.kind == kindShare && c.DenseFor(n),
		TauQ:     float32(c.TauQuery), TauS: float32(c.TauShare), Delta: float32(c.Delta), TauF: float32(c.TauFallback),
		BudLo: lo, BudHi: hi, Gamma: c.Gamma, VSRatioCompat: c.VSRatioCompat,
	}
	// Pivot chunks: a layer elects at most one pivot per in-scope cluster
	// with a member in it.
	capSlots := a.mapCap
	align := max(1, int(dev.Alignment()/4))
	g.pp.Cap = capSlots
	g.pp.CapPad = (capSlots + align - 1) / align * align
	g.pp.Chunks = 0
	g.chunks = make([]int, L)
	for l := 0; l < L && K > 0 && !g.pp.DenseAll; l++ {
		seen := map[int32]bool{}
		for h := 0; h < hq; h++ {
			if ci := clusterOf[l*hq+h]; ci >= 0 && inScope[ci] != 0 {
				seen[ci] = true
			}
		}
		g.chunks[l] = (len(seen) + capSlots - 1) / capSlots
		g.pp.Chunks = max(g.pp.Chunks, g.chunks[l])
	}
	g.planCPU = make([]time.Duration, L)

	var err error
	view := func(dst **runtime.Tensor, name string, dt runtime.DType, size int) {
		if err == nil {
			*dst, err = g.ar.view(name, dt, size)
		}
	}
	i32 := runtime.I32
	view(&g.dummy, "plan.dummy", i32, 4)
	view(&g.cmap, "plan.cmap", i32, L*hq+K)
	view(&g.meta, "plan.meta", i32, 4*K)
	view(&g.refs, "plan.refs", runtime.F32, 2*K*nb)
	view(&g.pattern, "plan.pattern", i32, K*nb*nbw)
	view(&g.gates, "plan.gates", i32, 8*hq)
	view(&g.hplan, "plan.hplan", i32, 4*hq)
	view(&g.pivots, "plan.pivots", i32, g.pp.Chunks*g.pp.CapPad)
	view(&g.indirect, "plan.indirect", i32, g.pp.Chunks*kernels.PlanIndirectWords)
	view(&g.stats, "plan.stats", i32, L*hq*kernels.PlanStatWords)
	view(&g.vsbits, "plan.vsbits", i32, hq*3*nbw)
	if g.kind == kindVS {
		view(&g.tokbits, "plan.tokbits", i32, hq*2*((n+31)/32))
	}
	if g.pp.UseQuery {
		view(&g.qabits, "plan.qabits", i32, hq*nb*nbw)
	} else {
		g.qabits = g.dummy
	}
	view(&g.rowbits, "plan.rowbits", i32, hq*nb*nbw)
	view(&g.rowcnt, "plan.rowcnt", i32, hq*nb)
	view(&g.counter, "plan.counter", i32, 1)
	if g.pp.Chunks > 0 {
		view(&g.rowstats, "plan.rowstats", i32, capSlots*nb*4)
	}
	if err != nil {
		return err
	}
	if err := hostBuffer(dev, &g.statHost, 4*L*hq*kernels.PlanStatWords); err != nil {
		return err
	}
	g.cmapLen = L*hq + K
	if err := hostBuffer(dev, &g.cmapHost, 4*(g.cmapLen+1)); err != nil {
		return err
	}
	// Begin runs after every batch of the previous call completed: the host
	// buffer is free to write.
	w := g.cmapHost.Int32s(g.cmapLen + 1)
	copy(w, clusterOf)
	copy(w[L*hq:], inScope)
	w[g.cmapLen] = 0
	return nil
}

// budgetRange is share.Config's clamp range of block budgets.
func budgetRange(c share.Config, nb int) (lo, hi int) {
	if c.BlockSize < 1 {
		return 1, nb
	}
	lo = 0
	if c.MinBudget > 0 {
		lo = (c.MinBudget + c.BlockSize - 1) / c.BlockSize
	}
	hi = nb
	if c.MaxBudget > 0 {
		hi = min(hi, (c.MaxBudget+c.BlockSize-1)/c.BlockSize)
	}
	return lo, hi
}

// layer records the plan of layer l, the sparse attention and the pivots'
// maps on r. kv is the first n rows of k.
func (g *gpuPlan) layer(a *Attention, r *runtime.Recorder, l int, q, kv, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	start := time.Now()
	hq, nb, n := a.shape.NumHeads, a.nb, a.shape.N
	pp := g.pp
	pp.Layer = l
	e := a.est
	if l == 0 {
		if err := r.CopyFromHost(g.cmap, 0, g.cmapHost, 0, uint64(4*g.cmapLen)); err != nil {
			return err
		}
		if err := r.CopyFromHost(g.counter, 0, g.cmapHost, uint64(4*g.cmapLen), 4); err != nil {
			return err
		}
	}
	union := kernels.UnionParams{Hq: hq, NB: nb, VSRows: 2, Mode: -1, K: pp.K, NoQueryAware: !pp.UseQuery}
	switch g.kind {
	case kindShare:
		if !pp.DenseAll {
			if err := e.record(r, q, kv, true); err != nil {
				return err
			}
			pooled := e.pooled
			if pooled == nil {
				pooled = e.vBlk
			}
			if err := kernels.PlanRoles(r, e.counts, e.vBlk, e.sBlk, pooled, g.cmap, g.meta, g.refs, g.hplan, g.pivots, g.indirect, g.stats, pp); err != nil {
				return err
			}
		} else if err := kernels.PlanDecide(r, g.gates, e.counts, g.cmap, e.vBlk, e.sBlk, g.meta, g.refs, g.hplan, g.pivots, g.indirect, g.stats, pp); err != nil {
			return err
		}
		if !pp.DenseAll && pp.UseQuery {
			if err := kernels.PlanQueryAwareCut(r, g.qabits, e.m, g.hplan, pp); err != nil {
				return err
			}
		}
	case kindVS:
		if err := e.record(r, q, kv, false); err != nil {
			return err
		}
		tp, _, _ := g.vsTopK(hq, n)
		if err := kernels.TopKBits(r, g.tokbits, e.wv, e.wsl, nil, tp); err != nil {
			return err
		}
		if err := kernels.PlanVSBlocks(r, g.vsbits, g.tokbits, hq, n, g.blockSize, g.vs.Tile); err != nil {
			return err
		}
		union.VSRows, union.Mode = 3, kernels.PlanModeVS
	case kindDense:
		union.Mode = kernels.PlanModeAll
	}
	if g.kind == kindShare && !pp.DenseAll {
		// The VS selection (top-k of the block estimates with the budgets
		// of hplan), the union and the lists.
		if err := kernels.PlanSelectUnionCSR(r, g.vsbits, e.vBlk, e.sBlk, g.rowbits, g.rowcnt, g.hplan, g.patternOrDummy(), g.qabits, a.rowPtr, a.cols, g.stats, g.counter, l, union); err != nil {
			return err
		}
	} else if err := kernels.PlanUnionCSR(r, g.rowbits, g.rowcnt, g.hplan, g.vsbits, g.patternOrDummy(), g.qabits, a.rowPtr, a.cols, g.stats, g.counter, l, union); err != nil {
		return err
	}
	if err := kernels.SparseAttention(r, o, a.lse, q, k, v, a.rowPtr, a.cols, p, g.blockSize); err != nil {
		return err
	}
	ep := kernels.EstParams{Hq: hq, Hkv: a.shape.NumKVHeads, D: a.shape.HeadDim, S: n, B: g.blockSize, Scale: p.Scale}
	for i := 0; i < g.chunks[l]; i++ {
		slots, err := g.pivots.View(i*pp.CapPad, pp.Cap)
		if err != nil {
			return err
		}
		off := uint64(4 * i * kernels.PlanIndirectWords)
		if err := kernels.BlockMapIndirect(r, g.indirect, off+kernels.PlanIndirectBlockMap, a.maps, q, kv, a.lse, slots, ep); err != nil {
			return err
		}
		if err := kernels.PlanRowCover(r, g.indirect, off+kernels.PlanIndirectRowCover, a.maps, g.hplan, slots, g.vsbits, g.pattern, g.rowstats, pp); err != nil {
			return err
		}
		if err := kernels.PlanPivot(r, g.indirect, off+kernels.PlanIndirectPivot, g.rowstats, slots, g.hplan, g.meta, g.stats, pp); err != nil {
			return err
		}
	}
	g.planCPU[l] = time.Since(start)
	if a.testHook != nil {
		return a.testHook(r, l)
	}
	return nil
}

func (g *gpuPlan) patternOrDummy() *runtime.Tensor {
	if g.pp.K > 0 {
		return g.pattern
	}
	return g.dummy
}

// vsTopK returns MInference's token selection (share.VerticalSlash.SelectTokens)
// as TopKBits parameters, and the number of columns and offsets it keeps.
func (g *gpuPlan) vsTopK(hq, n int) (kernels.TopKParams, int, int) {
	c := g.vs
	l := min(c.LastQ, n)
	nv := min(n, max(c.VerticalSize, 30))
	ns := min(n, max(c.SlashSize, 50))
	full := n - l + 1
	ks := min(ns, full)
	fv, fs := min(c.ForcedColumns, nv), min(c.ForcedDiagonals, ns, full)
	tp := kernels.TopKParams{Rows: hq, Stride: n, Len: [2]int{n, full}, K: [2]int{nv, ks}, Forced: [2]int{fv, fs}, Words: (n + 31) / 32}
	// share.TopKForced keeps max(min(max(k, 1), len), forced) entries.
	keep := func(k, ln, f int) int { return max(min(max(k, 1), ln), min(f, ln)) }
	return tp, keep(nv, n, fv), keep(ks, full, fs)
}

// end records the copy of the statistics records to the host.
func (g *gpuPlan) end(r *runtime.Recorder) error {
	return r.CopyToHost(g.statHost, 0, g.stats, 0, g.stats.Bytes())
}

// reasons are the planner's statistics reasons by kernels.PlanReason code.
var reasons = [...]string{
	kernels.PlanReasonNone:          "",
	kernels.PlanReasonDenseBelow:    "n below DenseBelow",
	kernels.PlanReasonNoCluster:     "no cluster",
	kernels.PlanReasonNotShared:     "cluster not shared",
	kernels.PlanReasonHighlySparse:  "highly sparse",
	kernels.PlanReasonFirstEligible: "first eligible member",
	kernels.PlanReasonSameLayer:     "pivot in the same layer",
	kernels.PlanReasonVerticalGate:  "vertical gate failed",
	kernels.PlanReasonSlashGate:     "slash gate failed",
	kernels.PlanReasonVSRatio:       "pivot vs_ratio ≥ τ_f",
	kernels.PlanReasonShares:        "shares pivot ",
}

// fptr returns &x, or nil for NaN and infinities (as share's statistics).
func fptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// decode builds the planner's statistics from the records copied in End:
// the same share.Stats, reasons and JSON that the planner on the host
// produces, with the gate values computed in f32.
func (g *gpuPlan) decode(a *Attention) *share.Stats {
	L, hq, nb := a.layers, a.shape.NumHeads, a.nb
	st := &share.Stats{Planner: g.name, N: a.shape.N, NB: nb, BlockSize: g.blockSize, NumLayers: L, NumHeads: hq, NumKVHeads: a.shape.NumKVHeads}
	switch g.kind {
	case kindShare:
		cfg := g.cfg
		st.Config = &cfg
		if g.clusters == nil {
			st.Note = share.NoClusterNote
		} else {
			st.Scope = g.clusters.ScopeNote(cfg.ShareScope)
		}
		st.Exclusion = cfg.ExclusionRule()
	case kindVS:
		cfg := g.vs
		st.VSConfig = &cfg
	}
	raw := g.statHost.Bytes()[:4*L*hq*kernels.PlanStatWords]
	word := func(l, h, i int) int32 {
		return int32(binary.LittleEndian.Uint32(raw[4*((l*hq+h)*kernels.PlanStatWords+i):]))
	}
	f32 := func(l, h, i int) float64 { return float64(math.Float32frombits(uint32(word(l, h, i)))) }
	causal := float64(share.CausalBlocks(nb))
	_, vsNv, vsNs := g.vsTopK(hq, a.shape.N)
	for l := 0; l < L; l++ {
		ls := share.LayerStat{Layer: l, Heads: make([]share.HeadStat, hq), PlanCPU: g.planCPU[l]}
		var dens float64
		for h := 0; h < hq; h++ {
			hs := &ls.Heads[h]
			hs.Head = h
			hs.Blocks = int(word(l, h, kernels.PlanStatBlocks))
			hs.Density = float64(hs.Blocks) / causal
			dens += hs.Density
			switch g.kind {
			case kindDense:
				hs.Method = share.MethodDense
				continue
			case kindVS:
				hs.Method, hs.Nv, hs.Ns = share.MethodVerticalSlash, vsNv, vsNs
				continue
			}
			hs.Method = share.Method(word(l, h, kernels.PlanStatMethod))
			hs.Excluded = hs.Method == share.MethodExcluded
			if ci := word(l, h, kernels.PlanStatCluster); ci >= 0 && int(ci) < len(g.ids) {
				hs.Cluster = g.ids[ci]
			}
			if rc := word(l, h, kernels.PlanStatReason); rc >= 0 && int(rc) < len(reasons) {
				hs.Reason = reasons[rc]
				switch rc {
				case kernels.PlanReasonDenseBelow:
					hs.Reason = g.cfg.DenseReason(a.shape.N)
				case kernels.PlanReasonHighlySparse, kernels.PlanReasonVSRatio:
					hs.ExcludedBy = g.cfg.ExclusionKey()
				}
				if rc == kernels.PlanReasonShares {
					hs.Reason += share.HeadRef{Layer: int(word(l, h, kernels.PlanStatPivotLayer)), Head: int(word(l, h, kernels.PlanStatPivotHead))}.String()
				}
			}
			hs.Nv, hs.Ns = int(word(l, h, kernels.PlanStatNv)), int(word(l, h, kernels.PlanStatNs))
			ev := word(l, h, kernels.PlanStatEvaluated)
			for i, dst := range []**float64{&hs.JSDQuery, &hs.JSDUniform, &hs.JSDShareV, &hs.JSDShareS} {
				if ev>>i&1 != 0 {
					*dst = fptr(f32(l, h, kernels.PlanStatGate0+i))
				}
			}
			if word(l, h, kernels.PlanStatPivotDone) != 0 {
				hs.VSRatio = fptr(f32(l, h, kernels.PlanStatVSRatio))
				hs.PatternDensity = fptr(float64(word(l, h, kernels.PlanStatPattern)) / causal)
			}
		}
		ls.MeanDensity = dens / float64(hq)
		st.Layers = append(st.Layers, ls)
	}
	st.Summarize()
	return st
}
