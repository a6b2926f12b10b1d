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
// The package also holds the cluster file loader/writer (ParseClusters,
// LoadClusters, WriteClusters). The CPU planners are the reference the GPU
// planner is checked against; the float64 references of the estimates and
// of attention that the tests use live in internal/ref.
//
// Nothing here imports the runtime or model packages.
package share
