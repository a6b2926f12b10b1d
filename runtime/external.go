package runtime

import (
	"fmt"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// ExternalVulkan holds Vulkan objects an application created and owns: an
// application that already renders with Vulkan hands them to Adopt so the
// runtime computes on the same device (and can share buffers and
// synchronise with the application's own work). The handles are the raw
// dispatchable handles (VkInstance, VkPhysicalDevice, VkDevice, VkQueue as
// pointers, e.g. unsafe.Pointer(vkInstance) with vulkan-go).
//
// The device must have been created with storageBuffer16BitAccess enabled
// (and VK_KHR_16bit_storage before Vulkan 1.1). Features lists what else
// the application enabled; kernels use only what is listed there and the
// physical device supports. CreateVulkan creates a suitable instance and
// device (with extra extensions, e.g. for presenting) and fills Features.
type ExternalVulkan struct {
	Instance       unsafe.Pointer // VkInstance
	PhysicalDevice unsafe.Pointer // VkPhysicalDevice
	Device         unsafe.Pointer // VkDevice
	Queue          unsafe.Pointer // VkQueue; must support compute
	QueueFamily    uint32         // the queue's family index

	// Features the application enabled on Device.
	Features ExternalFeatures
	// QueueLock, if set, is held around every vkQueueSubmit of the runtime.
	// Vulkan requires submissions to one queue to be externally
	// synchronised: set it when the application submits to Queue from
	// other goroutines (and take it there too).
	QueueLock sync.Locker
	// Options are the runtime's options for the adopted device
	// (SubmitTimeout, BlockSize, MaxAlloc, StagingSize, Serialize, Logf and
	// the Disable* switches; Device and Validation do not apply).
	Options Options
}

// ExternalFeatures are optional device features an application enabled.
type ExternalFeatures struct {
	Float16             bool // shaderFloat16 (VkPhysicalDeviceShaderFloat16Int8Features)
	Int8                bool // shaderInt8
	SubgroupSizeControl bool // subgroupSizeControl and computeFullSubgroups
	CoopMat             bool // VK_KHR_cooperative_matrix: cooperativeMatrix
	CoopMat2            bool // VK_NV_cooperative_matrix2 (all of its features)
}

// Adopt wraps an application's Vulkan device. The runtime creates only its
// own objects on it (memory blocks, buffers, a command pool, fences,
// pipelines, descriptor pools) and Close destroys only those: the
// application's instance, device and queue stay alive and are the
// application's to destroy, after closing the runtime Device. Every
// runtime submission is waited for before the call that made it returns,
// so Close does not wait for the whole device.
func Adopt(ext ExternalVulkan) (*Device, error) {
	if ext.Instance == nil || ext.PhysicalDevice == nil || ext.Device == nil || ext.Queue == nil {
		return nil, fmt.Errorf("runtime.Adopt: Instance, PhysicalDevice, Device and Queue must all be set")
	}
	opts := ext.Options
	opts.Device, opts.Validation = "", false
	if err := opts.fromEnv(); err != nil {
		return nil, err
	}
	if err := loadVulkan(); err != nil {
		return nil, err
	}
	inst := vk.Instance(ext.Instance)
	// vulkan-go keeps one table of instance-level entry points; take them
	// from the application's instance (the loader's trampolines dispatch on
	// the handles, so this also serves other instances).
	if err := vk.InitInstance(inst); err != nil {
		return nil, fmt.Errorf("runtime.Adopt: loading instance functions: %w", err)
	}
	pd := vk.PhysicalDevice(ext.PhysicalDevice)
	info := describe(inst, pd, physicalIndex(inst, pd))
	if int(ext.QueueFamily) >= len(queueFamilies(inst, pd)) {
		return nil, fmt.Errorf("runtime.Adopt: device %q has no queue family %d", info.Name, ext.QueueFamily)
	}
	if !info.Storage16Bit {
		return nil, fmt.Errorf("runtime.Adopt: device %q: %w: storageBuffer16BitAccess (16-bit storage buffers) is required for f16 tensors", info.Name, ErrMissingFeature)
	}
	if !queueFamilyComputes(inst, pd, ext.QueueFamily) {
		return nil, fmt.Errorf("runtime.Adopt: queue family %d of %q does not support compute", ext.QueueFamily, info.Name)
	}
	info.ComputeQueueFamily = int(ext.QueueFamily)
	info.TimestampValidBits = queueFamilies(inst, pd)[ext.QueueFamily].TimestampValidBits
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	f := ext.Features
	caps := Caps{
		Float16:             f.Float16 && info.Float16 && !opts.DisableF16,
		Storage16Bit:        true,
		Int8:                f.Int8 && info.Int8,
		CoopMat:             f.CoopMat && info.CoopMat && info.HasCoopMatF16() && !opts.DisableCoopMat,
		CoopMat2:            f.CoopMat2 && info.CoopMat2 && !opts.DisableCoopMat2,
		CoopMat2Conversions: f.CoopMat2 && info.CoopMat2Conversions && !opts.DisableCoopMat2,
		SubgroupSizeControl: f.SubgroupSizeControl && info.SubgroupSizeControl && !opts.DisableSubgroupSizeControl,
		SubgroupSize:        info.SubgroupSize,
		SubgroupArithmetic:  info.SubgroupArithmetic,
		MaxSharedMemory:     info.MaxSharedMemory,
	}
	d := &Device{
		inst:  &Instance{inst: inst}, // not owned: never closed by the runtime
		info:  info,
		opts:  opts,
		qfi:   ext.QueueFamily,
		qlock: ext.QueueLock,
	}
	if err := d.setup(vk.Device(ext.Device), vk.Queue(ext.Queue), caps); err != nil {
		return nil, fmt.Errorf("runtime.Adopt: %w", err)
	}
	logf("device (adopted): %s", info.Summary())
	return d, nil
}

// Adopted reports whether the device wraps an application's VkDevice
// (Adopt) rather than one the runtime created.
func (d *Device) Adopted() bool { return !d.ownDev }

// Handles returns the device's raw Vulkan handles and enabled features, for
// an application that records its own Vulkan work on the runtime's device
// (or adopts it into a second runtime Device). The handles stay owned by
// whoever created them.
func (d *Device) Handles() ExternalVulkan {
	var inst unsafe.Pointer
	if d.inst != nil {
		inst = unsafe.Pointer(d.inst.inst)
	}
	return ExternalVulkan{
		Instance:       inst,
		PhysicalDevice: unsafe.Pointer(d.info.physical),
		Device:         unsafe.Pointer(d.dev),
		Queue:          unsafe.Pointer(d.queue),
		QueueFamily:    d.qfi,
		Features: ExternalFeatures{
			Float16:             d.caps.Float16,
			Int8:                d.caps.Int8,
			SubgroupSizeControl: d.caps.SubgroupSizeControl,
			CoopMat:             d.caps.CoopMat,
			CoopMat2:            d.caps.CoopMat2,
		},
		QueueLock: d.qlock,
		Options:   d.opts,
	}
}

// VulkanOptions configures CreateVulkan.
type VulkanOptions struct {
	// Options choose the device and the features (Device, Disable*, Logf).
	Options Options
	// InstanceExtensions are enabled on the instance (e.g. the surface
	// extensions a windowing library requires).
	InstanceExtensions []string
	// DeviceExtensions are enabled on the device besides the runtime's
	// (e.g. VK_KHR_swapchain).
	DeviceExtensions []string
	// ApplicationName names the application to the driver (default
	// "shareprefill").
	ApplicationName string
}

// CreateVulkan creates a Vulkan instance and a logical device with the
// features the runtime's kernels use plus the requested extensions, for an
// application that wants to render on the device it computes with: the
// caller owns the result (pass it to Adopt, use the handles for its own
// work, and destroy it with DestroyVulkan after closing every Device
// adopted from it). The queue is queue 0 of the device's compute family.
func CreateVulkan(vo VulkanOptions) (ExternalVulkan, error) {
	opts := vo.Options
	if err := opts.fromEnv(); err != nil {
		return ExternalVulkan{}, err
	}
	if err := loadVulkan(); err != nil {
		return ExternalVulkan{}, err
	}
	name := vo.ApplicationName
	if name == "" {
		name = "shareprefill"
	}
	exts := make([]string, len(vo.InstanceExtensions))
	for i, e := range vo.InstanceExtensions {
		exts[i] = e + "\x00"
	}
	inst, r := createInstance(name, vk.MakeVersion(1, 3, 0), nil, exts, nil)
	if err := check("vkCreateInstance", r); err != nil {
		return ExternalVulkan{}, fmt.Errorf("%w: %v (instance extensions %v); %s", ErrNoVulkan, err, vo.InstanceExtensions, InstallHint)
	}
	fail := func(err error) (ExternalVulkan, error) {
		vk.DestroyInstance(inst, nil)
		return ExternalVulkan{}, err
	}
	if err := vk.InitInstance(inst); err != nil {
		return fail(fmt.Errorf("loading instance functions: %w", err))
	}
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(inst, &n, nil)); err != nil {
		return fail(err)
	}
	pds := make([]vk.PhysicalDevice, n)
	if n > 0 {
		if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(inst, &n, pds)); err != nil {
			return fail(err)
		}
	}
	var infos []DeviceInfo
	for i, pd := range pds[:n] {
		infos = append(infos, describe(inst, pd, i))
	}
	idx, err := ChooseDevice(infos, opts.Device)
	if err != nil {
		return fail(err)
	}
	info := infos[idx]
	if !info.Storage16Bit {
		return fail(fmt.Errorf("device %q: %w: storageBuffer16BitAccess (16-bit storage buffers) is required for f16 tensors", info.Name, ErrMissingFeature))
	}
	for _, e := range vo.DeviceExtensions {
		if !info.Extensions[e] {
			return fail(fmt.Errorf("device %q: %w: device extension %s is not supported", info.Name, ErrMissingFeature, e))
		}
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	es := chooseEnables(&info, opts, logf)
	vdev, err := createVkDevice(inst, &info, es, vo.DeviceExtensions)
	if err != nil {
		return fail(err)
	}
	var q vk.Queue
	vk.GetDeviceQueue(vdev, uint32(info.ComputeQueueFamily), 0, &q)
	c := es.caps(&info)
	return ExternalVulkan{
		Instance:       unsafe.Pointer(inst),
		PhysicalDevice: unsafe.Pointer(info.physical),
		Device:         unsafe.Pointer(vdev),
		Queue:          unsafe.Pointer(q),
		QueueFamily:    uint32(info.ComputeQueueFamily),
		Features: ExternalFeatures{
			Float16:             c.Float16,
			Int8:                c.Int8 && es.en.shader_int8 != 0,
			SubgroupSizeControl: c.SubgroupSizeControl,
			CoopMat:             c.CoopMat,
			CoopMat2:            c.CoopMat2,
		},
		Options: vo.Options,
	}, nil
}

// DestroyVulkan destroys the device and instance CreateVulkan made (after
// waiting for the device to go idle). Devices adopted from them must be
// closed first.
func DestroyVulkan(ext ExternalVulkan) {
	if ext.Device != nil {
		vk.DeviceWaitIdle(vk.Device(ext.Device))
		vk.DestroyDevice(vk.Device(ext.Device), nil)
	}
	if ext.Instance != nil {
		vk.DestroyInstance(vk.Instance(ext.Instance), nil)
	}
}

// physicalIndex is pd's index among inst's physical devices (0 when not
// found).
func physicalIndex(inst vk.Instance, pd vk.PhysicalDevice) int {
	var n uint32
	if vk.EnumeratePhysicalDevices(inst, &n, nil) != vk.Success || n == 0 {
		return 0
	}
	pds := make([]vk.PhysicalDevice, n)
	if vk.EnumeratePhysicalDevices(inst, &n, pds) != vk.Success {
		return 0
	}
	for i, p := range pds[:n] {
		if p == pd {
			return i
		}
	}
	return 0
}

func queueFamilyComputes(inst vk.Instance, pd vk.PhysicalDevice, family uint32) bool {
	qs := queueFamilies(inst, pd)
	return int(family) < len(qs) && qs[family].Flags&vk.QueueFlags(vk.QueueComputeBit) != 0
}
