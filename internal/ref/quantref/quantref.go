// Package quantref holds the CPU references of the block-quantized kernels
// (runtime/kernels: MatMul and MatVec with a quantized weight, Dequantize)
// and random valid blocks to test them with. Only tests import it.
//
// It is a package of its own, beside internal/ref, because internal/ref
// imports model, which imports runtime/kernels: the kernels' own tests
// could not import it. This one imports only runtime (for the dtypes) and
// model/gguf, whose Dequantize is bit for bit ggml's dequantize_row_* (it is
// checked against gguf-py's vectors in model/gguf/testdata).
//
// Numerics: Dequantize gives ggml's float32 values; DequantizeF16 rounds them
// to f16 to nearest even (ties to even, overflow to ±Inf); MatMul widens
// them and x to float64 and accumulates in float64.
package quantref

import (
	"fmt"
	"math/rand/v2"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/x448/float16"
)

// GGUFType is the ggml type of a block-quantized dtype.
func GGUFType(dt runtime.DType) (gguf.Type, error) {
	switch dt {
	case runtime.Q8_0:
		return gguf.Q8_0, nil
	case runtime.Q4_0:
		return gguf.Q4_0, nil
	case runtime.Q5_0:
		return gguf.Q5_0, nil
	case runtime.Q4_K:
		return gguf.Q4_K, nil
	case runtime.Q5_K:
		return gguf.Q5_K, nil
	case runtime.Q6_K:
		return gguf.Q6_K, nil
	}
	return 0, fmt.Errorf("quantref: %s is not a block-quantized dtype", dt)
}

// Dequantize decodes n elements of type dt from blocks (exactly
// dt.RowBytes(n) bytes) to ggml's float32 values.
func Dequantize(dt runtime.DType, blocks []byte, n int) ([]float32, error) {
	gt, err := GGUFType(dt)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := gguf.Dequantize(out, blocks, gt); err != nil {
		return nil, fmt.Errorf("quantref: %w", err)
	}
	return out, nil
}

// DequantizeF16 is Dequantize rounded to f16 (to nearest even), as f16
// bits.
func DequantizeF16(dt runtime.DType, blocks []byte, n int) ([]uint16, error) {
	v, err := Dequantize(dt, blocks, n)
	if err != nil {
		return nil, err
	}
	out := make([]uint16, n)
	for i, x := range v {
		out[i] = float16.Fromfloat32(x).Bits()
	}
	return out, nil
}

// MatMul is y = x·Wᵀ (+ bias) in float64: x [M, K], W [N, K] the blocks
// of N rows of type dt dequantized (Dequantize), bias [N] or nil; y [M, N].
func MatMul(x []float32, w []byte, dt runtime.DType, bias []float32, M, N, K int) ([]float64, error) {
	if len(x) != M*K {
		return nil, fmt.Errorf("quantref: x has %d values for M=%d, K=%d", len(x), M, K)
	}
	if bias != nil && len(bias) != N {
		return nil, fmt.Errorf("quantref: bias has %d values for N=%d", len(bias), N)
	}
	wv, err := Dequantize(dt, w, N*K)
	if err != nil {
		return nil, err
	}
	y := make([]float64, M*N)
	for m := range M {
		for n := range N {
			var s float64
			for k := range K {
				s += float64(x[m*K+k]) * float64(wv[n*K+k])
			}
			if bias != nil {
				s += float64(bias[n])
			}
			y[m*N+n] = s
		}
	}
	return y, nil
}

// RandomBlocks returns rows rows of cols elements of type dt (cols a whole
// number of blocks): every quant, scale and fifth bit uniformly random, and
// every f16 block scale finite: |d| in [scale/8, scale) with a random sign,
// dmin in [scale/16, scale/2). With scale = 2^-6 no element exceeds 64 in
// magnitude (|d·sc·q| ≤ 2^-6·128·32 for Q6_K); a tiny scale (2^-17) gives
// f16-subnormal scales and values, a large one (2^14) values past f16's
// range.
func RandomBlocks(rng *rand.Rand, dt runtime.DType, rows, cols int, scale float64) ([]byte, error) {
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("quantref: %w", err)
	}
	if !dt.IsQuantized() || rows < 0 {
		return nil, fmt.Errorf("quantref: random blocks of %d rows of %s", rows, dt)
	}
	if !(scale > 0 && scale < 65504) {
		return nil, fmt.Errorf("quantref: block scale %g outside (0, 65504)", scale)
	}
	b := make([]byte, rows*rb)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	dt.RandomizeScales(rng, b, scale)
	return b, nil
}
