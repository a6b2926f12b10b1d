// Package harness is the cross-vendor benchmark harness behind
// `shareprefill bench`: kernel timings (dense and block-sparse attention,
// the matmuls of an 8B model, the estimation kernels), end-to-end prefill
// latency per attention method, and accuracy (RunAccuracy): retrieval in
// bench-lm-8k's trained needle format (NeedleTasks, from the held-out text
// of BuildHeldOut) and InfiniteBench passkey and key-value retrieval,
// perplexity on held-out windows, and ablation variants, every method on
// the same seeded samples, with Wilson intervals, McNemar's exact test
// against dense and paired perplexity intervals (statistics.go); Suites
// name complete runs, and RunOracle compares logits with transformers
// (safetensors) or with llama.cpp on the CPU (GGUF: also greedy tokens,
// tokenizer ids and perplexity).
// The protocols follow docs/benchmarks.md.
//
// Every benchmark returns a Report: the device (name, vendor, driver), the
// commit, the date, the parameters and the results. A Report is written as
// JSON, rendered as Markdown tables and described as plots (PlotSpec), which
// package bench/harness/plots draws as PNG files in the bench build.
// The kernel benchmark also exports the exact block masks it timed (per-head
// CSR as .npy files with a JSON manifest) so that bench/peers/sdpa_flex.py
// can time PyTorch flex_attention on identical masks; Compare joins our
// reports with the peers' into ratio tables.
//
// WriteStructuredModel and StructuredPrompt make the structured vehicle, a
// model with Llama-3-8B's attention shapes whose attention has a trained
// model's structure (docs/benchmarks.md#the-structured-vehicle), and
// AttentionDensity measures any model's exact attention structure on the
// CPU.
//
// Timing rules (docs/benchmarks.md#timing-rules): GPU timestamps (Recorder.EnableProfiling)
// when the device has them, else wall time around Submit; warm-up runs
// first; median, p20 and p80 over the timed runs; an optional L2 flush
// (a fill of a scratch buffer, not timed) before every kernel run.
// TFLOP/s conventions are stated next to every number: dense-equivalent
// 2·Hq·n²·D / t (causal-halved) and actual 4·B²·D·Σ_heads(full +
// ½·diagonal blocks) / t.
package harness
