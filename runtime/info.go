package runtime

// #include "shim.h"
import "C"

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// DeviceType is the kind of a physical device.
type DeviceType int

// Device kinds, in Vulkan's numbering.
const (
	TypeOther      DeviceType = 0
	TypeIntegrated DeviceType = 1
	TypeDiscrete   DeviceType = 2
	TypeVirtual    DeviceType = 3
	TypeCPU        DeviceType = 4
)

func (t DeviceType) String() string {
	switch t {
	case TypeIntegrated:
		return "integrated"
	case TypeDiscrete:
		return "discrete"
	case TypeVirtual:
		return "virtual"
	case TypeCPU:
		return "cpu"
	}
	return "other"
}

// preference orders device types for the default choice: discrete >
// integrated > virtual > CPU > other.
func (t DeviceType) preference() int {
	switch t {
	case TypeDiscrete:
		return 0
	case TypeIntegrated:
		return 1
	case TypeVirtual:
		return 2
	case TypeCPU:
		return 3
	}
	return 4
}

// MemoryHeap is one memory heap of a device.
type MemoryHeap struct {
	Size        uint64
	DeviceLocal bool
}

// CoopMatShape is one cooperative-matrix configuration a device supports
// (VK_KHR_cooperative_matrix): C[M×N] += A[M×K]·B[K×N].
type CoopMatShape struct {
	M, N, K            uint32
	A, B, C, Result    string // component types: f16, f32, bf16, s8, u8, s32, ...
	Scope              string // subgroup, workgroup, ...
	SaturatingAccumule bool
}

// CoopMat2Flex is one flexible-dimension entry of VK_NV_cooperative_matrix2:
// M, N, K of the embedded shape are granularities (a matrix's rows,
// columns and inner dimension must be multiples of them), for workgroups
// of Invocations invocations when Scope is "workgroup".
type CoopMat2Flex struct {
	CoopMatShape
	Invocations uint32
}

// Fits reports whether an M×K · K×N product of the entry's types is
// allowed at granularity.
func (f CoopMat2Flex) Fits(m, n, k int) bool {
	return f.M > 0 && f.N > 0 && f.K > 0 && m > 0 && n > 0 && k > 0 &&
		m%int(f.M) == 0 && n%int(f.N) == 0 && k%int(f.K) == 0
}

func (s CoopMatShape) String() string {
	return fmt.Sprintf("%dx%dx%d %s*%s+%s->%s", s.M, s.N, s.K, s.A, s.B, s.C, s.Result)
}

// DeviceInfo describes a physical device and what it can do.
type DeviceInfo struct {
	Index         int
	Name          string
	Vendor        string
	VendorID      uint32
	DeviceID      uint32
	Type          DeviceType
	APIVersion    string
	DriverVersion string
	DriverName    string
	DriverInfo    string

	Heaps []MemoryHeap

	SubgroupSize         uint32
	MinSubgroupSize      uint32
	MaxSubgroupSize      uint32
	SubgroupSizeControl  bool // pipelines may require a subgroup size (compute stage)
	ComputeFullSubgroups bool
	SubgroupArithmetic   bool
	SubgroupShuffle      bool

	MaxSharedMemory          uint32
	MaxWorkgroupInvocations  uint32
	MaxWorkgroupSize         [3]uint32
	MaxWorkgroupCount        [3]uint32
	MaxPushConstants         uint32
	MaxStorageBufferRange    uint64
	MaxMemoryAllocationSize  uint64
	MaxBufferSize            uint64
	MinStorageBufferAlign    uint64
	TimestampPeriod          float32 // ns per tick
	TimestampValidBits       uint32  // of the compute queue; 0 = no timestamps
	ComputeQueueFamily       int
	Storage16Bit             bool
	Float16                  bool
	Int8                     bool
	Storage8Bit              bool
	Int16, Int64, Float64    bool
	CoopMat                  bool
	CoopMatShapes            []CoopMatShape
	CoopMat2                 bool
	CoopMat2Conversions      bool           // VK_NV_cooperative_matrix2 cooperativeMatrixConversions (accumulator -> A/B in registers)
	CoopMat2Flex             []CoopMat2Flex // VK_NV_cooperative_matrix2 flexible dimensions: granularities per workgroup size (empty without it)
	VulkanMemoryModel        bool
	Extensions               map[string]bool
	apiVersionRaw            uint32
	extFlags                 uint32
	caps                     C.sp_caps
	physical                 vk.PhysicalDevice
	hasSubgroupSizeControlEx bool
}

// DeviceLocalBytes is the size of the largest device-local heap.
func (d *DeviceInfo) DeviceLocalBytes() uint64 {
	var best uint64
	for _, h := range d.Heaps {
		if h.DeviceLocal && h.Size > best {
			best = h.Size
		}
	}
	return best
}

// HasCoopMatF16 reports whether a subgroup-scope 16×16×16 f16×f16→f32
// cooperative matrix is supported.
func (d *DeviceInfo) HasCoopMatF16() bool { return d.coopMatF16(true) }

// coopMatF16 reports whether a subgroup-scope f16×f16→f32 shape is listed:
// 16×16×16 when only16, else any (Options.CoopMatUnlisted).
func (d *DeviceInfo) coopMatF16(only16 bool) bool {
	for _, s := range d.CoopMatShapes {
		if (!only16 || s.M == 16 && s.N == 16 && s.K == 16) && s.A == "f16" && s.B == "f16" && s.C == "f32" && s.Scope == "subgroup" {
			return true
		}
	}
	return false
}

func vendorName(id uint32) string {
	switch id {
	case 0x10DE:
		return "NVIDIA"
	case 0x1002, 0x1022:
		return "AMD"
	case 0x8086:
		return "Intel"
	case 0x13B5:
		return "ARM"
	case 0x5143:
		return "Qualcomm"
	case 0x106B:
		return "Apple"
	case 0x10005:
		return "Mesa"
	case 0x1010:
		return "ImgTec"
	}
	return fmt.Sprintf("0x%04x", id)
}

func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>22, (v>>12)&0x3ff, v&0xfff)
}

func driverVersionString(vendor, v uint32) string {
	if vendor == 0x10DE { // NVIDIA packs 10.8.8.6
		return fmt.Sprintf("%d.%d.%d.%d", v>>22, (v>>14)&0xff, (v>>6)&0xff, v&0x3f)
	}
	return versionString(v)
}

func componentName(t int32) string {
	switch t {
	case 0:
		return "f16"
	case 1:
		return "f32"
	case 2:
		return "f64"
	case 3:
		return "s8"
	case 4:
		return "s16"
	case 5:
		return "s32"
	case 6:
		return "s64"
	case 7:
		return "u8"
	case 8:
		return "u16"
	case 9:
		return "u32"
	case 10:
		return "u64"
	case 1000141000:
		return "bf16"
	case 1000491002:
		return "e4m3"
	case 1000491003:
		return "e5m2"
	}
	return fmt.Sprintf("type%d", t)
}

func scopeName(s int32) string {
	switch s {
	case 1:
		return "device"
	case 2:
		return "workgroup"
	case 3:
		return "subgroup"
	case 5:
		return "queuefamily"
	}
	return fmt.Sprintf("scope%d", s)
}

const (
	extSubgroupSizeControl = "VK_EXT_subgroup_size_control"
	extCoopMat             = "VK_KHR_cooperative_matrix"
	extCoopMat2            = "VK_NV_cooperative_matrix2"
	ext16BitStorage        = "VK_KHR_16bit_storage"
	extFloat16Int8         = "VK_KHR_shader_float16_int8"
	ext8BitStorage         = "VK_KHR_8bit_storage"
	extMaintenance4        = "VK_KHR_maintenance4"
	extDriverProperties    = "VK_KHR_driver_properties"
	extMemoryModel         = "VK_KHR_vulkan_memory_model"
	extPipelineExec        = "VK_KHR_pipeline_executable_properties"
	extStorageBufferClass  = "VK_KHR_storage_buffer_storage_class"
)

// describe fills a DeviceInfo for one physical device.
func describe(inst vk.Instance, pd vk.PhysicalDevice, index int) DeviceInfo {
	var props vk.PhysicalDeviceProperties
	vk.GetPhysicalDeviceProperties(pd, &props)
	props.Deref()
	props.Limits.Deref()
	lim := props.Limits

	info := DeviceInfo{
		Index:                 index,
		Name:                  vk.ToString(props.DeviceName[:]),
		VendorID:              props.VendorID,
		DeviceID:              props.DeviceID,
		Type:                  DeviceType(props.DeviceType),
		APIVersion:            versionString(props.ApiVersion),
		DriverVersion:         driverVersionString(props.VendorID, props.DriverVersion),
		MaxSharedMemory:       lim.MaxComputeSharedMemorySize,
		MaxPushConstants:      lim.MaxPushConstantsSize,
		MaxStorageBufferRange: uint64(lim.MaxStorageBufferRange),
		MinStorageBufferAlign: uint64(lim.MinStorageBufferOffsetAlignment),
		TimestampPeriod:       lim.TimestampPeriod,
		physical:              pd,
		apiVersionRaw:         props.ApiVersion,
		Extensions:            map[string]bool{},
		ComputeQueueFamily:    -1,
	}
	info.MaxWorkgroupInvocations = lim.MaxComputeWorkGroupInvocations
	info.MaxWorkgroupSize = lim.MaxComputeWorkGroupSize
	info.MaxWorkgroupCount = lim.MaxComputeWorkGroupCount
	info.Vendor = vendorName(props.VendorID)

	var mp vk.PhysicalDeviceMemoryProperties
	vk.GetPhysicalDeviceMemoryProperties(pd, &mp)
	mp.Deref()
	for i := uint32(0); i < mp.MemoryHeapCount; i++ {
		h := mp.MemoryHeaps[i]
		h.Deref()
		info.Heaps = append(info.Heaps, MemoryHeap{Size: uint64(h.Size), DeviceLocal: h.Flags&vk.MemoryHeapFlags(vk.MemoryHeapDeviceLocalBit) != 0})
	}

	// Compute queue family: prefer one with compute and (for timestamps) valid bits.
	for i, q := range queueFamilies(inst, pd) {
		if q.Flags&vk.QueueFlags(vk.QueueComputeBit) != 0 {
			info.ComputeQueueFamily = i
			info.TimestampValidBits = q.TimestampValidBits
			break
		}
	}

	for _, e := range deviceExtensions(inst, pd) {
		info.Extensions[e] = true
	}

	api12 := props.ApiVersion >= vk.MakeVersion(1, 2, 0)
	api13 := props.ApiVersion >= vk.MakeVersion(1, 3, 0)
	var flags uint32
	if api13 || info.Extensions[extSubgroupSizeControl] {
		flags |= C.SP_EXT_SUBGROUP_SIZE_CONTROL
		info.hasSubgroupSizeControlEx = true
	}
	if info.Extensions[extCoopMat] {
		flags |= C.SP_EXT_COOPMAT_KHR
	}
	if info.Extensions[extCoopMat2] {
		flags |= C.SP_EXT_COOPMAT2_NV
	}
	if props.ApiVersion >= vk.MakeVersion(1, 1, 0) || info.Extensions[ext16BitStorage] {
		flags |= C.SP_EXT_16BIT_STORAGE
	}
	if api12 || info.Extensions[extFloat16Int8] {
		flags |= C.SP_EXT_FLOAT16_INT8
	}
	if api12 || info.Extensions[ext8BitStorage] {
		flags |= C.SP_EXT_8BIT_STORAGE
	}
	if api13 || info.Extensions[extMaintenance4] {
		flags |= C.SP_EXT_MAINTENANCE4
	}
	if api12 || info.Extensions[extDriverProperties] {
		flags |= C.SP_EXT_DRIVER_PROPERTIES
	}
	if api12 || info.Extensions[extMemoryModel] {
		flags |= C.SP_EXT_MEMORY_MODEL
	}
	if info.Extensions[extPipelineExec] {
		flags |= C.SP_EXT_PIPELINE_EXEC
	}
	info.extFlags = flags

	var caps C.sp_caps
	C.sp_query_caps(unsafe.Pointer(inst), unsafe.Pointer(pd), C.uint32_t(flags), &caps)
	info.caps = caps
	info.SubgroupSize = uint32(caps.subgroup_size)
	info.MinSubgroupSize = uint32(caps.min_subgroup_size)
	info.MaxSubgroupSize = uint32(caps.max_subgroup_size)
	const stageCompute = 0x20
	info.SubgroupSizeControl = caps.subgroup_size_control != 0 && uint32(caps.required_subgroup_size_stages)&stageCompute != 0
	info.ComputeFullSubgroups = caps.compute_full_subgroups != 0
	const opArith, opShuffle = 0x8, 0x10
	computeOK := uint32(caps.subgroup_stages)&stageCompute != 0
	info.SubgroupArithmetic = computeOK && uint32(caps.subgroup_ops)&opArith != 0
	info.SubgroupShuffle = computeOK && uint32(caps.subgroup_ops)&opShuffle != 0
	info.Storage16Bit = caps.storage_buffer_16bit != 0
	info.Float16 = caps.shader_float16 != 0 && info.Storage16Bit
	info.Int8 = caps.shader_int8 != 0
	info.Storage8Bit = caps.storage_buffer_8bit != 0
	info.Int16 = caps.shader_int16 != 0
	info.Int64 = caps.shader_int64 != 0
	info.Float64 = caps.shader_float64 != 0
	info.VulkanMemoryModel = caps.vulkan_memory_model != 0
	info.MaxMemoryAllocationSize = uint64(caps.max_memory_allocation_size)
	info.MaxBufferSize = uint64(caps.max_buffer_size)
	info.DriverName = C.GoString(&caps.driver_name[0])
	info.DriverInfo = C.GoString(&caps.driver_info[0])
	info.CoopMat = caps.coopmat != 0 && uint32(caps.coopmat_stages)&stageCompute != 0
	if info.CoopMat {
		for _, e := range coopMatList(inst, pd, false) {
			info.CoopMatShapes = append(info.CoopMatShapes, e.CoopMatShape)
		}
	}
	info.CoopMat2 = caps.coopmat2_workgroup_scope != 0 && caps.coopmat2_flexible_dims != 0 &&
		caps.coopmat2_reductions != 0 && caps.coopmat2_per_element != 0 &&
		caps.coopmat2_tensor_addressing != 0 && caps.coopmat2_block_loads != 0
	info.CoopMat2Conversions = info.CoopMat2 && caps.coopmat2_conversions != 0
	if info.CoopMat2 {
		info.CoopMat2Flex = coopMatList(inst, pd, true)
	}
	return info
}

// coopMatList reads the device's KHR cooperative-matrix shapes (flex false)
// or its VK_NV_cooperative_matrix2 flexible-dimension entries (flex true;
// M, N, K are granularities); nil when the query fails.
func coopMatList(inst vk.Instance, pd vk.PhysicalDevice, flex bool) []CoopMat2Flex {
	var buf [64]C.sp_coopmat
	var n C.uint32_t
	fl := C.int(0)
	if flex {
		fl = 1
	}
	if C.sp_coopmat_list(unsafe.Pointer(inst), unsafe.Pointer(pd), fl, &buf[0], C.uint32_t(len(buf)), &n) != 0 {
		return nil
	}
	var out []CoopMat2Flex
	for _, e := range buf[:n] {
		out = append(out, CoopMat2Flex{CoopMatShape: CoopMatShape{
			M: uint32(e.m), N: uint32(e.n), K: uint32(e.k),
			A: componentName(int32(e.a)), B: componentName(int32(e.b)),
			C: componentName(int32(e.c)), Result: componentName(int32(e.result)),
			Scope: scopeName(int32(e.scope)), SaturatingAccumule: e.saturating != 0,
		}, Invocations: uint32(e.invocations)})
	}
	return out
}

// Summary is a one-line description of the device.
func (d *DeviceInfo) Summary() string {
	var caps []string
	if d.Float16 {
		caps = append(caps, "fp16")
	}
	if d.CoopMat {
		caps = append(caps, "coopmat")
	}
	if d.CoopMat2 {
		caps = append(caps, "coopmat2")
	}
	if len(caps) == 0 {
		caps = append(caps, "scalar only")
	}
	return fmt.Sprintf("[%d] %s (%s, %s, Vulkan %s, driver %s %s, subgroup %d, shared %d KiB, %s)",
		d.Index, d.Name, d.Vendor, d.Type, d.APIVersion, d.DriverName, d.DriverVersion,
		d.SubgroupSize, d.MaxSharedMemory/1024, strings.Join(caps, "+"))
}

// ChooseDevice picks a device from infos. want is an index ("1") or a
// case-insensitive substring of the device name; empty means the default:
// discrete > integrated > virtual > CPU. A device that cannot compute is never
// chosen.
func ChooseDevice(infos []DeviceInfo, want string) (int, error) {
	if len(infos) == 0 {
		return -1, fmt.Errorf("%w: no Vulkan device found; %s", ErrNoVulkan, InstallHint)
	}
	list := func() string {
		var b strings.Builder
		for i := range infos {
			fmt.Fprintf(&b, "\n  %d: %s (%s)", infos[i].Index, infos[i].Name, infos[i].Type)
		}
		return b.String()
	}
	want = strings.TrimSpace(want)
	if want != "" {
		if idx, err := strconv.Atoi(want); err == nil {
			for i := range infos {
				if infos[i].Index == idx {
					if infos[i].ComputeQueueFamily < 0 {
						return -1, fmt.Errorf("device %d (%s) has no compute queue", idx, infos[i].Name)
					}
					return i, nil
				}
			}
			return -1, fmt.Errorf("no Vulkan device with index %d; devices:%s", idx, list())
		}
		for i := range infos {
			if strings.Contains(strings.ToLower(infos[i].Name), strings.ToLower(want)) && infos[i].ComputeQueueFamily >= 0 {
				return i, nil
			}
		}
		return -1, fmt.Errorf("no Vulkan device matches %q; devices:%s", want, list())
	}
	order := make([]int, 0, len(infos))
	for i := range infos {
		if infos[i].ComputeQueueFamily >= 0 {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return -1, fmt.Errorf("%w: no Vulkan device has a compute queue; devices:%s", ErrNoVulkan, list())
	}
	sort.SliceStable(order, func(a, b int) bool {
		return infos[order[a]].Type.preference() < infos[order[b]].Type.preference()
	})
	return order[0], nil
}
