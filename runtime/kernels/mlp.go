package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

func swiglu(r *runtime.Recorder, out, gate, up *runtime.Tensor, m, f, gStride, gOff, uStride, uOff int) error {
	const op = "swiglu"
	if err := opDType(op, "gate", gate, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if up.DType() != gate.DType() {
		return fmt.Errorf("%s: up %s is %s, gate %s is %s", op, up.Name(), up.DType(), gate.Name(), gate.DType())
	}
	if err := opDType(op, "out", out, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if uint64(gate.Len()) > opMaxU32 || uint64(up.Len()) > opMaxU32 || uint64(out.Len()) > opMaxU32 {
		return fmt.Errorf("%s: tensors beyond 32-bit indexing", op)
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{
		Shader:   "swiglu_" + opSuffix(gate.DType()) + "_" + opSuffix(out.DType()),
		Bindings: 3, ReadOnly: 0b011, PushSize: 24, Spec: []uint32{256},
	})
	if err != nil {
		return err
	}
	return r.Dispatch(k, d.Groups1D(m*f, 256), [6]uint32{uint32(m), uint32(f), uint32(gStride), uint32(gOff), uint32(uStride), uint32(uOff)}, gate, up, out)
}

// SwiGLU records out = silu(gate) ⊙ up elementwise, silu(g) = g/(1+e^-g),
// computed in f32. gate and up: same length and dtype (f32 or f16); out: the
// same length, f32 or f16.
func SwiGLU(r *runtime.Recorder, out, gate, up *runtime.Tensor) error {
	if gate.Len() != up.Len() || out.Len() != gate.Len() {
		return fmt.Errorf("swiglu: gate %s (%d), up %s (%d) and out %s (%d) must have equal lengths",
			gate.Name(), gate.Len(), up.Name(), up.Len(), out.Name(), out.Len())
	}
	n := gate.Len()
	return swiglu(r, out, gate, up, 1, n, 0, 0, 0, 0)
}

// SwiGLUFused records out[i, j] = silu(gu[i, j]) · gu[i, F + j] for a fused
// gate/up activation gu [M, 2F] (gate in the first half of each row, up in
// the second) and out [M, F]; F is the last dimension of out's shape.
func SwiGLUFused(r *runtime.Recorder, out, gu *runtime.Tensor) error {
	m, f, err := opRowsCols("swiglu", "out", out)
	if err != nil {
		return err
	}
	if gu.Len() != 2*out.Len() {
		return fmt.Errorf("swiglu: fused gate/up %s has %d elements, want 2 × %d (out %s is [%d, %d])", gu.Name(), gu.Len(), out.Len(), out.Name(), m, f)
	}
	return swiglu(r, out, gu, gu, m, f, 2*f, 0, 2*f, f)
}

// AddInPlace records acc += x (the residual add), in f32 with one rounding.
// acc f32 with x f32 or f16, or acc f16 with x f16; equal lengths.
func AddInPlace(r *runtime.Recorder, acc, x *runtime.Tensor) error {
	if acc.Len() != x.Len() {
		return fmt.Errorf("add_inplace: acc %s has %d elements, x %s has %d", acc.Name(), acc.Len(), x.Name(), x.Len())
	}
	var sh string
	switch [2]runtime.DType{acc.DType(), x.DType()} {
	case [2]runtime.DType{runtime.F32, runtime.F32}:
		sh = "add_inplace_f32_f32"
	case [2]runtime.DType{runtime.F32, runtime.F16}:
		sh = "add_inplace_f32_f16"
	case [2]runtime.DType{runtime.F16, runtime.F16}:
		sh = "add_inplace_f16_f16"
	default:
		return fmt.Errorf("add_inplace: acc %s (%s) += x %s (%s) is not supported (f32+=f32, f32+=f16, f16+=f16)", acc.Name(), acc.DType(), x.Name(), x.DType())
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: sh, Bindings: 2, ReadOnly: 0b10, PushSize: 4, Spec: []uint32{256}})
	if err != nil {
		return err
	}
	n := acc.Len()
	return r.Dispatch(k, d.Groups1D(n, 256), uint32(n), acc, x)
}
