package runtime_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

func TestChooseDevice(t *testing.T) {
	infos := []runtime.DeviceInfo{
		{Index: 0, Name: "llvmpipe (LLVM 15)", Type: runtime.TypeCPU, ComputeQueueFamily: 0},
		{Index: 1, Name: "Intel UHD 770", Type: runtime.TypeIntegrated, ComputeQueueFamily: 0},
		{Index: 2, Name: "NVIDIA H200", Type: runtime.TypeDiscrete, ComputeQueueFamily: 0},
		{Index: 3, Name: "virtio", Type: runtime.TypeVirtual, ComputeQueueFamily: 0},
	}
	tests := []struct {
		want    string
		pick    int
		errPart string
	}{
		{"", 2, ""},
		{"0", 0, ""},
		{"3", 3, ""},
		{"nvidia", 2, ""},
		{"UHD", 1, ""},
		{"7", -1, "no Vulkan device with index 7"},
		{"radeon", -1, "no Vulkan device matches \"radeon\""},
	}
	for _, tc := range tests {
		got, err := runtime.ChooseDevice(infos, tc.want)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), "NVIDIA H200") {
				t.Errorf("ChooseDevice(%q): error %v, want one containing %q and listing the devices", tc.want, err, tc.errPart)
			}
			continue
		}
		if err != nil || infos[got].Index != tc.pick {
			t.Errorf("ChooseDevice(%q) = %d, %v; want device %d", tc.want, got, err, tc.pick)
		}
	}
	// Preference order without a discrete GPU: integrated > virtual > CPU.
	if got, _ := runtime.ChooseDevice(infos[:2], ""); got != 1 {
		t.Errorf("default among CPU+integrated = %d, want the integrated GPU", got)
	}
	if got, _ := runtime.ChooseDevice([]runtime.DeviceInfo{infos[0], infos[3]}, ""); got != 1 {
		t.Errorf("default among CPU+virtual = %d, want the virtual GPU", got)
	}
	if _, err := runtime.ChooseDevice(nil, ""); !errors.Is(err, runtime.ErrNoVulkan) {
		t.Errorf("no devices: %v, want ErrNoVulkan", err)
	}
}

func TestDeviceInfo(t *testing.T) {
	d := gputest.Device(t)
	info := d.Info()
	if info.Name == "" || info.SubgroupSize == 0 || info.MaxSharedMemory == 0 || info.MaxStorageBufferRange == 0 {
		t.Errorf("incomplete device info: %+v", info)
	}
	if !strings.Contains(info.Summary(), info.Name) {
		t.Errorf("summary %q lacks the name", info.Summary())
	}
	if _, err := runtime.Open(runtime.Options{Device: "no-such-device-xyz"}); err == nil || !strings.Contains(err.Error(), info.Name) {
		t.Errorf("opening a missing device: %v, want an error listing %q", err, info.Name)
	}
}

func TestUploadDownloadChunked(t *testing.T) {
	gputest.Device(t) // skip early without Vulkan
	d, err := runtime.Open(runtime.Options{StagingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 4096, 4097, 10001} {
		x, err := d.NewTensor(runtime.U8, n)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := x.UploadBytes(data, 0); err != nil {
			t.Fatal(err)
		}
		got, err := x.DownloadBytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("n=%d: round trip through a 4 KiB staging buffer differs", n)
		}
		x.Free()
	}
}

func TestAllocatorReuseAndViews(t *testing.T) {
	d := gputest.Device(t)
	before := d.MemoryInUse()
	var ts []*runtime.Tensor
	for i := 0; i < 50; i++ {
		x, err := d.NewTensor(runtime.F32, 1000+i)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	for i := 0; i < len(ts); i += 2 {
		ts[i].Free()
	}
	for i := 0; i < 25; i++ {
		x, err := d.NewTensor(runtime.F32, 900)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	// Distinct live tensors must not overlap: write a distinct value into each and read back.
	live := []*runtime.Tensor{}
	for i, x := range ts {
		if i < 50 && i%2 == 0 {
			continue
		}
		live = append(live, x)
	}
	for i, x := range live {
		v := make([]float32, x.Len())
		for j := range v {
			v[j] = float32(i)
		}
		if err := x.UploadF32(v); err != nil {
			t.Fatal(err)
		}
	}
	for i, x := range live {
		v, err := x.DownloadF32()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range v {
			if e != float32(i) {
				t.Fatalf("tensor %d was overwritten (found %v): allocations overlap", i, e)
			}
		}
	}
	// Views.
	big, err := d.NewTensor(runtime.F32, 4, 1024)
	if err != nil {
		t.Fatal(err)
	}
	row2, err := big.View(2*1024, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := kernels.Fill(r, big, 0); err != nil {
			return err
		}
		return kernels.Fill(r, row2, 0x3f800000)
	}); err != nil {
		t.Fatal(err)
	}
	v, _ := big.DownloadF32()
	for i, e := range v {
		want := float32(0)
		if i >= 2048 && i < 3072 {
			want = 1
		}
		if e != want {
			t.Fatalf("view fill: element %d = %v, want %v", i, e, want)
		}
	}
	if _, err := big.View(1, 4); err == nil {
		t.Error("unaligned view: want an error")
	}
	if _, err := big.View(3*1024, 2048); err == nil {
		t.Error("view past the end: want an error")
	}
	row2.Free() // no-op
	big.Free()
	for _, x := range live {
		x.Free()
	}
	if after := d.MemoryInUse(); after > before && before > 0 {
		t.Errorf("memory in use grew from %d to %d after freeing everything", before, after)
	}
}

func TestOutOfMemoryIsAnError(t *testing.T) {
	gputest.Device(t)
	d, err := runtime.Open(runtime.Options{MaxAlloc: 1 << 20, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.NewNamedTensor("huge", runtime.F32, 1<<20)
	if !errors.Is(err, runtime.ErrOutOfDeviceMemory) || !strings.Contains(err.Error(), "huge") || !strings.Contains(err.Error(), "SHAREPREFILL_VK_MAX_ALLOC") {
		t.Errorf("4 MiB tensor under a 1 MiB limit: %v; want ErrOutOfDeviceMemory naming the tensor and the override", err)
	}
	if _, err := d.NewTensor(runtime.F32, -1); err == nil {
		t.Error("negative shape: want an error")
	}
}

func TestRecorderErrorsAndProfiling(t *testing.T) {
	d := gputest.Device(t)
	x, _ := d.NewTensor(runtime.F32, 100)
	y, _ := d.NewTensor(runtime.F32, 100)
	defer x.Free()
	defer y.Free()
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	k, err := d.Kernel(runtime.KernelDesc{Shader: "fill", Bindings: 1, PushSize: 8, Spec: []uint32{64}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(k, [3]uint32{1, 1, 1}, [2]uint32{100, 0}, x, y); err == nil {
		t.Error("two arguments for one binding: want an error")
	}
	if err := r.Submit(); err == nil {
		t.Error("Submit after a failed Dispatch: want the error back")
	}
	if _, err := d.Kernel(runtime.KernelDesc{Shader: "no_such_shader", Bindings: 1}); err == nil || !strings.Contains(err.Error(), "fill") {
		t.Errorf("unknown shader: %v, want an error listing known shaders", err)
	}
	// Profiling: a chain of dependent dispatches gives timings and right values.
	r.EnableProfiling()
	if err := kernels.Fill(r, x, 0x3f800000); err != nil { // 1.0
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // x -> y -> x ..., each doubling: needs a barrier between each
		if i%2 == 0 {
			err = kernels.Scale(r, y, x, 2, 0)
		} else {
			err = kernels.Scale(r, x, y, 2, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	v, _ := x.DownloadF32()
	if v[99] != 1<<20 {
		t.Errorf("chain of 20 doublings gave %v, want %v (missing barrier?)", v[99], 1<<20)
	}
	if d.Info().TimestampValidBits > 0 {
		tm := r.Timings()
		if len(tm) != 21 {
			t.Fatalf("%d timings, want 21", len(tm))
		}
		for _, x := range tm {
			if x.Nanos < 0 {
				t.Errorf("invalid timing %+v", x)
			}
		}
	}
	x.Free()
	r2, _ := d.NewRecorder()
	defer r2.Release()
	if err := kernels.Fill(r2, x, 0); err == nil {
		t.Error("dispatch on a freed tensor: want an error")
	}
}

func TestBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	lim := d.Info().MaxStorageBufferRange
	if lim > 256<<20 || os.Getenv("SHAREPREFILL_SKIP_BIG") != "" {
		t.Skipf("maxStorageBufferRange %d is large; the limit test runs on lavapipe-like devices", lim)
	}
	x, err := d.NewTensor(runtime.U8, int(lim)+16)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	err = d.Run(func(r *runtime.Recorder) error { return kernels.Fill(r, x, 0) })
	if err == nil || !strings.Contains(err.Error(), "maxStorageBufferRange") {
		t.Errorf("binding past maxStorageBufferRange: %v, want an error naming the limit", err)
	}
}

// TestPipelineStatistics: with Options.PipelineStats the driver's statistics
// of a created kernel come back (where the driver has
// VK_KHR_pipeline_executable_properties, e.g. NVIDIA); elsewhere, and
// without the option, the call fails with ErrMissingFeature.
func TestPipelineStatistics(t *testing.T) {
	if _, err := gputest.Device(t).PipelineStatistics(); !errors.Is(err, runtime.ErrMissingFeature) {
		t.Errorf("without Options.PipelineStats: err = %v, want ErrMissingFeature", err)
	}
	d := gputest.Open(t, runtime.Options{PipelineStats: true})
	if _, err := d.Kernel(runtime.KernelDesc{Shader: "fill", Bindings: 1, PushSize: 8}); err != nil {
		t.Fatal(err)
	}
	st, err := d.PipelineStatistics()
	if !d.Info().Extensions["VK_KHR_pipeline_executable_properties"] {
		if !errors.Is(err, runtime.ErrMissingFeature) {
			t.Errorf("driver without the extension: err = %v, want ErrMissingFeature", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Shader != "fill" || len(st[0].Stats) == 0 {
		t.Fatalf("statistics = %+v, want the fill kernel's", st)
	}
	var b strings.Builder
	runtime.FormatPipelineStatistics(&b, st)
	t.Logf("\n%s", b.String())
}

// TestCoopMat2FlexFits: products fit an entry when every dimension is a
// positive multiple of its granularity.
func TestCoopMat2FlexFits(t *testing.T) {
	f := runtime.CoopMat2Flex{CoopMatShape: runtime.CoopMatShape{M: 64, N: 16, K: 16, Scope: "workgroup"}, Invocations: 128}
	for _, c := range []struct {
		m, n, k int
		want    bool
	}{
		{64, 16, 16, true}, {128, 128, 128, true}, {192, 48, 32, true},
		{32, 16, 16, false}, {64, 8, 16, false}, {64, 16, 24, false}, {0, 16, 16, false}, {64, -16, 16, false},
	} {
		if got := f.Fits(c.m, c.n, c.k); got != c.want {
			t.Errorf("Fits(%d, %d, %d) = %v, want %v", c.m, c.n, c.k, got, c.want)
		}
	}
	if (runtime.CoopMat2Flex{}).Fits(16, 16, 16) {
		t.Error("an entry without granularities fits")
	}
}
