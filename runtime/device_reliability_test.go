package runtime_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestValidationActiveInTests checks that SHAREPREFILL_VK_VALIDATION=1
// reaches the devices tests open (so a validation run really validates).
func TestValidationActiveInTests(t *testing.T) {
	if os.Getenv("SHAREPREFILL_VK_VALIDATION") == "" {
		t.Skip("SHAREPREFILL_VK_VALIDATION is not set")
	}
	d := gputest.Device(t)
	if !d.Validating() {
		t.Fatal("SHAREPREFILL_VK_VALIDATION is set but the device has no validation messenger")
	}
}

// TestOutOfMemoryMessages: an allocation that cannot fit says how much was
// asked and how much there is, and wraps ErrOutOfDeviceMemory.
func TestOutOfMemoryMessages(t *testing.T) {
	gputest.Device(t) // skip early without Vulkan
	t.Run("allocation limit", func(t *testing.T) {
		d := gputest.Open(t, runtime.Options{MaxAlloc: 1 << 20, BlockSize: 1 << 20})
		_, err := d.NewNamedTensor("big", runtime.F32, 1<<20)
		if !errors.Is(err, runtime.ErrOutOfDeviceMemory) || !strings.Contains(err.Error(), "4.0 MiB") || !strings.Contains(err.Error(), "1.0 MiB") {
			t.Errorf("4 MiB tensor under a 1 MiB allocation limit: %v; want ErrOutOfDeviceMemory with both sizes", err)
		}
	})
	t.Run("heap", func(t *testing.T) {
		// Lift the allocation limit so that the request reaches the heap check.
		d := gputest.Open(t, runtime.Options{MaxAlloc: 1 << 50})
		heap := d.MemoryBudget()
		if heap == 0 {
			t.Skip("device reports no device-local heap size")
		}
		small, err := d.NewTensor(runtime.F32, 1000)
		if err != nil {
			t.Fatal(err)
		}
		defer small.Free()
		inUse := d.MemoryInUse()
		_, err = d.NewNamedTensor("too big", runtime.U8, int(heap))
		if !errors.Is(err, runtime.ErrOutOfDeviceMemory) {
			t.Fatalf("tensor as large as the whole heap (%d B) with %d B in use: %v; want ErrOutOfDeviceMemory", heap, inUse, err)
		}
		for _, part := range []string{"too big", "in use", "free"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q lacks %q", err, part)
			}
		}
		if d.MemoryInUse() != inUse {
			t.Errorf("a failed allocation changed the memory in use from %d to %d", inUse, d.MemoryInUse())
		}
		// The device stays usable.
		x, err := d.NewTensor(runtime.F32, 10)
		if err != nil {
			t.Fatalf("allocation after an out-of-memory error: %v", err)
		}
		x.Free()
	})
}

type spinPush struct {
	N, Iters uint32
	A, B     float32
}

// spinIters is below llvmpipe's 65535-iteration loop limit.
const spinIters = 60000

func spin(d *runtime.Device, groups uint32, x *runtime.Tensor) error {
	return spinTo(d, groups, x, nil)
}

// spinTo is spin, then x copied to out (when not nil) in the same batch.
func spinTo(d *runtime.Device, groups uint32, x *runtime.Tensor, out *runtime.HostBuffer) error {
	k, err := d.Kernel(runtime.KernelDesc{Shader: "test_spin", Bindings: 1, PushSize: 16})
	if err != nil {
		return err
	}
	return d.Run(func(r *runtime.Recorder) error {
		if err := r.Dispatch(k, [3]uint32{groups, 1, 1}, spinPush{64 * groups, spinIters, 0.999, 0.5}, x); err != nil {
			return err
		}
		if out == nil {
			return nil
		}
		return r.CopyToHost(out, 0, x, 0, x.Bytes())
	})
}

// TestSubmitTimeout runs a deliberately long dispatch (shaders/test_spin.comp)
// under a short SubmitTimeout: Submit must give up with ErrTimeout instead of
// waiting, every later call must fail with ErrDeviceLost, and Close must
// still release everything (validation-clean).
func TestSubmitTimeout(t *testing.T) {
	gputest.Device(t) // skip early without Vulkan
	const timeout = 50 * time.Millisecond
	// Calibrate on a device with the default timeout: grow the grid until
	// one dispatch takes at least 100 ms (GPUs run many workgroups at once,
	// so the time is not proportional to the count), then use 10x that.
	cal := gputest.Device(t)
	groups := uint64(4)
	var took time.Duration
	for {
		if groups > uint64(cal.Info().MaxWorkgroupCount[0]) || groups*64*4 > cal.Info().MaxStorageBufferRange {
			t.Skipf("device too fast for the spin kernel (%d workgroups in %v)", groups/4, took)
		}
		x0, err := cal.NewTensor(runtime.F32, 64*int(groups))
		if err != nil {
			t.Fatal(err)
		}
		if err := spin(cal, uint32(groups), x0); err != nil { // builds the pipeline on the first round
			t.Fatal(err)
		}
		start := time.Now()
		err = spin(cal, uint32(groups), x0)
		took = time.Since(start)
		x0.Free()
		if err != nil {
			t.Fatal(err)
		}
		if took >= 100*time.Millisecond {
			break
		}
		groups *= 4
	}
	groups *= 10
	if groups > uint64(cal.Info().MaxWorkgroupCount[0]) || groups*64*4 > cal.Info().MaxStorageBufferRange {
		t.Skipf("device too fast for the spin kernel (%d workgroups in %v)", groups/10, took)
	}
	per := took / time.Duration(groups/10)
	t.Logf("%v per workgroup: %d workgroups", per, groups)

	d := gputest.Open(t, runtime.Options{SubmitTimeout: timeout})
	x, err := d.NewTensor(runtime.F32, 64*int(groups))
	if err != nil {
		t.Fatal(err)
	}
	// The batch ends with a copy to a host buffer, which the caller frees
	// after the timeout (as an engine's Close does): the copy still runs
	// later, so the buffer must outlive it (freed at Close: a SIGSEGV in
	// lavapipe's queue thread when it was not).
	out, err := d.NewHostBuffer(x.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = spinTo(d, uint32(groups), x, out)
	waited := time.Since(start)
	if !errors.Is(err, runtime.ErrTimeout) {
		t.Fatalf("a ~1 s dispatch under a %v timeout: %v; want ErrTimeout", timeout, err)
	}
	if !strings.Contains(err.Error(), "SHAREPREFILL_VK_TIMEOUT") {
		t.Errorf("timeout error %q does not name SHAREPREFILL_VK_TIMEOUT", err)
	}
	// It must return near the timeout, not when the dispatch (about
	// 10·took) ends: on a loaded CPU device (lavapipe under -race beside
	// other jobs) the host side alone can take a few hundred ms, so the
	// bound is the larger of timeout + 500 ms and ¾ of the dispatch.
	if limit := max(timeout+500*time.Millisecond, 10*took*3/4); waited > limit {
		t.Errorf("Submit returned after %v, want about %v (at most %v; the dispatch takes about %v)", waited, timeout, limit, 10*took)
	}
	// The device is unusable now; every call says so instead of hanging.
	if err := spin(d, 1, x); !errors.Is(err, runtime.ErrDeviceLost) {
		t.Errorf("dispatch after a timeout: %v; want ErrDeviceLost", err)
	}
	if err := x.UploadF32(make([]float32, x.Len())); !errors.Is(err, runtime.ErrDeviceLost) {
		t.Errorf("upload after a timeout: %v; want ErrDeviceLost", err)
	}
	if _, err := x.DownloadF32(); !errors.Is(err, runtime.ErrDeviceLost) {
		t.Errorf("download after a timeout: %v; want ErrDeviceLost", err)
	}
	x.Free()
	out.Free()
	closed := make(chan struct{})
	go func() { d.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close after a timeout did not return within 30 s")
	}
}
