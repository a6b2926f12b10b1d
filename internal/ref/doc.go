// Package ref holds the float64 CPU references that tests of several
// packages check the product against. Only tests import it, so no binary
// links it (TestNotInProduct checks that no package of the module depends on
// it).
//
//   - Llama (llama.go): a deliberately simple forward pass of a Llama-family
//     decoder, the ground truth for model's GPU engine and for bench density.
//   - Estimate, EstimateHead, BlockMap and their parts (estimate.go): the
//     estimates the planners of package share read (V, S, budgets, â, M,
//     MInference window sums) and the exact block map Â, the ground truth
//     for the estimation kernels and the inputs of share's planner tests.
//   - SparseAttention and DenseAttention (attention.go): block-sparse and
//     dense causal attention of one head with per-row log-sum-exp.
//   - Head and its constructors (heads.go): synthetic heads with known
//     attention patterns (stripes, slashes, retrieval).
//
// References of a single kernel, used by that package's tests only, stay in
// its _test.go files (runtime/kernels/ref_*_test.go).
package ref
