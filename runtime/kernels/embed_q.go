package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// embedQWG is the workgroup size of embed_q.comp (spec constant 0): one
// invocation per 8 output elements.
const embedQWG = 256

type embedQPush struct {
	M, H, V    uint32
	Row0, Rows uint32
	SrcOff     uint32
}

// embedQuant records Embed for a block-quantized table [V, H] (H a whole
// number of blocks): the rows are gathered and dequantized in registers to
// ggml's float32 values (embed_q.comp), so that out is bit for bit what
// model/gguf.Dequantize gives for those rows. A table larger than one
// binding is dispatched in row ranges (quantRowChunk), each writing the
// output rows whose ids fall in it. m and h are out's rows and columns.
func embedQuant(r *runtime.Recorder, out, table, ids *runtime.Tensor, m, h int) error {
	const op = "embed"
	d := r.Device()
	dt := table.DType()
	if sh := table.Shape(); len(sh) < 1 || sh[len(sh)-1] != h {
		return fmt.Errorf("%s: %s table %s has shape %v, out %s has rows of %d", op, dt, table.Name(), sh, out.Name(), h)
	}
	if h%dt.BlockElems() != 0 { // NewTensor guarantees it for the table's rows; stated for the kernel
		return fmt.Errorf("%s: rows of %d elements are not whole %s blocks of %d", op, h, dt, dt.BlockElems())
	}
	if err := quantCheck(op, d, table); err != nil {
		return err
	}
	if uint64(table.Len()) > opMaxU32 || uint64(out.Len()) > opMaxU32 {
		return fmt.Errorf("%s: tensors beyond 32-bit indexing", op)
	}
	v := table.Len() / h
	if m == 0 {
		return nil
	}
	nc, err := quantRowChunk(d, dt, v, h, 1, op)
	if err != nil {
		return err
	}
	k, err := d.Kernel(runtime.KernelDesc{
		Shader: "embed_" + dt.String(), Bindings: 3, ReadOnly: 0b011, PushSize: 24,
		Spec: []uint32{embedQWG},
	})
	if err != nil {
		return err
	}
	groups := d.Groups1D(m*(h/8), embedQWG)
	for n0 := 0; n0 < v; n0 += nc {
		rows := min(nc, v-n0)
		ta, to := quantSpan(d, table, h, n0, rows)
		p := embedQPush{M: uint32(m), H: uint32(h), V: uint32(v), Row0: uint32(n0), Rows: uint32(rows), SrcOff: to}
		if err := r.Dispatch(k, groups, p, ids, ta, out); err != nil {
			return err
		}
	}
	return nil
}
