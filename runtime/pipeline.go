package runtime

// #include "shim.h"
import "C"

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"

	"github.com/shareprefill/shareprefill/shaders"
)

// KernelDesc describes a compute pipeline: which SPIR-V module, how many
// storage-buffer bindings (set 0, bindings 0..Bindings-1), the push-constant
// size and the specialization constants (ids 0..len(Spec)-1).
type KernelDesc struct {
	// Shader is the module name in package shaders (e.g. "fill").
	Shader string
	// Bindings is the number of storage buffers.
	Bindings int
	// ReadOnly marks bindings the shader never writes (bit i = binding i);
	// the recorder uses it to skip needless barriers.
	ReadOnly uint32
	// PushSize is the push-constant block size in bytes (≤ 128).
	PushSize int
	// Spec are the specialization constant values, constant_id = index.
	Spec []uint32
	// SubgroupSize, when non-zero, requires this subgroup size (only with
	// subgroup size control; otherwise the device's own size must match).
	SubgroupSize uint32
	// FullSubgroups requires full subgroups (computeFullSubgroups).
	FullSubgroups bool
}

func (k KernelDesc) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d/%d/%d/%d/%v", k.Shader, k.Bindings, k.PushSize, k.SubgroupSize, k.ReadOnly, k.FullSubgroups)
	for _, s := range k.Spec {
		fmt.Fprintf(&b, ",%d", s)
	}
	return b.String()
}

// Kernel is a compute pipeline ready to dispatch.
type Kernel struct {
	desc   KernelDesc
	pipe   vk.Pipeline
	layout vk.PipelineLayout
	dsl    vk.DescriptorSetLayout
}

// Desc returns the kernel's description.
func (k *Kernel) Desc() KernelDesc { return k.desc }

type pipelineCache struct {
	mu      sync.Mutex
	kernels map[string]*Kernel
	layouts map[int]vk.DescriptorSetLayout
	modules map[string]vk.ShaderModule
}

func (p *pipelineCache) init() {
	p.kernels = map[string]*Kernel{}
	p.layouts = map[int]vk.DescriptorSetLayout{}
	p.modules = map[string]vk.ShaderModule{}
}

func (p *pipelineCache) destroy(dev vk.Device) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.kernels {
		vk.DestroyPipeline(dev, k.pipe, nil)
		vk.DestroyPipelineLayout(dev, k.layout, nil)
	}
	for _, l := range p.layouts {
		vk.DestroyDescriptorSetLayout(dev, l, nil)
	}
	for _, m := range p.modules {
		vk.DestroyShaderModule(dev, m, nil)
	}
	p.init()
}

// Kernel returns the pipeline for desc, creating it on first use (pipelines
// are cached per device).
func (d *Device) Kernel(desc KernelDesc) (*Kernel, error) {
	if desc.PushSize > 128 || desc.PushSize%4 != 0 {
		return nil, fmt.Errorf("kernel %s: push-constant size %d must be a multiple of 4 and at most 128", desc.Shader, desc.PushSize)
	}
	if uint32(desc.PushSize) > d.info.MaxPushConstants {
		return nil, fmt.Errorf("kernel %s: push constants of %d bytes exceed the device's %d", desc.Shader, desc.PushSize, d.info.MaxPushConstants)
	}
	if desc.Bindings < 1 || desc.Bindings > 12 {
		return nil, fmt.Errorf("kernel %s: %d bindings (1..12 supported)", desc.Shader, desc.Bindings)
	}
	if desc.SubgroupSize != 0 && !d.caps.SubgroupSizeControl && desc.SubgroupSize != d.caps.SubgroupSize {
		return nil, fmt.Errorf("kernel %s: %w: needs subgroup size %d, device has %d and no subgroup size control", desc.Shader, ErrMissingFeature, desc.SubgroupSize, d.caps.SubgroupSize)
	}
	p := &d.pipes
	p.mu.Lock()
	defer p.mu.Unlock()
	key := desc.key()
	if k, ok := p.kernels[key]; ok {
		return k, nil
	}
	if d.closed {
		return nil, fmt.Errorf("kernel %s: device is closed", desc.Shader)
	}
	mod, err := d.module(desc.Shader)
	if err != nil {
		return nil, err
	}
	dsl, err := d.setLayout(desc.Bindings)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", desc.Shader, err)
	}
	plci := vk.PipelineLayoutCreateInfo{
		SType:          vk.StructureTypePipelineLayoutCreateInfo,
		SetLayoutCount: 1,
		PSetLayouts:    []vk.DescriptorSetLayout{dsl},
	}
	if desc.PushSize > 0 {
		plci.PushConstantRangeCount = 1
		plci.PPushConstantRanges = []vk.PushConstantRange{{StageFlags: vk.ShaderStageFlags(vk.ShaderStageComputeBit), Offset: 0, Size: uint32(desc.PushSize)}}
	}
	var layout vk.PipelineLayout
	if err := check("vkCreatePipelineLayout", vk.CreatePipelineLayout(d.dev, &plci, nil, &layout)); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", desc.Shader, err)
	}
	stage := vk.PipelineShaderStageCreateInfo{
		SType:  vk.StructureTypePipelineShaderStageCreateInfo,
		Stage:  vk.ShaderStageComputeBit,
		Module: mod,
		PName:  "main\x00",
	}
	var cmem []unsafe.Pointer
	defer func() {
		for _, m := range cmem {
			C.sp_free(m)
		}
	}()
	if len(desc.Spec) > 0 {
		entries := make([]vk.SpecializationMapEntry, len(desc.Spec))
		data := C.malloc(C.size_t(4 * len(desc.Spec)))
		cmem = append(cmem, data)
		words := unsafe.Slice((*uint32)(data), len(desc.Spec))
		for i, v := range desc.Spec {
			entries[i] = vk.SpecializationMapEntry{ConstantID: uint32(i), Offset: uint32(4 * i), Size: 4}
			words[i] = v
		}
		stage.PSpecializationInfo = []vk.SpecializationInfo{{
			MapEntryCount: uint32(len(entries)),
			PMapEntries:   entries,
			DataSize:      uint(4 * len(desc.Spec)),
			PData:         data,
		}}
	}
	if desc.SubgroupSize != 0 && d.caps.SubgroupSizeControl {
		s := C.sp_required_subgroup_size_info(C.uint32_t(desc.SubgroupSize))
		cmem = append(cmem, s)
		stage.PNext = s
	}
	if desc.FullSubgroups && d.info.ComputeFullSubgroups {
		stage.Flags |= 0x2 // VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
	}
	cpci := []vk.ComputePipelineCreateInfo{{
		SType:  vk.StructureTypeComputePipelineCreateInfo,
		Stage:  stage,
		Layout: layout,
	}}
	pipes := make([]vk.Pipeline, 1)
	if err := check("vkCreateComputePipelines", vk.CreateComputePipelines(d.dev, nil, 1, cpci, nil, pipes)); err != nil {
		vk.DestroyPipelineLayout(d.dev, layout, nil)
		return nil, fmt.Errorf("kernel %s: %w", desc.Shader, err)
	}
	k := &Kernel{desc: desc, pipe: pipes[0], layout: layout, dsl: dsl}
	p.kernels[key] = k
	return k, nil
}

// module returns the shader module for a SPIR-V name; the caller holds p.mu.
func (d *Device) module(name string) (vk.ShaderModule, error) {
	if m, ok := d.pipes.modules[name]; ok {
		return m, nil
	}
	code, err := shaders.SPIRV(name)
	if err != nil {
		return nil, err
	}
	if len(code)%4 != 0 || len(code) < 20 {
		return nil, fmt.Errorf("shader %s: invalid SPIR-V size %d", name, len(code))
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	smci := vk.ShaderModuleCreateInfo{
		SType:    vk.StructureTypeShaderModuleCreateInfo,
		CodeSize: uint(len(code)),
		PCode:    words,
	}
	var m vk.ShaderModule
	if err := check("vkCreateShaderModule", vk.CreateShaderModule(d.dev, &smci, nil, &m)); err != nil {
		return nil, fmt.Errorf("shader %s: %w", name, err)
	}
	d.pipes.modules[name] = m
	return m, nil
}

func (d *Device) setLayout(n int) (vk.DescriptorSetLayout, error) {
	if l, ok := d.pipes.layouts[n]; ok {
		return l, nil
	}
	binds := make([]vk.DescriptorSetLayoutBinding, n)
	for i := range binds {
		binds[i] = vk.DescriptorSetLayoutBinding{
			Binding:         uint32(i),
			DescriptorType:  vk.DescriptorTypeStorageBuffer,
			DescriptorCount: 1,
			StageFlags:      vk.ShaderStageFlags(vk.ShaderStageComputeBit),
		}
	}
	ci := vk.DescriptorSetLayoutCreateInfo{
		SType:        vk.StructureTypeDescriptorSetLayoutCreateInfo,
		BindingCount: uint32(n),
		PBindings:    binds,
	}
	var l vk.DescriptorSetLayout
	if err := check("vkCreateDescriptorSetLayout", vk.CreateDescriptorSetLayout(d.dev, &ci, nil, &l)); err != nil {
		return nil, err
	}
	d.pipes.layouts[n] = l
	return l, nil
}
