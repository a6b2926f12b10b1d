package model

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// ops records a sequence of kernels into one recorder and keeps the first
// error: after it, every call does nothing, and err reports it. The
// forward pass then reads as the model's equations (engine.go: attnInput,
// attnOutputAndMLP), with one error check at the end of each block.
type ops struct {
	r   *runtime.Recorder
	deq *runtime.Tensor // f16 scratch for quantized weights (Engine.deq)
	// sepAdd keeps matMulAdd's residual add in a dispatch of its own
	// (runtime.Tuning.PrefillAddSeparate).
	sepAdd bool
	err    error
}

func (o *ops) do(f func() error) {
	if o.err == nil {
		o.err = f()
	}
}

// rmsNorm records y = RMSNorm(x)·w.
func (o *ops) rmsNorm(y, x, w *runtime.Tensor, eps float32) {
	o.do(func() error { return kernels.RMSNorm(o.r, y, x, w, eps) })
}

// matMul records y = x·Wᵀ (+ b). A quantized W multiplies a few rows
// (M ≤ kernels.GEMVMaxM: decode) as it is, dequantizing in registers; for
// more rows (prefill) it is first dequantized into the f16 scratch.
func (o *ops) matMul(y, x, w, b *runtime.Tensor) {
	o.do(func() error {
		w, err := o.weight(w, x)
		if err != nil {
			return err
		}
		return kernels.MatMul(o.r, y, x, w, b)
	})
}

// matMulAdd records y += x·Wᵀ (+ b), the projection and the residual add
// after it. Above kernels.GEMVMaxM rows (prefill) that is one
// kernels.MatMulAdd, the add in the matmul's epilogue (a quantized W
// dequantized first, as for matMul); for fewer rows, or with sepAdd, it is
// matMul into tmp followed by add, the kernels a short prompt took before
// the fusion.
func (o *ops) matMulAdd(y, x, w, b, tmp *runtime.Tensor) {
	if o.sepAdd || x.Shape()[0] <= kernels.GEMVMaxM {
		o.matMul(tmp, x, w, b)
		o.add(y, tmp)
		return
	}
	o.do(func() error {
		w, err := o.weight(w, x)
		if err != nil {
			return err
		}
		return kernels.MatMulAdd(o.r, y, x, w, b)
	})
}

// weight returns w for multiplying the rows of x: w itself, or for a
// quantized w and more than kernels.GEMVMaxM rows the f16 scratch holding
// w dequantized (recorded here).
func (o *ops) weight(w, x *runtime.Tensor) (*runtime.Tensor, error) {
	if !w.DType().IsQuantized() || x.Shape()[0] <= kernels.GEMVMaxM {
		return w, nil
	}
	f, err := o.deq.View(0, w.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("dequantizing %s: %w", w.Name(), err)
	}
	if err := kernels.Dequantize(o.r, f, w); err != nil {
		return nil, err
	}
	return f, nil
}

// add records x += y.
func (o *ops) add(x, y *runtime.Tensor) {
	o.do(func() error { return kernels.AddInPlace(o.r, x, y) })
}

// swiGLU records act = SiLU(gate) ⊙ up.
func (o *ops) swiGLU(act, gate, up *runtime.Tensor) {
	o.do(func() error { return kernels.SwiGLU(o.r, act, gate, up) })
}
