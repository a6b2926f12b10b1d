package runtime

import (
	"fmt"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// HostBuffer is host-visible, mapped memory that recorded copies write to
// (Recorder.CopyToHost: read results back without a separate download wait)
// or read from (Recorder.CopyFromHost: small inputs without a separate upload
// wait). The host may touch Bytes only while no batch that uses the buffer is
// in flight: write before the Flush that copies from it, read after the Wait
// that copied into it.
type HostBuffer struct {
	d    *Device
	blk  block // id < 0: hazard tracking keeps it apart from device blocks
	size uint64
}

// NewHostBuffer allocates a host buffer of size bytes (rounded up to 16).
func (d *Device) NewHostBuffer(size uint64) (*HostBuffer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("host buffer: device is closed")
	}
	size = max(16, (size+15)&^15)
	buf, mem, _, err := d.newBuffer(size, []vk.MemoryPropertyFlagBits{
		vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit | vk.MemoryPropertyHostCachedBit,
		vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit,
	}, "host buffer")
	if err != nil {
		return nil, err
	}
	var p unsafe.Pointer
	if err := check("vkMapMemory", vk.MapMemory(d.dev, mem, 0, vk.DeviceSize(size), 0, &p)); err != nil {
		vk.DestroyBuffer(d.dev, buf, nil)
		vk.FreeMemory(d.dev, mem, nil)
		return nil, fmt.Errorf("host buffer: %w", err)
	}
	d.hostIDs--
	h := &HostBuffer{d: d, blk: block{id: d.hostIDs, mem: mem, buf: buf, size: size, mapped: p}, size: size}
	if d.hosts == nil {
		d.hosts = map[*HostBuffer]struct{}{}
	}
	d.hosts[h] = struct{}{}
	d.ctr.allocs.Add(1)
	return h, nil
}

// Len is the buffer's size in bytes.
func (h *HostBuffer) Len() int { return int(h.size) }

// Bytes is the mapped memory (valid until Free).
func (h *HostBuffer) Bytes() []byte {
	if h.blk.mapped == nil {
		return nil
	}
	return unsafe.Slice((*byte)(h.blk.mapped), h.size)
}

// Int32s views the first n 4-byte words of the buffer as int32 values.
func (h *HostBuffer) Int32s(n int) []int32 {
	if h.blk.mapped == nil || uint64(4*n) > h.size {
		return nil
	}
	return unsafe.Slice((*int32)(h.blk.mapped), n)
}

// Float32s views the first n 4-byte words of the buffer as float32 values.
func (h *HostBuffer) Float32s(n int) []float32 {
	if h.blk.mapped == nil || uint64(4*n) > h.size {
		return nil
	}
	return unsafe.Slice((*float32)(h.blk.mapped), n)
}

// Free releases the buffer; it must not be in use by a batch in flight.
// After a timeout (the device is lost) a batch may still be copying to or
// from it: the buffer then stays until Close, which waits for the device to
// go idle first.
func (h *HostBuffer) Free() {
	if h == nil || h.blk.mapped == nil {
		return
	}
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.dev == nil {
		return // Close released it
	}
	if d.lost.Load() {
		return // in d.hosts: Close releases it after waiting for idle
	}
	delete(d.hosts, h)
	h.release()
}

// release destroys the buffer (the caller holds d.mu).
func (h *HostBuffer) release() {
	d := h.d
	vk.UnmapMemory(d.dev, h.blk.mem)
	vk.DestroyBuffer(d.dev, h.blk.buf, nil)
	vk.FreeMemory(d.dev, h.blk.mem, nil)
	h.blk.mapped = nil
}

func (h *HostBuffer) check(off, n uint64) error {
	if h.blk.mapped == nil {
		return fmt.Errorf("host buffer is freed")
	}
	if off+n > h.size {
		return fmt.Errorf("%d bytes at offset %d exceed the host buffer's %d", n, off, h.size)
	}
	return nil
}

// CopyToHost records a copy of n bytes of src at srcOff into dst at dstOff,
// followed by the barrier that makes them visible to the host once the batch
// has been waited for.
func (r *Recorder) CopyToHost(dst *HostBuffer, dstOff uint64, src *Tensor, srcOff, n uint64) error {
	if r.err != nil {
		return r.err
	}
	if err := src.alive(); err != nil {
		return err
	}
	if err := dst.check(dstOff, n); err != nil {
		return fmt.Errorf("copy to host: %w", err)
	}
	if srcOff+n > src.bytes {
		return fmt.Errorf("copy to host: %d bytes at offset %d exceed tensor %s (%d bytes)", n, srcOff, src.name, src.bytes)
	}
	if n == 0 {
		return nil
	}
	if err := r.begin(); err != nil {
		return err
	}
	s0 := src.off + srcOff
	r.hazard([]rng{{src.blk.id, s0, s0 + n}}, []rng{{dst.blk.id, dstOff, dstOff + n}})
	r.called(1)
	r.timed("copy", func(f *frame) { r.d.cmdCopy(f.cmd, src.blk.buf, dst.blk.buf, s0, dstOff, n) })
	r.d.cmdHostBarrier(r.frames[r.cur].cmd)
	r.called(1)
	r.count++
	r.d.ctr.copies.Add(1)
	r.d.ctr.barriers.Add(1)
	return nil
}

// CopyFromHost records a copy of n bytes of src at srcOff into dst at dstOff.
// The host writes src before the Flush that submits the copy.
func (r *Recorder) CopyFromHost(dst *Tensor, dstOff uint64, src *HostBuffer, srcOff, n uint64) error {
	if r.err != nil {
		return r.err
	}
	if err := dst.alive(); err != nil {
		return err
	}
	if err := src.check(srcOff, n); err != nil {
		return fmt.Errorf("copy from host: %w", err)
	}
	if dstOff+n > dst.bytes {
		return fmt.Errorf("copy from host: %d bytes at offset %d exceed tensor %s (%d bytes)", n, dstOff, dst.name, dst.bytes)
	}
	if n == 0 {
		return nil
	}
	if err := r.begin(); err != nil {
		return err
	}
	d0 := dst.off + dstOff
	r.hazard([]rng{{src.blk.id, srcOff, srcOff + n}}, []rng{{dst.blk.id, d0, d0 + n}})
	r.called(1)
	r.timed("copy", func(f *frame) { r.d.cmdCopy(f.cmd, src.blk.buf, dst.blk.buf, srcOff, d0, n) })
	r.count++
	r.d.ctr.copies.Add(1)
	return nil
}
