package runtime_test

import (
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestDispatchRecordingCost counts what recording a dispatch costs the host,
// without timing it: one call into the driver per dispatch (its descriptor
// set, the barrier before it, the bindings, the push constants and the
// dispatch in one cgo call), the pipeline bound only when it changes, a
// descriptor set allocated and written only for bindings not seen before
// (later batches reuse it), and no Go allocation but the push constants'
// interface box. The results stay right with the cached sets.
func TestDispatchRecordingCost(t *testing.T) {
	d := gputest.Device(t)
	const n, steps = 1000, 6
	acc, ones := accAndOnes(t, d, n)
	k, err := d.Kernel(runtime.KernelDesc{Shader: "add_inplace_f32_f32", Bindings: 2, ReadOnly: 0b10, PushSize: 4, Spec: []uint32{256}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	g := d.Groups1D(n, 256)
	// acc += ones, steps times: every dispatch after the first waits for
	// the one before (a barrier, recorded in the dispatch's call).
	batch := func() runtime.Counters {
		t.Helper()
		before := d.Counters()
		for i := 0; i < steps; i++ {
			if err := r.Dispatch(k, g, uint32(n), acc, ones); err != nil {
				t.Fatal(err)
			}
		}
		c := d.Counters().Sub(before)
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, second := batch(), batch()
	// Recording the first batch: vkResetCommandBuffer and
	// vkBeginCommandBuffer, then one call per dispatch: the first allocates
	// and writes the set, binds the pipeline and the set, pushes the
	// constants and dispatches (6 Vulkan calls), the others record the
	// barrier, bind the set, push and dispatch (4).
	want := runtime.Counters{Dispatches: steps, Barriers: steps - 1, RecordCalls: 2 + steps, VulkanCalls: 2 + 6 + 4*(steps-1), SetWrites: 1}
	if first != want {
		t.Errorf("first batch recorded %+v, want %+v", first, want)
	}
	// The second batch begins with a barrier (a call of its own), reuses
	// the cached set and binds the pipeline again in its command buffer.
	want = runtime.Counters{Dispatches: steps, Barriers: steps, RecordCalls: 3 + steps, VulkanCalls: 3 + 4 + 4*(steps-1)}
	if second != want {
		t.Errorf("second batch recorded %+v, want %+v", second, want)
	}
	got, err := acc.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 2*steps {
			t.Fatalf("acc[%d] = %v, want %d", i, v, 2*steps)
		}
	}

	// A recorded dispatch allocates only the box of its push constants
	// (the pipeline lookup, the push encoding, the bindings and the hazard
	// ranges allocate nothing).
	push := struct{ N, Pad uint32 }{n, 0}
	k8, err := d.Kernel(runtime.KernelDesc{Shader: "add_inplace_f32_f32", Bindings: 2, ReadOnly: 0b10, PushSize: 8, Spec: []uint32{256}})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Kernel(runtime.KernelDesc{Shader: "add_inplace_f32_f32", Bindings: 2, ReadOnly: 0b10, PushSize: 8, Spec: []uint32{256}}); err != nil {
			t.Fatal(err)
		}
		if err := r.Dispatch(k8, g, push, acc, ones); err != nil {
			t.Fatal(err)
		}
	})
	r.Discard()
	if allocs > 1 {
		t.Errorf("a pipeline lookup and a recorded dispatch allocate %v times, want at most 1 (the push constants' box)", allocs)
	}
}
