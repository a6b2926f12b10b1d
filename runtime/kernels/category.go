package kernels

import "strings"

// Category names the part of a forward pass a shader belongs to, for
// profiles (runtime.Trace.Summary): "matmul" (linear layers), "attention"
// (dense, sparse and decode attention), "estimate" (SharePrefill's
// estimates), "pivot-map" (the pivots' exact block maps), "plan" (gates,
// pattern selection and block-list compaction), "sample" (argmax, top-k), "copy" (buffer copies, the KV-cache
// writes among them) and "other" (norms, RoPE, SwiGLU, residual adds,
// embedding, conversions).
func Category(shader string) string {
	switch {
	case strings.HasPrefix(shader, "matmul"), strings.HasPrefix(shader, "gemv"):
		return "matmul"
	case strings.HasPrefix(shader, "attn"):
		return "attention"
	case strings.HasPrefix(shader, "est_"):
		return "estimate"
	case strings.HasPrefix(shader, "blockmap"):
		return "pivot-map"
	case strings.HasPrefix(shader, "plan"):
		return "plan"
	case shader == "argmax", shader == "topk":
		return "sample"
	case shader == "copy":
		return "copy"
	}
	return "other"
}
