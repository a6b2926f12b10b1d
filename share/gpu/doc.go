// Package gpu runs the share planners (SharePrefill, FlexPrefill,
// vertical-slash, dense) on the Vulkan runtime during model.Engine prefill.
//
// Attention implements model.Attention. By default it makes the plan on
// the GPU: for each layer it records, on the engine's recorder and without
// any submit or host wait,
//
//  1. the estimates the planner's Needs ask for (Estimator);
//  2. the planning kernels of runtime/kernels (gates, roles and budgets,
//     vertical-slash selection, the query-aware cut, the union of each
//     head's blocks), which write one CSR block list for all heads;
//  3. kernels.SparseAttention, which also writes the per-row log-sum-exp;
//  4. for the pivot heads the role kernel chose, kernels.BlockMapIndirect
//     and the row cover into the cluster's pattern, which later layers
//     share.
//
// The statistics are copied to the host once per call and decoded by
// Attention.Stats. With Options.HostPlanner the planner itself plans on
// the host from estimates read back (the reference of the GPU planner),
// and BuildCSR uploads its lists.
//
// Calls with q0 ≠ 0 (appending to a non-empty cache, e.g. decode) and
// prompts shorter than one block use dense flash attention; Stats records
// why. (Prompts below the planner's share.Config.DenseBelow are planned,
// every head dense.)
package gpu
