package kernels

import (
	"errors"
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Block-quantized weights (runtime.Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K).
//
// A quantized weight [N, K] is N rows of K/BlockElems ggml blocks, byte for
// byte as in a GGUF file. Two kernels read them:
//
//   - the quantized matrix-vector kernel (gemv_q.comp), which MatMul and
//     MatVec use for such a weight: it reads the raw blocks and dequantizes
//     them in registers, for the few rows of decode (M ≤ GEMVMaxM for
//     MatMul);
//   - Dequantize (dequant.comp), which expands the blocks into an f16 [N, K]
//     tensor, so that prefill multiplies by an f16 scratch with the f16
//     kernels.

// errQuantNotYet marks the parts of the quantized API not implemented yet.
var errQuantNotYet = errors.New("not yet implemented")

// QuantTypes returns the block-quantized types whose kernels (MatMul and
// MatVec with a quantized weight, Dequantize) run on dev, in
// runtime.QuantizedTypes order. A caller whose weight type is missing
// dequantizes to f16 at load instead. The kernels read blocks through 16-bit
// storage, which every device the runtime opens has, so today this is every
// quantized type; the list is per device so that callers need not assume it.
func QuantTypes(dev *runtime.Device) []runtime.DType {
	if dev == nil || !dev.Caps().Storage16Bit {
		return nil
	}
	return runtime.QuantizedTypes()
}

// Dequantize records dst = src dequantized: src is a block-quantized [N, K]
// tensor, dst an f16 tensor of N·K elements (for example a view of a
// scratch sized for the largest matrix, Tensor.View(0, N, K)). Each element
// is the float32 value ggml's dequantize_row_* computes, rounded to f16 to
// nearest even.
func Dequantize(r *runtime.Recorder, dst, src *runtime.Tensor) error {
	if r == nil || dst == nil || src == nil {
		return errors.New("dequantize: nil recorder or tensor")
	}
	return fmt.Errorf("dequantize %s (%s): %w", src.Name(), src.DType(), errQuantNotYet)
}

// matVecQuant records y = x·Wᵀ (+ bias) for a block-quantized w with the
// quantized matrix-vector kernel, GEMVMaxM rows of x per dispatch.
func matVecQuant(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
	_ = r
	_ = s
	_, _, _ = y, x, bias
	return fmt.Errorf("matvec: quantized weight %s (%s): %w", w.Name(), w.DType(), errQuantNotYet)
}
