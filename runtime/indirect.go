package runtime

import "fmt"

// DispatchIndirect records one dispatch of k whose workgroup counts the GPU
// reads when the dispatch runs: three uint32 values (x, y, z) at byte offset
// off of counts (a VkDispatchIndirectCommand), typically written by earlier
// recorded work. The recorder orders the dispatch after that work like any
// other read of counts. A count of zero in any dimension dispatches nothing.
// The counts must not exceed the device's MaxWorkgroupCount: the host never
// sees them, so the kernel that writes them must bound them. off must be a
// multiple of 4; push and bindings are as for Dispatch.
func (r *Recorder) DispatchIndirect(k *Kernel, counts *Tensor, off uint64, push any, bindings ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.dispatchIndirect(k, counts, off, push, bindings)
	if err != nil {
		r.err = fmt.Errorf("indirect dispatch %s: %w", k.desc.Shader, err)
	}
	return r.err
}

func (r *Recorder) dispatchIndirect(k *Kernel, counts *Tensor, off uint64, push any, bindings []any) error {
	if counts == nil {
		return fmt.Errorf("nil workgroup-count tensor")
	}
	if err := counts.alive(); err != nil {
		return fmt.Errorf("workgroup counts: %w", err)
	}
	if off%4 != 0 || off+12 > counts.bytes {
		return fmt.Errorf("workgroup counts at byte %d of tensor %s (%d bytes): need a multiple of 4 with 12 bytes after it", off, counts.name, counts.bytes)
	}
	a := Arg{t: counts, off: off, size: 12}
	return r.dispatch(k, [3]uint32{}, &a, push, bindings)
}
