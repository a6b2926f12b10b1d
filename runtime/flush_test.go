package runtime_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// addOnes records acc += ones (both f32 of the same length).
func addOnes(t *testing.T, r *runtime.Recorder, acc, ones *runtime.Tensor) {
	t.Helper()
	d := r.Device()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "add_inplace_f32_f32", Bindings: 2, ReadOnly: 0b10, PushSize: 4, Spec: []uint32{256}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(k, d.Groups1D(acc.Len(), 256), uint32(acc.Len()), acc, ones); err != nil {
		t.Fatal(err)
	}
}

// TestFlushRing: batches flushed without waiting run in order (each reads
// what the previous one wrote), flushing never waits below
// MaxBatchesInFlight batches in flight, and Wait waits for all of them with
// one host wait.
func TestFlushRing(t *testing.T) {
	d := gputest.Device(t)
	const n, batches = 1000, 7
	acc, ones := accAndOnes(t, d, n)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	before := d.Counters()
	for b := 0; b < batches; b++ {
		for i := 0; i <= b; i++ { // batch b adds b+1
			addOnes(t, r, acc, ones)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		if !r.Busy() {
			t.Fatal("Busy() is false right after Flush")
		}
		c := d.Counters().Sub(before)
		if c.Submits != uint64(b+1) {
			t.Fatalf("after %d flushes: %d submits", b+1, c.Submits)
		}
		if c.Waits != 0 {
			t.Fatalf("after %d flushes: %d host waits, want none", b+1, c.Waits)
		}
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if r.Busy() {
		t.Error("Busy() after Wait")
	}
	if c := d.Counters().Sub(before); c.Waits != 1 {
		t.Errorf("%d batches: %d host waits in all, want one", batches, c.Waits)
	}
	got, err := acc.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	want := float32(batches * (batches + 1) / 2)
	for i, v := range got {
		if v != want {
			t.Fatalf("acc[%d] = %v after %d ordered batches, want %v", i, v, batches, want)
		}
	}
	// Submit still works after flushes, and an empty Wait does nothing.
	addOnes(t, r, acc, ones)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	w := d.Counters().Waits
	if err := r.Wait(); err != nil || d.Counters().Waits != w {
		t.Errorf("Wait with nothing in flight: err %v, waits %d → %d", err, w, d.Counters().Waits)
	}
	// Past MaxBatchesInFlight, each further batch waits for the oldest.
	before = d.Counters()
	const more = runtime.MaxBatchesInFlight + 3
	for b := 0; b < more; b++ {
		addOnes(t, r, acc, ones)
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if c := d.Counters().Sub(before); c.Waits != 4 || c.Submits != more {
		t.Errorf("%d batches: %d submits, %d waits; want %d and 4 (3 for a full ring, 1 at the end)", more, c.Submits, c.Waits, more)
	}
	got, err = acc.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(batches*(batches+1)/2 + 1 + more); got[0] != want {
		t.Errorf("acc[0] = %v, want %v", got[0], want)
	}
}

// TestWaitContextCancel: a cancelled wait returns promptly with the context's
// error while a long batch runs; the recorder then waits for it before
// recording again, and the results are complete.
func TestWaitContextCancel(t *testing.T) {
	d := gputest.Device(t)
	// Find a spin grid that takes at least 300 ms.
	groups := uint32(4)
	for {
		x, err := d.NewTensor(runtime.F32, 64*int(groups))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = spin(d, groups, x)
		took := time.Since(start)
		x.Free()
		if err != nil {
			t.Fatal(err)
		}
		if took >= 300*time.Millisecond {
			break
		}
		if groups >= d.Info().MaxWorkgroupCount[0]/4 || uint64(groups)*64*4*4 > d.Info().MaxStorageBufferRange {
			t.Skipf("device too fast for the spin kernel (%d workgroups in %v)", groups, took)
		}
		groups *= 4
	}
	x, err := d.NewTensor(runtime.F32, 64*int(groups))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "test_spin", Bindings: 1, PushSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := r.Dispatch(k, [3]uint32{groups, 1, 1}, spinPush{64 * groups, spinIters, 0.999, 0.5}, x); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	err = r.SubmitContext(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SubmitContext with a context cancelled after 20 ms: %v, want context.Canceled", err)
	}
	if took > 150*time.Millisecond {
		t.Errorf("cancelled wait returned after %v, want within about 20 ms + one poll", took)
	}
	if !r.Busy() {
		t.Error("the cancelled batch is no longer reported as running")
	}
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait after a cancelled wait: %v", err)
	}
	if r.Busy() {
		t.Error("Busy() after Wait")
	}
}

// TestHostBufferRoundTrip: inputs copied from a host buffer and results
// copied back to one travel in the same batch as the work: one submit and
// one host wait, no separate upload or download.
func TestHostBufferRoundTrip(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n = 333
	in, err := d.NewHostBuffer(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Free()
	out, err := d.NewHostBuffer(4*n + 8)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	acc, ones := accAndOnes(t, d, n)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	for round := 0; round < 3; round++ {
		x := gputest.Normal(rng, n, 3)
		copy(in.Float32s(n), x)
		o := out.Float32s(n + 2)
		for i := range o {
			o[i] = float32(math.NaN()) // poison
		}
		before := d.Counters()
		if err := r.CopyFromHost(acc, 0, in, 0, 4*n); err != nil {
			t.Fatal(err)
		}
		addOnes(t, r, acc, ones)
		if err := r.CopyToHost(out, 8, acc, 0, 4*n); err != nil {
			t.Fatal(err)
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if c := d.Counters().Sub(before); c.Submits != 1 || c.Waits != 1 {
			t.Errorf("round %d: %d submits and %d waits, want 1 and 1", round, c.Submits, c.Waits)
		}
		o = out.Float32s(n + 2)
		if !math.IsNaN(float64(o[0])) || !math.IsNaN(float64(o[1])) {
			t.Errorf("round %d: bytes before the destination offset were written: %v", round, o[:2])
		}
		for i := range x {
			if o[i+2] != x[i]+1 {
				t.Fatalf("round %d: out[%d] = %v, want %v", round, i, o[i+2], x[i]+1)
			}
		}
	}
	if err := r.CopyToHost(out, 16, acc, 0, 4*n); err == nil {
		t.Error("a copy past the end of the host buffer: want an error")
	}
}

// accAndOnes returns two f32 tensors of n elements, freed when t ends: an
// accumulator of zeros and a vector of ones.
func accAndOnes(t *testing.T, d *runtime.Device, n int) (acc, ones *runtime.Tensor) {
	t.Helper()
	acc, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acc.Free)
	ones, err = d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ones.Free)
	one := make([]float32, n)
	for i := range one {
		one[i] = 1
	}
	if err := ones.UploadF32(one); err != nil {
		t.Fatal(err)
	}
	if err := acc.UploadF32(make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	return acc, ones
}
