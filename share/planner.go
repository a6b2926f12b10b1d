package share

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Method is the way one head of one layer is computed.
type Method int

const (
	// MethodDense computes every causal block.
	MethodDense Method = iota
	// MethodPivot computes every causal block and requests the exact block
	// map; its row cover becomes the cluster's pattern.
	MethodPivot
	// MethodShared reuses its cluster's pivot pattern plus a floor VS set.
	MethodShared
	// MethodVerticalSlash uses a vertical-slash set (γ budgets for
	// SharePrefill/FlexPrefill; fixed budgets for the MInference planner).
	MethodVerticalSlash
	// MethodQueryAware uses the pooled block selection plus a floor VS set.
	MethodQueryAware
	// MethodExcluded is a head excluded as highly sparse: it takes VS with
	// γ budgets.
	MethodExcluded
	numMethods
)

var methodNames = [...]string{"dense", "pivot", "shared", "vertical-slash", "query-aware", "excluded"}

// String returns the method name used in statistics.
func (m Method) String() string {
	if m >= 0 && m < numMethods {
		return methodNames[m]
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// MarshalText encodes the method name.
func (m Method) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes a method name.
func (m *Method) UnmarshalText(b []byte) error {
	for i, n := range methodNames {
		if n == string(b) {
			*m = Method(i)
			return nil
		}
	}
	return fmt.Errorf("share: unknown method %q", b)
}

// HeadPlan is the decision for one query head of one layer.
type HeadPlan struct {
	Method Method
	// Excluded is true when the head was judged highly sparse
	// (MethodExcluded).
	Excluded bool
	// Cluster is the head's cluster id ("" for noise / no cluster file).
	Cluster string
	// NeedMap asks the caller to compute the exact block map Â of this head
	// (a second sweep using the final log-sum-exp, docs/algorithm.md#pivot-map) and pass it to
	// ObserveMap before planning the next layer.
	NeedMap bool
	// List is the head's block list.
	List *BlockList
}

// LayerPlan is the decision for every query head of one layer.
type LayerPlan struct {
	Layer     int
	N         int
	NB        int
	BlockSize int
	Heads     []HeadPlan // indexed by query head
}

// MapHeads returns the heads whose exact block map is requested.
func (lp *LayerPlan) MapHeads() []int {
	var hs []int
	for h := range lp.Heads {
		if lp.Heads[h].NeedMap {
			hs = append(hs, h)
		}
	}
	return hs
}

// Needs tells the caller which estimates a planner reads, so the GPU
// computes only those.
type Needs struct {
	// BlockSize is the B of the grid and of the estimates.
	BlockSize int
	// LastBlock asks for V, S, Kv and Ks of every head.
	LastBlock bool
	// Gamma is the γ of the token budgets Kv and Ks (Config.Gamma); it is
	// read only with LastBlock.
	Gamma float64
	// Pooled asks for â of every head.
	Pooled bool
	// PooledMap asks for M of the query-aware heads (QueryAwareSelector
	// says which; computing it for every head is also accepted).
	PooledMap bool
	// Window, when > 0, asks for WinV and WinS over the last Window queries.
	Window int
}

// Validate checks needs: BlockSize ≥ 1, Window ≥ 0 and, with LastBlock,
// Gamma (CheckGamma).
func (n Needs) Validate() error {
	if err := checkBlockSize(n.BlockSize); err != nil {
		return fmt.Errorf("share: needs: %w", err)
	}
	if n.LastBlock {
		if err := CheckGamma(n.Gamma); err != nil {
			return fmt.Errorf("share: needs: %w", err)
		}
	}
	if n.Window < 0 {
		return fmt.Errorf("share: needs: window %d < 0", n.Window)
	}
	return nil
}

// Planner turns per-layer estimates into per-head block lists. One prefill
// call is:
//
//	p.Begin(n, L, H, Hkv)
//	for l := 0; l < L; l++ {
//	    est := estimates of layer l (as p.Needs() says)
//	    plan, err := p.PlanLayer(l, est)
//	    run block-sparse attention of layer l with plan.Heads[h].List
//	    for _, h := range plan.MapHeads() {
//	        p.ObserveMap(l, h, exact block map of head h)
//	    }
//	    p.Stats().SetGPUTime(l, estimateTime, attentionTime) // optional
//	}
//	stats := p.Stats()
//
// Layers must be planned in order 0…L−1, and the maps requested by a layer
// must be observed before the next layer is planned. Planners are not safe
// for concurrent use; use one per sequence.
type Planner interface {
	// Name is the method name used in statistics ("shareprefill",
	// "flexprefill", "vertical-slash", "dense").
	Name() string
	// Needs says which estimates PlanLayer reads.
	Needs() Needs
	// Begin starts a prefill call of n tokens (clearing all per-call state,
	// including the pivot dictionary).
	Begin(n, numLayers, numHeads, numKVHeads int) error
	// PlanLayer decides the lists of every head of one layer.
	PlanLayer(layer int, est *LayerEstimates) (*LayerPlan, error)
	// ObserveMap hands over the exact block map of a head whose NeedMap
	// was set. Planners that request no maps return an error.
	ObserveMap(layer, head int, m *BlockMap) error
	// Stats returns the statistics of the current call.
	Stats() *Stats
}

// QueryAwareSelector is implemented by planners with a query-aware path;
// it returns the heads of a layer that will take it, so that the GPU
// computes the pooled block map M only for them. It reads V and Pooled.
type QueryAwareSelector interface {
	QueryAwareHeads(est *LayerEstimates) ([]int, error)
}

// HeadStat records the decision for one head.
type HeadStat struct {
	Head     int    `json:"head"`
	Method   Method `json:"method"`
	Excluded bool   `json:"excluded,omitempty"`
	// ExcludedBy names the exclusion rule that kept the head out of
	// sharing (Config.ExclusionKey): "js-uniform(V)" for an excluded head,
	// "vs-coverage" for a member whose pivot's vs_ratio reached τ_f.
	ExcludedBy string  `json:"excluded_by,omitempty"`
	Cluster    string  `json:"cluster,omitempty"`
	Reason     string  `json:"reason,omitempty"`
	Blocks     int     `json:"blocks"`
	Density    float64 `json:"density"`
	Nv         int     `json:"nv,omitempty"`
	Ns         int     `json:"ns,omitempty"`
	// Diagnostic divergences; nil when not evaluated or NaN (compat mode).
	JSDQuery   *float64 `json:"jsd_query,omitempty"`
	JSDUniform *float64 `json:"jsd_uniform,omitempty"`
	JSDShareV  *float64 `json:"jsd_share_v,omitempty"`
	JSDShareS  *float64 `json:"jsd_share_s,omitempty"`
	// Pivot only, filled by ObserveMap.
	VSRatio        *float64 `json:"vs_ratio,omitempty"`
	PatternDensity *float64 `json:"pattern_density,omitempty"`
}

// LayerStat records one layer.
type LayerStat struct {
	Layer       int        `json:"layer"`
	Heads       []HeadStat `json:"heads"`
	MeanDensity float64    `json:"mean_density"`
	// PlanCPU is the wall time of PlanLayer.
	PlanCPU time.Duration `json:"plan_cpu_ns"`
	// EstimateGPU and AttentionGPU are filled by the caller (SetGPUTime).
	EstimateGPU  time.Duration `json:"estimate_gpu_ns,omitempty"`
	AttentionGPU time.Duration `json:"attention_gpu_ns,omitempty"`
}

// Summary aggregates a call.
type Summary struct {
	HeadsPerMethod map[string]int `json:"heads_per_method"`
	Excluded       int            `json:"excluded"`
	// ExcludedBy counts the heads each exclusion rule kept out of sharing
	// (HeadStat.ExcludedBy).
	ExcludedBy   map[string]int `json:"excluded_by,omitempty"`
	MeanDensity  float64        `json:"mean_density"`
	PlanCPU      time.Duration  `json:"plan_cpu_ns"`
	EstimateGPU  time.Duration  `json:"estimate_gpu_ns"`
	AttentionGPU time.Duration  `json:"attention_gpu_ns"`
}

// Stats records one prefill call.
type Stats struct {
	Planner string `json:"planner"`
	Note    string `json:"note,omitempty"`
	// Scope says which clusters of the cluster file may elect a pivot and
	// whether its shared_clusters list is honoured or ignored
	// (SharePrefill with a cluster file only).
	Scope string `json:"scope,omitempty"`
	// Exclusion states the exclusion rule and the distribution it tests
	// (Config.ExclusionRule); empty for planners without one.
	Exclusion  string      `json:"exclusion,omitempty"`
	N          int         `json:"n"`
	NB         int         `json:"nb"`
	BlockSize  int         `json:"block_size"`
	NumLayers  int         `json:"num_layers"`
	NumHeads   int         `json:"num_heads"`
	NumKVHeads int         `json:"num_kv_heads"`
	Config     *Config     `json:"config,omitempty"`
	VSConfig   *VSConfig   `json:"vs_config,omitempty"`
	Layers     []LayerStat `json:"layers"`
	Summary    *Summary    `json:"summary,omitempty"`
}

func newStats(name string, n, nb, b, l, h, hkv int) *Stats {
	return &Stats{Planner: name, N: n, NB: nb, BlockSize: b, NumLayers: l, NumHeads: h, NumKVHeads: hkv}
}

// layer returns the stat of layer l, creating it if needed.
func (s *Stats) layer(l int) *LayerStat {
	for i := range s.Layers {
		if s.Layers[i].Layer == l {
			return &s.Layers[i]
		}
	}
	s.Layers = append(s.Layers, LayerStat{Layer: l})
	return &s.Layers[len(s.Layers)-1]
}

// SetGPUTime records the GPU time of the estimation and of the attention
// of a planned layer.
func (s *Stats) SetGPUTime(layer int, estimate, attention time.Duration) error {
	for i := range s.Layers {
		if s.Layers[i].Layer == layer {
			s.Layers[i].EstimateGPU = estimate
			s.Layers[i].AttentionGPU = attention
			return nil
		}
	}
	return fmt.Errorf("share: stats: layer %d was not planned", layer)
}

// Summarize computes the call summary (heads per method, exclusions, mean
// density over every planned head, summed times) and stores it in
// s.Summary.
func (s *Stats) Summarize() *Summary {
	sum := &Summary{HeadsPerMethod: map[string]int{}}
	var dens float64
	var cnt int
	for _, l := range s.Layers {
		sum.PlanCPU += l.PlanCPU
		sum.EstimateGPU += l.EstimateGPU
		sum.AttentionGPU += l.AttentionGPU
		for _, h := range l.Heads {
			sum.HeadsPerMethod[h.Method.String()]++
			if h.Excluded {
				sum.Excluded++
			}
			if h.ExcludedBy != "" {
				if sum.ExcludedBy == nil {
					sum.ExcludedBy = map[string]int{}
				}
				sum.ExcludedBy[h.ExcludedBy]++
			}
			dens += h.Density
			cnt++
		}
	}
	if cnt > 0 {
		sum.MeanDensity = dens / float64(cnt)
	}
	s.Summary = sum
	return sum
}

// JSON summarizes and encodes the statistics (indented).
func (s *Stats) JSON() ([]byte, error) {
	s.Summarize()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("share: stats: %w", err)
	}
	return b, nil
}

// String gives a one-line summary.
func (s *Stats) String() string {
	sum := s.Summarize()
	var b strings.Builder
	fmt.Fprintf(&b, "%s n=%d nb=%d layers=%d mean density %.4f", s.Planner, s.N, s.NB, len(s.Layers), sum.MeanDensity)
	for m := Method(0); m < numMethods; m++ {
		if c := sum.HeadsPerMethod[m.String()]; c > 0 {
			fmt.Fprintf(&b, " %s=%d", m, c)
		}
	}
	if s.Note != "" {
		b.WriteString(" (" + s.Note + ")")
	}
	return b.String()
}

// fptr returns &x, or nil for NaN/Inf (JSON cannot hold them).
func fptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// finishLayer fills the per-head block counts and densities and the layer
// mean, and stores the layer in the stats.
func (s *Stats) finishLayer(plan *LayerPlan, heads []HeadStat, elapsed time.Duration) {
	ls := s.layer(plan.Layer)
	var dens float64
	for h := range heads {
		l := plan.Heads[h].List
		heads[h].Head = h
		heads[h].Method = plan.Heads[h].Method
		heads[h].Excluded = plan.Heads[h].Excluded
		heads[h].Cluster = plan.Heads[h].Cluster
		heads[h].Blocks = l.NumBlocks()
		heads[h].Density = l.Density()
		dens += heads[h].Density
	}
	ls.Heads = heads
	if len(heads) > 0 {
		ls.MeanDensity = dens / float64(len(heads))
	}
	ls.PlanCPU = elapsed
}

// callState is the bookkeeping shared by all planners.
type callState struct {
	begun                 bool
	n, nb, b              int
	numLayers, numHeads   int
	numKVHeads, nextLayer int
}

func (c *callState) begin(name string, n, numLayers, numHeads, numKVHeads, b int) error {
	if n < 1 || numLayers < 1 || numHeads < 1 || numKVHeads < 1 || numHeads%numKVHeads != 0 {
		return fmt.Errorf("share: %s: begin: n=%d layers=%d heads=%d kv heads=%d (need positive sizes, heads a multiple of kv heads)", name, n, numLayers, numHeads, numKVHeads)
	}
	*c = callState{begun: true, n: n, nb: NumBlocks(n, b), b: b, numLayers: numLayers, numHeads: numHeads, numKVHeads: numKVHeads}
	return nil
}

// checkLayer checks call order and, when est is needed, its shape.
func (c *callState) checkLayer(name string, layer int, est *LayerEstimates, needEst bool) error {
	if !c.begun {
		return fmt.Errorf("share: %s: PlanLayer(%d) before Begin", name, layer)
	}
	if layer != c.nextLayer {
		return fmt.Errorf("share: %s: PlanLayer(%d) out of order, want layer %d", name, layer, c.nextLayer)
	}
	if !needEst {
		return nil
	}
	if est == nil {
		return fmt.Errorf("share: %s: layer %d: nil estimates", name, layer)
	}
	if est.N != c.n || est.NB != c.nb || est.BlockSize != c.b {
		return fmt.Errorf("share: %s: layer %d: estimates for n=%d nb=%d B=%d, call has n=%d nb=%d B=%d", name, layer, est.N, est.NB, est.BlockSize, c.n, c.nb, c.b)
	}
	if len(est.Heads) != c.numHeads {
		return fmt.Errorf("share: %s: layer %d: %d head estimates, want %d", name, layer, len(est.Heads), c.numHeads)
	}
	return nil
}
