package gpu

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// arena keeps named device buffers between calls and hands out views of
// the size a call needs, reallocating a buffer only when a call needs more
// (or another element type). Reallocation frees the old buffer, so it may
// only happen when no recorded work uses it (in Begin).
type arena struct {
	dev  *runtime.Device
	bufs map[string]*runtime.Tensor
}

// view returns a view of n elements (at least 1) of the buffer name.
func (a *arena) view(name string, dt runtime.DType, n int) (*runtime.Tensor, error) {
	n = max(n, 1)
	t := a.bufs[name]
	if t == nil || t.DType() != dt || t.Len() < n {
		if t != nil {
			t.Free()
			delete(a.bufs, name)
		}
		var err error
		if t, err = a.dev.NewNamedTensor(name, dt, n); err != nil {
			return nil, fmt.Errorf("buffer %s: %w", name, err)
		}
		if a.bufs == nil {
			a.bufs = map[string]*runtime.Tensor{}
		}
		a.bufs[name] = t
	}
	return t.View(0, n)
}

// free releases every buffer.
func (a *arena) free() {
	for _, t := range a.bufs {
		t.Free()
	}
	a.bufs = nil
}

// hostBuffer returns *h when it holds at least n bytes, else a new host
// buffer of n bytes (freeing the old one).
func hostBuffer(dev *runtime.Device, h **runtime.HostBuffer, n int) error {
	if *h != nil && (*h).Len() >= n {
		return nil
	}
	(*h).Free()
	*h = nil
	b, err := dev.NewHostBuffer(uint64(max(n, 16)))
	if err != nil {
		return err
	}
	*h = b
	return nil
}
