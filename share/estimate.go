package share

// HeadEstimates holds what the planners read about one query head of one
// layer. The GPU estimation kernels produce these (in fp32, converted to
// float64); the tests compare them with float64 CPU references.
//
// Fields a planner does not need may be left nil; Planner.Needs says which
// ones a planner reads.
type HeadEstimates struct {
	// V is the block vertical distribution (len nb): v pooled by summing
	// the token columns of each key block.
	V []float64
	// S is the block slash distribution (len nb), indexed by block offset
	// o = r − c: S[o] sums the token slash s over token offsets
	// [o·B, min((o+1)·B, n)). Pooling starts at the main diagonal, so when
	// n mod B ≠ 0 the partial chunk is the last one (the farthest offsets).
	S []float64
	// Kv and Ks are the token budgets (docs/algorithm.md#budgets;
	// TokenBudget of the token level v and s at γ = Config.Gamma); the
	// planner turns them into block budgets with Config.BlockBudget.
	Kv, Ks int
	// Pooled is the pooled estimate â (len nb): softmax over key blocks of
	// q̄·k̄_c, no mask (docs/algorithm.md#query-aware-gate). Needed for the
	// query-aware gate and for
	// ExclusionDist = DistPooled.
	Pooled []float64
	// M is the pooled block map (nb×nb, block-causal row softmax,
	// docs/algorithm.md#query-aware-selection).
	// Only query-aware heads need it; see SharePrefill.QueryAwareHeads.
	M *BlockMap
	// WinV and WinS are the MInference window estimates (len n): column
	// sums and diagonal sums (offset o = i − j) of the softmax of the last
	// Window queries. Only the VerticalSlash planner reads them.
	WinV, WinS []float64
}

// LayerEstimates holds the estimates of every query head of one layer.
type LayerEstimates struct {
	Layer     int
	N         int // prompt length in tokens
	NB        int // ⌈N/BlockSize⌉
	BlockSize int
	Heads     []HeadEstimates // indexed by query head
}
