package kernels

import (
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestGCStress creates pipelines, descriptor sets and submissions while
// another goroutine forces garbage collections. It guards against Vulkan
// structures whose memory a Go finalizer frees during the call (vulkan-go's
// nested create infos crashed vkCreateComputePipelines this way).
func TestGCStress(t *testing.T) {
	rng := gputest.Rand(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			_ = make([]byte, 1<<16)
			goruntime.GC()
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	for round := 0; round < 3; round++ {
		// A device of its own per round: pipelines are cached per device,
		// so each round creates its pipelines again (the shared device of
		// gputest.Device would have them from earlier tests).
		d := gputest.Open(t, runtime.Options{})
		x := upload(t, d, runtime.F16, gputest.Normal(rng, 33*40, 1))
		w := upload(t, d, runtime.F16, gputest.Normal(rng, 17*40, 1))
		y := empty(t, d, runtime.F32, 33*17)
		x.Free()
		x = upload(t, d, runtime.F16, gputest.Normal(rng, 33*40, 1))
		for i := 0; i < 5; i++ {
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := Scale(r, y, y, 1, 0); err != nil {
					return err
				}
				return MatMul(r, view2(t, y, 33, 17), view2(t, x, 33, 40), view2(t, w, 17, 40), nil)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func view2(t *testing.T, x *runtime.Tensor, a, b int) *runtime.Tensor {
	v, err := x.View(0, a, b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
