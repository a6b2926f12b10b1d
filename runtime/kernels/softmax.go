package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Softmax records y = softmax(x) over each row of x [M, N] (N = the last
// dimension of x's shape), f32, with max subtraction; y is f32 with x's
// length and may be x itself. One workgroup per row, any N (looped).
func Softmax(r *runtime.Recorder, y, x *runtime.Tensor) error {
	const op = "softmax"
	if err := opDType(op, "x", x, runtime.F32); err != nil {
		return err
	}
	if err := opDType(op, "y", y, runtime.F32); err != nil {
		return err
	}
	m, n, err := opRowsCols(op, "x", x)
	if err != nil {
		return err
	}
	if y.Len() != x.Len() {
		return fmt.Errorf("%s: y %s has %d elements, x %s has %d", op, y.Name(), y.Len(), x.Name(), x.Len())
	}
	if uint64(x.Len()) > opMaxU32 {
		return fmt.Errorf("%s: %d elements exceed 32-bit indexing", op, x.Len())
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "softmax", Bindings: 2, ReadOnly: 0b01, PushSize: 8, Spec: []uint32{opRowLocal(d)}})
	if err != nil {
		return err
	}
	return r.Dispatch(k, opRowGroups(d, m), [2]uint32{uint32(m), uint32(n)}, x, y)
}
