// Package gpu runs the share planners (SharePrefill, FlexPrefill,
// vertical-slash, dense) on the Vulkan runtime during model.Engine prefill.
//
// Attention implements model.Attention. For each layer it
//
//  1. computes the estimates the planner's Needs ask for with the
//     runtime/kernels estimation kernels (Estimator) and reads back only
//     nb- or n-sized vectors per head;
//  2. calls Planner.PlanLayer and concatenates the per-head block lists into
//     one CSR (BuildCSR) for kernels.SparseAttention, which also writes the
//     per-row log-sum-exp;
//  3. for the heads the plan marks NeedMap (pivots), runs kernels.BlockMap
//     with that log-sum-exp and hands each nb×nb map to Planner.ObserveMap
//     before the next layer is planned.
//
// Calls with q0 ≠ 0 (appending to a non-empty cache, e.g. decode), prompts
// shorter than one block and prompts below Options.DenseBelow use dense
// flash attention; Stats records why.
package gpu
