package kernels

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/runtime"
)

// opRowLocal is the workgroup size of the one-workgroup-per-row kernels
// (RMSNorm, Softmax, Argmax, TopK): 256, or the largest power of two the
// device allows if that is smaller. The shaders reduce in shared memory, so
// they do not depend on the subgroup size.
func opRowLocal(d *runtime.Device) uint32 { return rowLocal(d, 256) }

// rowLocal is want (a power of two), halved until the device allows it.
func rowLocal(d *runtime.Device, want uint32) uint32 {
	l := want
	if mx := d.Info().MaxWorkgroupInvocations; mx != 0 {
		for l > mx {
			l >>= 1
		}
	}
	if mx := d.Info().MaxWorkgroupSize[0]; mx != 0 {
		for l > mx {
			l >>= 1
		}
	}
	return l
}

// opRowGroups is a grid of at least m workgroups, folded into 2D when m
// exceeds the x limit; the shaders take row = wg.x + wg.y * numWG.x and skip
// rows >= m.
func opRowGroups(d *runtime.Device, m int) [3]uint32 {
	if m <= 0 {
		return [3]uint32{0, 1, 1}
	}
	mx := int(d.Info().MaxWorkgroupCount[0])
	if mx <= 0 || m <= mx {
		return [3]uint32{uint32(m), 1, 1}
	}
	y := (m + mx - 1) / mx
	x := (m + y - 1) / y
	return [3]uint32{uint32(x), uint32(y), 1}
}

// opRowsCols splits t into rows of cols elements (cols = the last dimension
// of its shape).
func opRowsCols(op, what string, t *runtime.Tensor) (rows, cols int, err error) {
	sh := t.Shape()
	if len(sh) == 0 || sh[len(sh)-1] <= 0 {
		return 0, 0, fmt.Errorf("%s: %s %s has shape %v; want [..., N] with N > 0", op, what, t.Name(), sh)
	}
	cols = sh[len(sh)-1]
	return t.Len() / cols, cols, nil
}

func opDType(op, what string, t *runtime.Tensor, ok ...runtime.DType) error {
	for _, d := range ok {
		if t.DType() == d {
			return nil
		}
	}
	return fmt.Errorf("%s: %s %s is %s; want one of %v", op, what, t.Name(), t.DType(), ok)
}

func opSuffix(dt runtime.DType) string {
	if dt == runtime.F16 {
		return "f16"
	}
	return "f32"
}

const opMaxU32 = math.MaxUint32

// rmsNormShape is RMSNorm's workgroup for rows of h elements on d: with h a
// multiple of 4 (vec: 4 elements a load), the smallest power of two from
// the subgroup size up to opRowLocal that gives every invocation a load
// (128 for h = 512; a decode step's single row is latency, not bandwidth);
// sg where the device reduces over subgroups and the workgroup is whole
// subgroups.
func rmsNormShape(d *runtime.Device, h int) (wg uint32, vec, sg bool) {
	wg = opRowLocal(d)
	caps := d.Caps()
	sub := max(caps.SubgroupSize, 1)
	vec = h%4 == 0
	if vec {
		for wg/2 >= sub && int(wg/2) >= h/4 {
			wg /= 2
		}
	}
	sg = caps.SubgroupArithmetic && caps.SubgroupSize > 0 && wg%caps.SubgroupSize == 0
	return wg, vec, sg
}

// RMSNorm records y = x · rsqrt(mean(x²) + eps) · w for each row of x.
// x is [M, H] (f32 or f16; any shape whose length is a multiple of H), w is
// f32 [H] (H = w.Len()), y has x's length and is f32 or f16 (f16 to feed an
// f16 matmul). Arithmetic is f32 with one rounding of y at the end (HF rounds
// the normalised x to the input dtype before multiplying by w; for f32 models
// the two agree). One workgroup per row (rmsNormShape).
func RMSNorm(r *runtime.Recorder, y, x, w *runtime.Tensor, eps float32) error {
	const op = "rmsnorm"
	if err := opDType(op, "x", x, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if err := opDType(op, "y", y, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if err := opDType(op, "w", w, runtime.F32); err != nil {
		return err
	}
	h := w.Len()
	if h == 0 || x.Len()%h != 0 {
		return fmt.Errorf("%s: x %s has %d elements, not a multiple of H = %d (the length of w %s)", op, x.Name(), x.Len(), h, w.Name())
	}
	if y.Len() != x.Len() {
		return fmt.Errorf("%s: y %s has %d elements, x %s has %d", op, y.Name(), y.Len(), x.Name(), x.Len())
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("%s: eps %v must be finite and >= 0", op, eps)
	}
	m := x.Len() / h
	if uint64(x.Len()) > opMaxU32 {
		return fmt.Errorf("%s: %d elements exceed 32-bit indexing", op, x.Len())
	}
	d := r.Device()
	l, vec, sg := rmsNormShape(d, h)
	k, err := d.Kernel(runtime.KernelDesc{
		Shader:   "rmsnorm_" + opSuffix(x.DType()) + "_" + opSuffix(y.DType()),
		Bindings: 3, ReadOnly: 0b011, PushSize: 12, Spec: []uint32{l, b2u(vec), b2u(sg)},
	})
	if err != nil {
		return err
	}
	return r.Dispatch(k, opRowGroups(d, m), struct {
		M, H uint32
		Eps  float32
	}{uint32(m), uint32(h), eps}, x, w, y)
}
