package runtime

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Options configures Open. Every field has an environment override, listed
// with the field; an explicit option wins over the environment.
type Options struct {
	// Device is an index or a name substring (SHAREPREFILL_DEVICE). Empty
	// means discrete > integrated > virtual > CPU.
	Device string
	// Validation enables VK_LAYER_KHRONOS_validation (SHAREPREFILL_VK_VALIDATION=1).
	Validation bool
	// DisableF16 turns off fp16 arithmetic variants (SHAREPREFILL_VK_DISABLE_F16=1).
	DisableF16 bool
	// DisableCoopMat turns off KHR cooperative-matrix variants (SHAREPREFILL_VK_DISABLE_COOPMAT=1).
	DisableCoopMat bool
	// DisableCoopMat2 turns off NV cooperative-matrix-2 variants (SHAREPREFILL_VK_DISABLE_COOPMAT2=1).
	DisableCoopMat2 bool
	// CoopMatUnlisted (testing only, SHAREPREFILL_VK_COOPMAT_UNLISTED=1)
	// uses the 16×16×16 f16 cooperative-matrix kernels on a driver that
	// lists only other subgroup-scope f16×f16→f32 shapes (lavapipe lists
	// 8×8×8 and computes 16×16×16 correctly): outside the specification,
	// and the validation layer reports it, but it lets the coopmat kernels
	// be tested on the CPU (scripts/test-coopmat-lavapipe.sh).
	CoopMatUnlisted bool
	// PipelineStats (SHAREPREFILL_VK_PIPELINE_STATS=1) enables
	// VK_KHR_pipeline_executable_properties where the driver has it and
	// creates every pipeline with statistics capture, so that
	// Device.PipelineStatistics reports the driver's figures (registers,
	// spills, shared memory, ... as the driver names them). For tuning.
	PipelineStats bool
	// DisableSubgroupSizeControl (SHAREPREFILL_VK_DISABLE_SUBGROUP_SIZE_CONTROL=1).
	DisableSubgroupSizeControl bool
	// SubmitTimeout bounds every wait for the GPU (SHAREPREFILL_VK_TIMEOUT, in
	// seconds). Default 300 s.
	SubmitTimeout time.Duration
	// BlockSize is the size of the device-memory blocks tensors are carved
	// from (SHAREPREFILL_VK_ARENA_SIZE, bytes). Default 256 MiB, capped by the
	// device's allocation limit.
	BlockSize uint64
	// MaxAlloc overrides the device's maxMemoryAllocationSize
	// (SHAREPREFILL_VK_MAX_ALLOC, bytes).
	MaxAlloc uint64
	// StagingSize is the size of the host-visible buffer uploads and
	// downloads go through (in chunks). Default 32 MiB.
	StagingSize uint64
	// Serialize waits for the GPU after every submission (SHAREPREFILL_VK_SERIALIZE=1).
	Serialize bool
	// Tuning overrides the kernels' tile and kernel choices (tuning runs
	// only; each field has its own variable, see Tuning).
	Tuning Tuning
	// Logf, if set, receives one-line notes (device chosen, switches active).
	Logf func(format string, args ...any)
}

func envBool(name string) bool {
	v := os.Getenv(name)
	return v == "1" || strings.EqualFold(v, "true")
}

func envUint(name string) (uint64, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a byte count", name, v)
	}
	return n, nil
}

func (o *Options) fromEnv() error {
	if o.Device == "" {
		o.Device = os.Getenv("SHAREPREFILL_DEVICE")
	}
	o.Validation = o.Validation || envBool("SHAREPREFILL_VK_VALIDATION")
	o.DisableF16 = o.DisableF16 || envBool("SHAREPREFILL_VK_DISABLE_F16")
	o.DisableCoopMat = o.DisableCoopMat || envBool("SHAREPREFILL_VK_DISABLE_COOPMAT")
	o.DisableCoopMat2 = o.DisableCoopMat2 || envBool("SHAREPREFILL_VK_DISABLE_COOPMAT2")
	o.CoopMatUnlisted = o.CoopMatUnlisted || envBool("SHAREPREFILL_VK_COOPMAT_UNLISTED")
	o.PipelineStats = o.PipelineStats || envBool("SHAREPREFILL_VK_PIPELINE_STATS")
	o.DisableSubgroupSizeControl = o.DisableSubgroupSizeControl || envBool("SHAREPREFILL_VK_DISABLE_SUBGROUP_SIZE_CONTROL")
	o.Serialize = o.Serialize || envBool("SHAREPREFILL_VK_SERIALIZE")
	if o.SubmitTimeout == 0 {
		if v := os.Getenv("SHAREPREFILL_VK_TIMEOUT"); v != "" {
			s, err := strconv.ParseFloat(v, 64)
			if err != nil || s <= 0 {
				return fmt.Errorf("SHAREPREFILL_VK_TIMEOUT=%q: not a positive number of seconds", v)
			}
			o.SubmitTimeout = time.Duration(s * float64(time.Second))
		} else {
			o.SubmitTimeout = 300 * time.Second
		}
	}
	var err error
	if o.BlockSize == 0 {
		if o.BlockSize, err = envUint("SHAREPREFILL_VK_ARENA_SIZE"); err != nil {
			return err
		}
	}
	if o.MaxAlloc == 0 {
		if o.MaxAlloc, err = envUint("SHAREPREFILL_VK_MAX_ALLOC"); err != nil {
			return err
		}
	}
	return o.Tuning.fromEnv()
}

// Caps are the capabilities enabled on an open device, after the Disable*
// switches; kernels choose their variants from them.
type Caps struct {
	Float16             bool // shaderFloat16 arithmetic + 16-bit storage
	Storage16Bit        bool
	Int8                bool
	CoopMat             bool // KHR cooperative matrix with f16 16x16x16 -> f32
	CoopMat2            bool
	CoopMat2Conversions bool // with CoopMat2: accumulator -> A/B operand conversions in registers
	SubgroupSizeControl bool
	SubgroupSize        uint32
	SubgroupArithmetic  bool
	MaxSharedMemory     uint32
}

// Device is an open logical device with one compute queue.
type Device struct {
	inst      *Instance
	ownInst   bool
	ownDev    bool        // false for an adopted VkDevice (external.go)
	qlock     sync.Locker // held around vkQueueSubmit when the queue is shared (external.go)
	info      DeviceInfo
	caps      Caps
	pipeStats bool // pipelines are created with statistics capture (Options.PipelineStats)
	opts      Options
	dev       vk.Device
	queue     vk.Queue
	sp        unsafe.Pointer // *C.sp_dev: device functions called from C (vkcalls.go)
	qfi       uint32
	memProps  vk.PhysicalDeviceMemoryProperties
	maxAlloc  uint64

	mu     sync.Mutex // guards alloc, closed, the staging path and queue submission
	closed bool
	lost   atomic.Bool // a submission timed out or the device was lost
	alloc  allocator
	ctr    counters

	hostIDs int                      // last HostBuffer block id (negative; guarded by mu)
	hosts   map[*HostBuffer]struct{} // live host buffers, freed by Close (guarded by mu)

	cmdPool  vk.CommandPool
	xferCmd  vk.CommandBuffer
	xferFnc  vk.Fence
	stageBuf vk.Buffer
	stageMem vk.DeviceMemory
	stagePtr unsafe.Pointer
	stageSz  uint64

	pipes pipelineCache

	valMu  sync.Mutex
	values map[any]*deviceValue // Device.Value's entries (guarded by valMu)

	// deferred are releases postponed until Close because a timed-out
	// submission may still use their objects (guarded by mu).
	deferred []func()
}

// Open creates an instance and opens the chosen device.
func Open(opts Options) (*Device, error) {
	if err := opts.fromEnv(); err != nil {
		return nil, err
	}
	inst, err := NewInstance(InstanceOptions{Validation: opts.Validation})
	if err != nil {
		return nil, err
	}
	d, err := inst.open(opts)
	if err != nil {
		inst.Close()
		return nil, err
	}
	d.ownInst = true
	return d, nil
}

// Open opens a device of this instance; see the package-level Open.
func (in *Instance) Open(opts Options) (*Device, error) {
	if err := opts.fromEnv(); err != nil {
		return nil, err
	}
	return in.open(opts)
}

func (in *Instance) open(opts Options) (*Device, error) {
	idx, err := ChooseDevice(in.devices, opts.Device)
	if err != nil {
		return nil, err
	}
	info := in.devices[idx]
	if !info.Storage16Bit {
		return nil, fmt.Errorf("device %q: %w: storageBuffer16BitAccess (16-bit storage buffers) is required for f16 tensors", info.Name, ErrMissingFeature)
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	es := chooseEnables(&info, opts, logf)
	vdev, err := createVkDevice(in.inst, &info, es, nil)
	if err != nil {
		return nil, err
	}
	d := &Device{inst: in, info: info, opts: opts, qfi: uint32(info.ComputeQueueFamily), ownDev: true}
	d.pipeStats = es.exts&C.SP_EXT_PIPELINE_EXEC != 0
	if opts.PipelineStats && !d.pipeStats {
		logf("SHAREPREFILL_VK_PIPELINE_STATS: %s has no %s; no pipeline statistics", info.Name, extPipelineExec)
	}
	if err := d.setup(vdev, nil, es.caps(&info)); err != nil {
		return nil, err
	}
	logf("device: %s", info.Summary())
	return d, nil
}

// enableSet is what a logical device is created with: the features to
// enable (en), the extension flags the shim chains structures for, and the
// extension names.
type enableSet struct {
	en            C.sp_caps
	exts          uint32
	names         []string
	useCM, useCM2 bool
}

// chooseEnables decides the features and extensions to enable on info's
// device, after the Disable* switches of opts.
func chooseEnables(info *DeviceInfo, opts Options, logf func(string, ...any)) enableSet {
	en := info.caps
	exts := info.extFlags
	var extNames []string
	api12 := info.apiVersionRaw >= vk.MakeVersion(1, 2, 0)
	api13 := info.apiVersionRaw >= vk.MakeVersion(1, 3, 0)
	addExt := func(name string) {
		if info.Extensions[name] {
			extNames = append(extNames, name)
		}
	}
	if !api12 {
		addExt(ext16BitStorage)
		addExt(extStorageBufferClass)
		addExt(extFloat16Int8)
		addExt(ext8BitStorage)
		addExt(extMemoryModel)
	}
	if info.hasSubgroupSizeControlEx && !api13 {
		addExt(extSubgroupSizeControl)
	}
	if opts.DisableF16 {
		en.shader_float16 = 0
		logf("SHAREPREFILL_VK_DISABLE_F16: fp16 arithmetic variants off")
	}
	if opts.DisableSubgroupSizeControl {
		en.subgroup_size_control = 0
		en.compute_full_subgroups = 0
		logf("SHAREPREFILL_VK_DISABLE_SUBGROUP_SIZE_CONTROL: subgroup size control off")
	}
	if opts.PipelineStats && info.caps.pipeline_executable_info != 0 {
		addExt(extPipelineExec)
	} else {
		en.pipeline_executable_info = 0
		exts &^= C.SP_EXT_PIPELINE_EXEC
	}
	useCM := info.CoopMat && (info.coopMatF16(!opts.CoopMatUnlisted)) && !opts.DisableCoopMat
	if opts.DisableCoopMat && info.CoopMat {
		logf("SHAREPREFILL_VK_DISABLE_COOPMAT: cooperative-matrix variants off")
	}
	if useCM {
		addExt(extCoopMat)
	} else {
		en.coopmat = 0
		exts &^= C.SP_EXT_COOPMAT_KHR
	}
	useCM2 := info.CoopMat2 && !opts.DisableCoopMat2
	if opts.DisableCoopMat2 && info.CoopMat2 {
		logf("SHAREPREFILL_VK_DISABLE_COOPMAT2: cooperative-matrix-2 variants off")
	}
	if useCM2 {
		addExt(extCoopMat2)
	} else {
		exts &^= C.SP_EXT_COOPMAT2_NV
	}
	return enableSet{en: en, exts: exts, names: extNames, useCM: useCM, useCM2: useCM2}
}

// caps are the capabilities of a device created with es.
func (es *enableSet) caps(info *DeviceInfo) Caps {
	return Caps{
		Float16:             es.en.shader_float16 != 0 && info.Float16,
		Storage16Bit:        info.Storage16Bit,
		Int8:                info.Int8,
		CoopMat:             es.useCM,
		CoopMat2:            es.useCM2,
		CoopMat2Conversions: es.useCM2 && info.CoopMat2Conversions,
		SubgroupSizeControl: es.en.subgroup_size_control != 0 && info.SubgroupSizeControl,
		SubgroupSize:        info.SubgroupSize,
		SubgroupArithmetic:  info.SubgroupArithmetic,
		MaxSharedMemory:     info.MaxSharedMemory,
	}
}

// createVkDevice creates a logical device with one queue of info's compute
// family, the features of es and es's extensions plus extra ones.
func createVkDevice(inst vk.Instance, info *DeviceInfo, es enableSet, extra []string) (vk.Device, error) {
	extNames := append(append([]string(nil), es.names...), extra...)
	cnames := make([]*C.char, len(extNames)+1)
	for i, n := range extNames {
		cnames[i] = C.CString(n)
	}
	cArr := (**C.char)(C.malloc(C.size_t(len(cnames)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	arr := unsafe.Slice(cArr, len(cnames))
	copy(arr, cnames)
	var out unsafe.Pointer
	en := es.en
	r := C.sp_create_device(unsafe.Pointer(inst), unsafe.Pointer(info.physical), C.uint32_t(info.ComputeQueueFamily), C.uint32_t(es.exts), &en, cArr, C.uint32_t(len(extNames)), &out)
	for _, c := range cnames[:len(extNames)] {
		C.free(unsafe.Pointer(c))
	}
	C.free(unsafe.Pointer(cArr))
	if err := check("vkCreateDevice", vk.Result(r)); err != nil {
		return nil, fmt.Errorf("opening device %q: %w", info.Name, err)
	}
	return vk.Device(out), nil
}

// setup finishes a Device around a logical device (created by the runtime
// or adopted): its queue (queue 0 of d.qfi unless given), memory
// properties, allocator, transfer objects and pipeline cache. On error
// everything setup created is released (and the logical device destroyed
// when the runtime owns it).
func (d *Device) setup(vdev vk.Device, queue vk.Queue, caps Caps) error {
	d.dev = vdev
	if queue == nil {
		vk.GetDeviceQueue(d.dev, d.qfi, 0, &queue)
	}
	d.queue = queue
	var inst vk.Instance
	if d.inst != nil {
		inst = d.inst.inst
	}
	if err := d.initCalls(inst); err != nil {
		d.Close()
		return err
	}
	var mp vk.PhysicalDeviceMemoryProperties
	vk.GetPhysicalDeviceMemoryProperties(d.info.physical, &mp)
	mp.Deref()
	d.memProps = mp
	d.caps = caps

	d.maxAlloc = d.info.MaxMemoryAllocationSize
	if d.opts.MaxAlloc > 0 {
		d.maxAlloc = d.opts.MaxAlloc
	}
	bs := d.opts.BlockSize
	if bs == 0 {
		bs = 256 << 20
	}
	if d.maxAlloc > 0 && bs > d.maxAlloc {
		bs = d.maxAlloc
	}
	align := d.info.MinStorageBufferAlign
	if align < 256 {
		align = 256
	}
	d.alloc = allocator{d: d, blockSize: bs, align: align}

	if err := d.initTransfer(); err != nil {
		d.Close()
		return err
	}
	d.pipes.init()
	return nil
}

// Info describes the physical device.
func (d *Device) Info() *DeviceInfo { return &d.info }

// Caps are the enabled capabilities that kernels choose variants from.
func (d *Device) Caps() Caps { return d.caps }

// deviceValue is one entry of Device.Value, built once.
type deviceValue struct {
	once sync.Once
	v    any
	err  error
}

// Value returns the value the device holds under key, calling build to make
// it on the first request for key; every later request, also a concurrent
// one, gets the same value and error. It lets packages above the runtime
// keep choices made once per device (the kernels' variant tables) without
// package-level state. key must be comparable; use a value of an unexported
// type so that packages cannot collide.
func (d *Device) Value(key any, build func() (any, error)) (any, error) {
	d.valMu.Lock()
	e := d.values[key]
	if e == nil {
		if d.values == nil {
			d.values = map[any]*deviceValue{}
		}
		e = &deviceValue{}
		d.values[key] = e
	}
	d.valMu.Unlock()
	e.once.Do(func() { e.v, e.err = build() })
	return e.v, e.err
}

// Tuning returns the tuning overrides the device was opened with (the zero
// value unless a tuning run set them); kernels read them when they choose
// tiles and kernels.
func (d *Device) Tuning() Tuning { return d.opts.Tuning }

// MemoryInUse is the device memory currently held in blocks, in bytes.
func (d *Device) MemoryInUse() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alloc.allocated
}

// MemoryBudget is the size of the device-local heap in bytes.
func (d *Device) MemoryBudget() uint64 { return d.info.DeviceLocalBytes() }

func (d *Device) initTransfer() error {
	pool, cmd, err := d.newCommandBuffer()
	if pool != nil {
		d.cmdPool = pool
	}
	if err != nil {
		return err
	}
	d.xferCmd = cmd
	if d.xferFnc, err = d.newFence(); err != nil {
		return err
	}
	d.stageSz = 32 << 20
	if d.opts.StagingSize > 0 {
		d.stageSz = d.opts.StagingSize
	}
	if d.maxAlloc > 0 && d.stageSz > d.maxAlloc {
		d.stageSz = d.maxAlloc
	}
	buf, mem, _, err := d.newBuffer(d.stageSz, []vk.MemoryPropertyFlagBits{
		vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit | vk.MemoryPropertyHostCachedBit,
		vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit,
	}, "staging buffer")
	if err != nil {
		return err
	}
	d.stageBuf, d.stageMem = buf, mem
	var p unsafe.Pointer
	if err := check("vkMapMemory", vk.MapMemory(d.dev, mem, 0, vk.DeviceSize(d.stageSz), 0, &p)); err != nil {
		return err
	}
	d.stagePtr = p
	return nil
}

// newCommandBuffer makes a command pool (resettable buffers) with one
// primary command buffer. On error the pool, if made, is returned for the
// caller to destroy.
func (d *Device) newCommandBuffer() (vk.CommandPool, vk.CommandBuffer, error) {
	cpi := vk.CommandPoolCreateInfo{
		SType:            vk.StructureTypeCommandPoolCreateInfo,
		Flags:            vk.CommandPoolCreateFlags(vk.CommandPoolCreateResetCommandBufferBit),
		QueueFamilyIndex: d.qfi,
	}
	var pool vk.CommandPool
	if err := check("vkCreateCommandPool", vk.CreateCommandPool(d.dev, &cpi, nil, &pool)); err != nil {
		return nil, nil, err
	}
	cai := vk.CommandBufferAllocateInfo{
		SType:              vk.StructureTypeCommandBufferAllocateInfo,
		CommandPool:        pool,
		Level:              vk.CommandBufferLevelPrimary,
		CommandBufferCount: 1,
	}
	cmds := make([]vk.CommandBuffer, 1)
	if err := check("vkAllocateCommandBuffers", vk.AllocateCommandBuffers(d.dev, &cai, cmds)); err != nil {
		return pool, nil, err
	}
	return pool, cmds[0], nil
}

func (d *Device) newFence() (vk.Fence, error) {
	fci := vk.FenceCreateInfo{SType: vk.StructureTypeFenceCreateInfo}
	var f vk.Fence
	if err := check("vkCreateFence", vk.CreateFence(d.dev, &fci, nil, &f)); err != nil {
		return nil, err
	}
	return f, nil
}

// submitWait submits one command buffer and waits for it with a bounded
// wait. The caller holds d.mu.
// submit queues cmd, to signal fence when done. The caller holds d.mu.
func (d *Device) submit(cmd vk.CommandBuffer, fence vk.Fence, what string) error {
	if d.lost.Load() {
		return fmt.Errorf("%s: %w (earlier failure; close and reopen the device)", what, ErrDeviceLost)
	}
	if d.qlock != nil {
		d.qlock.Lock()
	}
	r := d.queueSubmit(cmd, fence)
	if d.qlock != nil {
		d.qlock.Unlock()
	}
	d.ctr.submits.Add(1)
	if err := check("vkQueueSubmit", r); err != nil {
		if err.(*VkError).Result == vk.ErrorDeviceLost {
			d.lost.Store(true)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// submitWait submits cmd and waits for it. The caller holds d.mu.
func (d *Device) submitWait(cmd vk.CommandBuffer, fence vk.Fence, what string) error {
	if err := d.submit(cmd, fence, what); err != nil {
		return err
	}
	return d.waitFences(context.Background(), []vk.Fence{fence}, what)
}

// waitPoll is how often a wait for the GPU checks its context.
const waitPoll = 10 * time.Millisecond

// waitFences waits for every fence (one host wait) and resets them. The wait
// is bounded by SubmitTimeout (the device is then marked lost) and returns
// ctx.Err(), leaving the fences as they are, when ctx is done first.
func (d *Device) waitFences(ctx context.Context, fences []vk.Fence, what string) error {
	if d.inst != nil && d.inst.val != nil {
		defer d.inst.val.poll() // keep the validation ring from overflowing
	}
	start := time.Now()
	defer func() {
		d.ctr.waits.Add(1)
		d.ctr.waitNanos.Add(int64(time.Since(start)))
	}()
	deadline := start.Add(d.opts.SubmitTimeout)
	slice := uint64(100 * time.Millisecond)
	if ctx.Done() != nil {
		slice = uint64(waitPoll)
	}
	for {
		// Wait in slices so that a hang is reported, never waited on
		// forever, and a cancelled context is noticed.
		r := vk.WaitForFences(d.dev, uint32(len(fences)), fences, vk.True, slice)
		switch r {
		case vk.Success:
			return check("vkResetFences", vk.ResetFences(d.dev, uint32(len(fences)), fences))
		case vk.Timeout:
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if time.Now().After(deadline) {
				d.lost.Store(true)
				return fmt.Errorf("%s: %w after %v (SHAREPREFILL_VK_TIMEOUT raises the limit); the device is unusable now", what, ErrTimeout, d.opts.SubmitTimeout)
			}
		default:
			if r == vk.ErrorDeviceLost {
				d.lost.Store(true)
			}
			return fmt.Errorf("%s: %w", what, check("vkWaitForFences", r))
		}
	}
}

// isLost reports whether a submission timed out or the device was lost.
func (d *Device) isLost() bool { return d.lost.Load() }

// deferIfLost postpones f to Close when the device is lost (a timed-out
// submission may still be running) and reports whether it did.
func (d *Device) deferIfLost(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.lost.Load() || d.closed {
		return false
	}
	d.deferred = append(d.deferred, f)
	return true
}

func beginOneShot(cmd vk.CommandBuffer) error {
	if err := check("vkResetCommandBuffer", vk.ResetCommandBuffer(cmd, 0)); err != nil {
		return err
	}
	bi := vk.CommandBufferBeginInfo{
		SType: vk.StructureTypeCommandBufferBeginInfo,
		Flags: vk.CommandBufferUsageFlags(vk.CommandBufferUsageOneTimeSubmitBit),
	}
	return check("vkBeginCommandBuffer", vk.BeginCommandBuffer(cmd, &bi))
}

// upload copies data to buf at off through the staging buffer, in chunks.
func (d *Device) upload(buf vk.Buffer, off uint64, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("upload: device is closed")
	}
	for len(data) > 0 {
		n := uint64(len(data))
		if n > d.stageSz {
			n = d.stageSz
		}
		copy(unsafe.Slice((*byte)(d.stagePtr), n), data[:n])
		if err := beginOneShot(d.xferCmd); err != nil {
			return err
		}
		d.cmdCopy(d.xferCmd, d.stageBuf, buf, 0, off, n)
		if err := check("vkEndCommandBuffer", vk.EndCommandBuffer(d.xferCmd)); err != nil {
			return err
		}
		if err := d.submitWait(d.xferCmd, d.xferFnc, "upload"); err != nil {
			return err
		}
		data = data[n:]
		off += n
	}
	return nil
}

// download copies buf[off:off+len(out)] to out through the staging buffer.
func (d *Device) download(buf vk.Buffer, off uint64, out []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("download: device is closed")
	}
	for len(out) > 0 {
		n := uint64(len(out))
		if n > d.stageSz {
			n = d.stageSz
		}
		if err := beginOneShot(d.xferCmd); err != nil {
			return err
		}
		d.cmdCopy(d.xferCmd, buf, d.stageBuf, off, 0, n)
		if err := check("vkEndCommandBuffer", vk.EndCommandBuffer(d.xferCmd)); err != nil {
			return err
		}
		if err := d.submitWait(d.xferCmd, d.xferFnc, "download"); err != nil {
			return err
		}
		copy(out[:n], unsafe.Slice((*byte)(d.stagePtr), n))
		out = out[n:]
		off += n
	}
	return nil
}

// Close waits for the device to go idle and releases everything it owns,
// including all tensors and pipelines. It is safe to call twice.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.dev != nil {
		if d.ownDev {
			vk.DeviceWaitIdle(d.dev)
		} // an adopted device: every submission of ours was waited for
		if len(d.deferred) > 0 {
			if !d.ownDev { // except one that timed out
				if d.qlock != nil {
					d.qlock.Lock()
				}
				vk.QueueWaitIdle(d.queue)
				if d.qlock != nil {
					d.qlock.Unlock()
				}
			}
			d.lost.Store(false) // idle now: the deferred releases may destroy
			for _, f := range d.deferred {
				f()
			}
			d.deferred = nil
		}
		d.pipes.destroy(d)
		for h := range d.hosts {
			h.release()
		}
		d.hosts = nil
		d.alloc.destroy()
		if d.stagePtr != nil {
			vk.UnmapMemory(d.dev, d.stageMem)
		}
		if d.stageBuf != nil {
			vk.DestroyBuffer(d.dev, d.stageBuf, nil)
			vk.FreeMemory(d.dev, d.stageMem, nil)
		}
		if d.xferFnc != nil {
			vk.DestroyFence(d.dev, d.xferFnc, nil)
		}
		if d.cmdPool != nil {
			vk.DestroyCommandPool(d.dev, d.cmdPool, nil)
		}
		d.freeCalls()
		if d.ownDev {
			vk.DestroyDevice(d.dev, nil)
		}
		d.dev = nil
	}
	if d.ownInst && d.inst != nil {
		d.inst.Close()
	}
}

// counters are the device's submission statistics (Device.Counters).
type counters struct {
	submits, waits, allocs       atomic.Uint64
	dispatches, copies, barriers atomic.Uint64
	cgoCalls, calls, setWrites   atomic.Uint64
	waitNanos                    atomic.Int64
}

// Counters are cumulative submission statistics of a device: every
// vkQueueSubmit (command batches, uploads and downloads alike) and every
// time the host blocked on the GPU. Take two snapshots and subtract them to
// count what a piece of work did.
type Counters struct {
	// Submits is the number of queue submissions.
	Submits uint64
	// Waits is the number of host waits for the GPU (Recorder.Submit and
	// Wait, a double buffer running full, each upload and download chunk).
	Waits uint64
	// WaitTime is the host time spent in those waits.
	WaitTime time.Duration
	// Allocs is the number of tensors and host buffers allocated.
	Allocs uint64
	// Dispatches, Copies and Barriers count what recorders recorded on the
	// host: dispatches (direct and indirect), buffer copies (device and host
	// copies alike) and pipeline barriers (those the hazard tracking
	// inserts, the one that begins each batch after the first, and the host
	// barrier after a copy to the host). A Replay counts them when it
	// records, not when it is submitted again.
	Dispatches, Copies, Barriers uint64
	// RecordCalls counts the calls from Go into the Vulkan driver that
	// recorders made to record (each a cgo call: beginning and ending a
	// batch, a barrier, a copy, a timestamp; one per dispatch), and
	// VulkanCalls the Vulkan functions those called (a dispatch: its
	// descriptor set's allocation and write unless cached, the barrier
	// before it, binding the pipeline unless bound, binding the set, the
	// push constants, vkCmdDispatch). SetWrites counts the descriptor sets
	// allocated and written (one per dispatch without Recorder's cache).
	RecordCalls, VulkanCalls, SetWrites uint64
}

// Sub returns c − o, the counts between two snapshots.
func (c Counters) Sub(o Counters) Counters {
	return Counters{Submits: c.Submits - o.Submits, Waits: c.Waits - o.Waits, WaitTime: c.WaitTime - o.WaitTime, Allocs: c.Allocs - o.Allocs,
		Dispatches: c.Dispatches - o.Dispatches, Copies: c.Copies - o.Copies, Barriers: c.Barriers - o.Barriers,
		RecordCalls: c.RecordCalls - o.RecordCalls, VulkanCalls: c.VulkanCalls - o.VulkanCalls, SetWrites: c.SetWrites - o.SetWrites}
}

// Counters returns a snapshot of the device's submission statistics. It is
// safe to call concurrently with any other method.
func (d *Device) Counters() Counters {
	return Counters{Submits: d.ctr.submits.Load(), Waits: d.ctr.waits.Load(), WaitTime: time.Duration(d.ctr.waitNanos.Load()), Allocs: d.ctr.allocs.Load(),
		Dispatches: d.ctr.dispatches.Load(), Copies: d.ctr.copies.Load(), Barriers: d.ctr.barriers.Load(),
		RecordCalls: d.ctr.cgoCalls.Load(), VulkanCalls: d.ctr.calls.Load(), SetWrites: d.ctr.setWrites.Load()}
}
