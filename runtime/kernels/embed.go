package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Embed records out[i, :] = table[ids[i], :]: ids i32 [M], table [V, H]
// (f32, f16 or a block-quantized type of QuantTypes; H = the last dimension
// of out's shape, V = table.Len()/H), out f32 [M, H]. A quantized table's
// rows are dequantized in registers to the float32 values ggml's
// dequantize_row_* (model/gguf.Dequantize) computes, exactly (embed_q.go).
// Embed trusts ids: callers validate them on the host first (ValidateIDs) —
// the shader clamps an out-of-range id into [0, V) only so that it can never
// read out of bounds, which hides the error.
func Embed(r *runtime.Recorder, out, table, ids *runtime.Tensor) error {
	const op = "embed"
	if err := opDType(op, "out", out, runtime.F32); err != nil {
		return err
	}
	if err := opDType(op, "ids", ids, runtime.I32); err != nil {
		return err
	}
	m, h, err := opRowsCols(op, "out", out)
	if err != nil {
		return err
	}
	if m != ids.Len() {
		return fmt.Errorf("%s: out %s has %d rows, ids %s has %d ids", op, out.Name(), m, ids.Name(), ids.Len())
	}
	if table.DType().IsQuantized() {
		return embedQuant(r, out, table, ids, m, h)
	}
	if err := opDType(op, "table", table, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if table.Len() == 0 || table.Len()%h != 0 {
		return fmt.Errorf("%s: table %s has %d elements, not a positive multiple of H = %d", op, table.Name(), table.Len(), h)
	}
	if sh := table.Shape(); len(sh) >= 2 && sh[len(sh)-1] != h {
		return fmt.Errorf("%s: table %s has shape %v, out %s has rows of %d", op, table.Name(), sh, out.Name(), h)
	}
	if uint64(table.Len()) > opMaxU32 || uint64(out.Len()) > opMaxU32 {
		return fmt.Errorf("%s: tensors beyond 32-bit indexing", op)
	}
	v := table.Len() / h
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "embed_" + opSuffix(table.DType()), Bindings: 3, ReadOnly: 0b011, PushSize: 12, Spec: []uint32{256}})
	if err != nil {
		return err
	}
	return r.Dispatch(k, d.Groups1D(m*h, 256), [3]uint32{uint32(m), uint32(h), uint32(v)}, ids, table, out)
}

// ValidateIDs checks on the host that every id is in [0, vocab), naming the
// first bad one.
func ValidateIDs(ids []int32, vocab int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary [0, %d)", id, i, vocab)
		}
	}
	return nil
}
