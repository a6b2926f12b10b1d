package runtime_test

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// scaleOnce runs y = 2x + 1 on d with fresh random x (y poisoned first) and
// checks the result.
func scaleOnce(t *testing.T, d *runtime.Device, n int) {
	t.Helper()
	rng := gputest.Rand(t)
	xs := gputest.Normal(rng, n, 1)
	x, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	y, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := x.UploadF32(xs); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := kernels.Poison(r, y); err != nil {
			return err
		}
		return kernels.Scale(r, y, x, 2, 1)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := y.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, n)
	for i, v := range xs {
		want[i] = 2*float64(v) + 1
	}
	if e := gputest.RelErr(got, want); e > 1e-6 || math.IsNaN(e) {
		t.Fatalf("scale on the adopted device: relative error %g", e)
	}
}

// TestAdoptCreated creates an instance and device the way an application
// would (CreateVulkan, with the runtime's shim), adopts the raw handles,
// computes, closes the runtime Device and checks that the application's
// device survived by adopting and computing again.
func TestAdoptCreated(t *testing.T) {
	gputest.Device(t) // skips without Vulkan (fails with SHAREPREFILL_REQUIRE_VULKAN=1)
	ext, err := runtime.CreateVulkan(runtime.VulkanOptions{ApplicationName: "adopt-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer runtime.DestroyVulkan(ext)
	if ext.Instance == nil || ext.PhysicalDevice == nil || ext.Device == nil || ext.Queue == nil {
		t.Fatalf("CreateVulkan returned empty handles: %+v", ext)
	}
	for round := 0; round < 2; round++ {
		d, err := runtime.Adopt(ext)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !d.Adopted() {
			t.Errorf("Adopted() = false for an adopted device")
		}
		h := d.Handles()
		if h.Device != ext.Device || h.Queue != ext.Queue || h.Instance != ext.Instance || h.QueueFamily != ext.QueueFamily {
			t.Errorf("Handles() = %+v, want the adopted ones %+v", h, ext)
		}
		if d.Caps().Float16 != ext.Features.Float16 || d.Caps().CoopMat != ext.Features.CoopMat {
			t.Errorf("caps %+v do not follow the declared features %+v", d.Caps(), ext.Features)
		}
		scaleOnce(t, d, 1000+round*37)
		d.Close()
		d.Close() // twice is fine
	}
}

// TestAdoptShared adopts the handles of a device the runtime opened: two
// runtime Devices on one VkDevice, each with its own memory and pipelines.
// Closing the adopted one leaves the owner working.
func TestAdoptShared(t *testing.T) {
	owner := gputest.Device(t)
	if owner.Adopted() {
		t.Fatal("a device from runtime.Open reports Adopted")
	}
	ext := owner.Handles()
	ext.QueueLock = &sync.Mutex{}
	d, err := runtime.Adopt(ext)
	if err != nil {
		t.Fatal(err)
	}
	scaleOnce(t, d, 513)
	scaleOnce(t, owner, 257)
	d.Close()
	scaleOnce(t, owner, 129)
}

func TestAdoptErrors(t *testing.T) {
	if _, err := runtime.Adopt(runtime.ExternalVulkan{}); err == nil || !strings.Contains(err.Error(), "must all be set") {
		t.Errorf("Adopt of empty handles: %v", err)
	}
	owner := gputest.Device(t)
	ext := owner.Handles()
	ext.QueueFamily = 1000
	if _, err := runtime.Adopt(ext); err == nil || !strings.Contains(err.Error(), "queue family 1000") {
		t.Errorf("Adopt with a bad queue family: %v", err)
	}
	if _, err := runtime.CreateVulkan(runtime.VulkanOptions{DeviceExtensions: []string{"VK_NO_such_extension"}}); err == nil || !strings.Contains(err.Error(), "VK_NO_such_extension") {
		t.Errorf("CreateVulkan with an unknown device extension: %v", err)
	}
}
