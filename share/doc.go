// Package share implements the SharePrefill block-sparse prefill planner
// (arXiv 2505.19578) and its peers on the CPU, working on per-layer
// estimates that the GPU computes (docs/algorithm.md).
//
// A Planner turns the estimates of one layer (LayerEstimates: per query head
// the block vertical V, block slash S, token budgets, pooled estimate â and,
// for query-aware heads, the pooled block map M) into one LayerPlan: per
// head a Method and a BlockList, the CSR list of causal key blocks per query
// block that the block-sparse kernel walks. Pivot heads also request their
// exact block map Â, which the caller hands back through ObserveMap.
//
// Planners: SharePrefill (cluster-aware sharing with a per-call pivot
// dictionary), FlexPrefill (the same online phase without clusters; its own
// defaults, short-prompt bypass included, are FlexConfig, the "flex"
// preset), VerticalSlash (MInference, fixed budgets mapped to the block
// grid) and Dense. Preset names the knob sets and takes overrides.
//
// The package also holds the float64 CPU references that the GPU kernels
// are tested against: EstimateRef/EstimateHeadRef (V, S, budgets, â, M,
// MInference window sums), BlockMapRef (Â), SparseAttentionRef and
// DenseAttentionRef (output and per-row log-sum-exp), and the cluster file
// loader/writer (ParseClusters, LoadClusters, WriteClusters).
//
// Nothing here imports the runtime or model packages.
package share
