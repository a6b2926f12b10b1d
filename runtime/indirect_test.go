package runtime_test

import (
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// groupsWant returns what shaders/test_groups.comp writes for a grid g into
// n elements pre-filled with fill.
func groupsWant(g [3]uint32, n int, fill int32) []int32 {
	want := make([]int32, n)
	for i := range want {
		want[i] = fill
	}
	for z := uint32(0); z < g[2]; z++ {
		for y := uint32(0); y < g[1]; y++ {
			for x := uint32(0); x < g[0]; x++ {
				want[x+g[0]*(y+g[1]*z)] = int32(1 + x + 1000*y + 1000000*z)
			}
		}
	}
	return want
}

// TestDispatchIndirect: the workgroup counts come from device memory at a
// byte offset, including counts written earlier in the same batch by a
// transfer and by a compute shader (the recorder must order the indirect
// read after both), and zero counts dispatch nothing.
func TestDispatchIndirect(t *testing.T) {
	d := gputest.Device(t)
	k, err := d.Kernel(runtime.KernelDesc{Shader: "test_groups", Bindings: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n, sentinel = 64, -7
	data, err := d.NewTensor(runtime.I32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Free()
	counts, err := d.NewTensor(runtime.I32, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer counts.Free()
	src, err := d.NewTensor(runtime.I32, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Free()
	fillK, err := d.Kernel(runtime.KernelDesc{Shader: "fill", Bindings: 1, PushSize: 8, Spec: []uint32{64}})
	if err != nil {
		t.Fatal(err)
	}
	reset := func() {
		t.Helper()
		s := make([]int32, n)
		for i := range s {
			s[i] = sentinel
		}
		if err := data.UploadI32(s); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, g [3]uint32) {
		t.Helper()
		got, err := data.DownloadI32()
		if err != nil {
			t.Fatal(err)
		}
		want := groupsWant(g, n, sentinel)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: data[%d] = %d, want %d (grid %v)", what, i, got[i], want[i], g)
			}
		}
	}
	// Counts uploaded before the batch, read at a non-zero offset.
	if err := counts.UploadI32([]int32{9, 9, 9, 2, 3, 2, 0, 4, 4, 9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	reset()
	if err := d.Run(func(r *runtime.Recorder) error { return r.DispatchIndirect(k, counts, 12, nil, data) }); err != nil {
		t.Fatal(err)
	}
	check("uploaded counts", [3]uint32{2, 3, 2})
	// A zero count dispatches nothing.
	reset()
	if err := d.Run(func(r *runtime.Recorder) error { return r.DispatchIndirect(k, counts, 24, nil, data) }); err != nil {
		t.Fatal(err)
	}
	check("zero count", [3]uint32{0, 0, 0})
	// Counts written in the same batch: a transfer, then a compute shader.
	if err := src.UploadI32([]int32{5, 1, 2}); err != nil {
		t.Fatal(err)
	}
	reset()
	err = d.Run(func(r *runtime.Recorder) error {
		if err := r.CopyBytes(counts, 36, src, 0, 12); err != nil {
			return err
		}
		return r.DispatchIndirect(k, counts, 36, nil, data)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("counts copied in the batch", [3]uint32{5, 1, 2})
	reset()
	err = d.Run(func(r *runtime.Recorder) error {
		cv := counts.Slice(0, 4) // fill writes whole 16-byte words: (3, 3, 3, 3)
		if err := r.Dispatch(fillK, [3]uint32{1, 1, 1}, [2]uint32{4, 3}, cv); err != nil {
			return err
		}
		return r.DispatchIndirect(k, counts, 0, nil, data)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("counts written by a shader in the batch", [3]uint32{3, 3, 3})
	// Errors name the tensor and the limit; the recorder stays usable.
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	for _, off := range []uint64{2, 40} {
		err := r.DispatchIndirect(k, counts, off, nil, data)
		if err == nil || !strings.Contains(err.Error(), "workgroup counts at byte") {
			t.Errorf("offset %d: error %v", off, err)
		}
		r.Discard()
	}
	if err := r.DispatchIndirect(k, nil, 0, nil, data); err == nil {
		t.Errorf("nil counts: no error")
	}
	r.Discard()
}
