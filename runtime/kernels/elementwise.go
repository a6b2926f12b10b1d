package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

const ewLocal = 256

// PoisonBits is a 32-bit pattern that reads as NaN in f32 and as two NaNs in
// f16; tests fill outputs with it so unwritten elements fail.
const PoisonBits = 0x7FC07FC0

func words(t *runtime.Tensor) int { return int((t.Bytes() + 3) / 4) }

// Fill sets every 32-bit word of t (rounded up) to bits.
func Fill(r *runtime.Recorder, t *runtime.Tensor, bits uint32) error {
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "fill", Bindings: 1, PushSize: 8, Spec: []uint32{ewLocal}})
	if err != nil {
		return err
	}
	n := words(t)
	return r.Dispatch(k, d.Groups1D(n, ewLocal), [2]uint32{uint32(n), bits}, t)
}

// Poison fills t with PoisonBits.
func Poison(r *runtime.Recorder, t *runtime.Tensor) error { return Fill(r, t, PoisonBits) }

// Copy copies src into dst (same byte size). Whole 16-byte words go through
// the copy shader, a remainder through vkCmdCopyBuffer.
func Copy(r *runtime.Recorder, dst, src *runtime.Tensor) error {
	if dst.Bytes() != src.Bytes() {
		return fmt.Errorf("copy: %s has %d bytes, %s has %d", src.Name(), src.Bytes(), dst.Name(), dst.Bytes())
	}
	d := r.Device()
	n4 := int(src.Bytes() / 16)
	if n4 > 0 {
		k, err := d.Kernel(runtime.KernelDesc{Shader: "copy", Bindings: 2, ReadOnly: 1, PushSize: 4, Spec: []uint32{256}})
		if err != nil {
			return err
		}
		if err := r.Dispatch(k, d.Groups1D(n4, 256), uint32(n4), src, dst); err != nil {
			return err
		}
	}
	if rem := int(src.Bytes()) - 16*n4; rem > 0 {
		// The tail is tiny: copy it with a transfer (byte-exact, needs no alignment).
		return r.CopyBytes(dst, uint64(16*n4), src, uint64(16*n4), uint64(rem))
	}
	return nil
}

func floatVariant(name string, dt runtime.DType) (string, error) {
	switch dt {
	case runtime.F32:
		return name + "_f32", nil
	case runtime.F16:
		return name + "_f16", nil
	}
	return "", fmt.Errorf("%s: unsupported dtype %s (f32 or f16)", name, dt)
}

func sameShape(op string, ts ...*runtime.Tensor) error {
	for _, t := range ts[1:] {
		if t.Len() != ts[0].Len() || t.DType() != ts[0].DType() {
			return fmt.Errorf("%s: %s (%d %s) and %s (%d %s) differ", op, ts[0].Name(), ts[0].Len(), ts[0].DType(), t.Name(), t.Len(), t.DType())
		}
	}
	return nil
}

func binary(r *runtime.Recorder, op uint32, name string, out, a, b *runtime.Tensor, scale float32) error {
	if err := sameShape(name, out, a, b); err != nil {
		return err
	}
	sh, err := floatVariant("binary", out.DType())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: sh, Bindings: 3, ReadOnly: 0b011, PushSize: 8, Spec: []uint32{ewLocal, op}})
	if err != nil {
		return err
	}
	n := out.Len()
	return r.Dispatch(k, d.Groups1D(n, ewLocal), struct {
		N     uint32
		Scale float32
	}{uint32(n), scale}, a, b, out)
}

// Add records out = a + b (f32 or f16, same length).
func Add(r *runtime.Recorder, out, a, b *runtime.Tensor) error {
	return binary(r, 0, "add", out, a, b, 1)
}

// Mul records out = a ⊙ b (f32 or f16, same length).
func Mul(r *runtime.Recorder, out, a, b *runtime.Tensor) error {
	return binary(r, 1, "mul", out, a, b, 1)
}

// Scale records out = a·s + bias (f32 or f16, same length).
func Scale(r *runtime.Recorder, out, a *runtime.Tensor, s, bias float32) error {
	if err := sameShape("scale", out, a); err != nil {
		return err
	}
	sh, err := floatVariant("scale", out.DType())
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: sh, Bindings: 2, ReadOnly: 0b01, PushSize: 12, Spec: []uint32{ewLocal}})
	if err != nil {
		return err
	}
	n := out.Len()
	return r.Dispatch(k, d.Groups1D(n, ewLocal), struct {
		N           uint32
		Scale, Bias float32
	}{uint32(n), s, bias}, a, out)
}

// Convert records dst = src converted: f32→f16, f16→f32, bf16→f16, bf16→f32.
func Convert(r *runtime.Recorder, dst, src *runtime.Tensor) error {
	if dst.Len() != src.Len() {
		return fmt.Errorf("convert: %s has %d elements, %s has %d", src.Name(), src.Len(), dst.Name(), dst.Len())
	}
	names := map[[2]runtime.DType]string{
		{runtime.F32, runtime.F16}:  "convert_f32_f16",
		{runtime.F16, runtime.F32}:  "convert_f16_f32",
		{runtime.BF16, runtime.F16}: "convert_bf16_f16",
		{runtime.BF16, runtime.F32}: "convert_bf16_f32",
	}
	sh, ok := names[[2]runtime.DType{src.DType(), dst.DType()}]
	if !ok {
		return fmt.Errorf("convert: %s to %s is not supported", src.DType(), dst.DType())
	}
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: sh, Bindings: 2, ReadOnly: 0b01, PushSize: 4, Spec: []uint32{ewLocal}})
	if err != nil {
		return err
	}
	n := src.Len()
	return r.Dispatch(k, d.Groups1D(n, ewLocal), uint32(n), src, dst)
}
