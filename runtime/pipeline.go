package runtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/shareprefill/shareprefill/shaders"
)

// KernelDesc describes a compute pipeline: which SPIR-V module, how many
// storage-buffer bindings (set 0, bindings 0..Bindings-1), the push-constant
// size and the specialization constants (ids 0..len(Spec)-1).
type KernelDesc struct {
	// Shader is the module name in package shaders (e.g. "fill").
	Shader string
	// Bindings is the number of storage buffers (1 to 13).
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

// appendKey appends the pipeline cache's key of k to b. Every kernel call
// looks its pipeline up by it, so it is built without fmt and, into a
// caller's stack buffer, without allocating (a map lookup with string(b)
// does not copy).
func (k KernelDesc) appendKey(b []byte) []byte {
	b = append(b, k.Shader...)
	for _, v := range [...]uint64{uint64(k.Bindings), uint64(k.PushSize), uint64(k.SubgroupSize), uint64(k.ReadOnly)} {
		b = append(b, '/')
		b = strconv.AppendUint(b, v, 10)
	}
	if k.FullSubgroups {
		b = append(b, "/full"...)
	}
	for _, s := range k.Spec {
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(s), 10)
	}
	return b
}

// Kernel is a compute pipeline ready to dispatch.
type Kernel struct {
	desc   KernelDesc
	pipe   uint64 // VkPipeline
	layout uint64 // VkPipelineLayout
	dsl    uint64 // VkDescriptorSetLayout
}

// Desc returns the kernel's description.
func (k *Kernel) Desc() KernelDesc { return k.desc }

type pipelineCache struct {
	mu      sync.Mutex
	kernels map[string]*Kernel
	layouts map[int]uint64
	modules map[string]uint64
}

func (p *pipelineCache) init() {
	p.kernels = map[string]*Kernel{}
	p.layouts = map[int]uint64{}
	p.modules = map[string]uint64{}
}

func (p *pipelineCache) destroy(d *Device) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.sp != nil {
		for _, k := range p.kernels {
			d.destroyPipelineObjects(k.pipe, k.layout)
		}
		for _, l := range p.layouts {
			d.destroySetLayout(l)
		}
		for _, m := range p.modules {
			d.destroyShaderModule(m)
		}
	}
	p.init()
}

// maxKernelBindings is the most storage-buffer bindings a kernel takes
// (binding 0 up); descriptor pools are sized for it.
const maxKernelBindings = 13

// Kernel returns the pipeline for desc, creating it on first use (pipelines
// are cached per device).
func (d *Device) Kernel(desc KernelDesc) (*Kernel, error) {
	var kb [128]byte
	key := desc.appendKey(kb[:0])
	p := &d.pipes
	p.mu.Lock()
	k, ok := p.kernels[string(key)]
	p.mu.Unlock()
	if ok {
		return k, nil
	}
	// newKernel keeps its desc: a copy, so that the caller's (its Spec
	// literal, built at every call) stays on the caller's stack.
	return d.newKernel(KernelDesc{Shader: strings.Clone(desc.Shader), Bindings: desc.Bindings, ReadOnly: desc.ReadOnly,
		PushSize: desc.PushSize, Spec: slices.Clone(desc.Spec), SubgroupSize: desc.SubgroupSize, FullSubgroups: desc.FullSubgroups})
}

// newKernel checks desc and creates its pipeline (Kernel's first use).
func (d *Device) newKernel(desc KernelDesc) (*Kernel, error) {
	if desc.PushSize > 128 || desc.PushSize%4 != 0 {
		return nil, fmt.Errorf("kernel %s: push-constant size %d must be a multiple of 4 and at most 128", desc.Shader, desc.PushSize)
	}
	if uint32(desc.PushSize) > d.info.MaxPushConstants {
		return nil, fmt.Errorf("kernel %s: push constants of %d bytes exceed the device's %d", desc.Shader, desc.PushSize, d.info.MaxPushConstants)
	}
	if desc.Bindings < 1 || desc.Bindings > maxKernelBindings {
		return nil, fmt.Errorf("kernel %s: %d bindings (1..%d supported)", desc.Shader, desc.Bindings, maxKernelBindings)
	}
	if len(desc.Spec) > 64 {
		return nil, fmt.Errorf("kernel %s: %d specialization constants (at most 64)", desc.Shader, len(desc.Spec))
	}
	if desc.SubgroupSize != 0 && !d.caps.SubgroupSizeControl && desc.SubgroupSize != d.caps.SubgroupSize {
		return nil, fmt.Errorf("kernel %s: %w: needs subgroup size %d, device has %d and no subgroup size control", desc.Shader, ErrMissingFeature, desc.SubgroupSize, d.caps.SubgroupSize)
	}
	p := &d.pipes
	p.mu.Lock()
	defer p.mu.Unlock()
	var kb [128]byte
	key := desc.appendKey(kb[:0])
	if k, ok := p.kernels[string(key)]; ok {
		return k, nil
	}
	if d.closed || d.sp == nil {
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
	layout, err := d.createPipelineLayout(dsl, desc.PushSize)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", desc.Shader, err)
	}
	var sg, flags uint32
	if desc.SubgroupSize != 0 && d.caps.SubgroupSizeControl {
		sg = desc.SubgroupSize
	}
	if desc.FullSubgroups && d.info.ComputeFullSubgroups {
		flags |= 0x2 // VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
	}
	var pipeFlags uint32
	if d.pipeStats {
		pipeFlags |= 0x40 // VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR
	}
	pipe, err := d.createComputePipeline(mod, layout, desc.Spec, sg, flags, pipeFlags)
	if err != nil {
		d.destroyPipelineObjects(0, layout)
		return nil, fmt.Errorf("kernel %s: %w", desc.Shader, err)
	}
	k := &Kernel{desc: desc, pipe: pipe, layout: layout, dsl: dsl}
	p.kernels[string(key)] = k
	return k, nil
}

// module returns the shader module for a SPIR-V name; the caller holds p.mu.
func (d *Device) module(name string) (uint64, error) {
	if m, ok := d.pipes.modules[name]; ok {
		return m, nil
	}
	code, err := shaders.SPIRV(name)
	if err != nil {
		return 0, err
	}
	if len(code)%4 != 0 || len(code) < 20 {
		return 0, fmt.Errorf("shader %s: invalid SPIR-V size %d", name, len(code))
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	m, err := d.createShaderModule(words)
	if err != nil {
		return 0, fmt.Errorf("shader %s: %w", name, err)
	}
	d.pipes.modules[name] = m
	return m, nil
}

func (d *Device) setLayout(n int) (uint64, error) {
	if l, ok := d.pipes.layouts[n]; ok {
		return l, nil
	}
	l, err := d.createSetLayout(n)
	if err != nil {
		return 0, err
	}
	d.pipes.layouts[n] = l
	return l, nil
}

// PipelineStat is one statistic a driver reports for a compiled pipeline
// (VK_KHR_pipeline_executable_properties): Executable is the driver's name
// for the compiled stage, Name the statistic's ("Register Count", "Spill
// Count", ... as the driver spells them), Value its value as text.
type PipelineStat struct {
	Executable, Name, Value string
}

// KernelStats are the statistics of one cached kernel.
type KernelStats struct {
	Shader string
	Spec   []uint32
	Stats  []PipelineStat
}

// PipelineStatistics returns the driver's statistics for every kernel
// created so far, sorted by shader name. It needs a device opened with
// Options.PipelineStats (SHAREPREFILL_VK_PIPELINE_STATS=1) on a driver with
// VK_KHR_pipeline_executable_properties, else it returns ErrMissingFeature.
func (d *Device) PipelineStatistics() ([]KernelStats, error) {
	if !d.pipeStats {
		return nil, fmt.Errorf("pipeline statistics: %w: open the device with Options.PipelineStats (SHAREPREFILL_VK_PIPELINE_STATS=1) on a driver with %s", ErrMissingFeature, extPipelineExec)
	}
	p := &d.pipes
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []KernelStats
	for _, k := range p.kernels {
		text, err := d.pipelineStats(k.pipe)
		if err != nil {
			return nil, fmt.Errorf("pipeline statistics of %s: %w", k.desc.Shader, err)
		}
		ks := KernelStats{Shader: k.desc.Shader, Spec: append([]uint32(nil), k.desc.Spec...)}
		for _, line := range strings.Split(text, "\n") {
			if f := strings.SplitN(line, "\t", 3); len(f) == 3 {
				ks.Stats = append(ks.Stats, PipelineStat{Executable: f[0], Name: f[1], Value: f[2]})
			}
		}
		out = append(out, ks)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Shader != out[j].Shader {
			return out[i].Shader < out[j].Shader
		}
		return fmt.Sprint(out[i].Spec) < fmt.Sprint(out[j].Spec)
	})
	return out, nil
}

// FormatPipelineStatistics writes st as a Markdown table (one row per
// kernel and statistic).
func FormatPipelineStatistics(w io.Writer, st []KernelStats) {
	fmt.Fprintf(w, "| shader | spec | executable | statistic | value |\n|---|---|---|---|---:|\n")
	for _, k := range st {
		for _, s := range k.Stats {
			fmt.Fprintf(w, "| %s | %v | %s | %s | %s |\n", k.Shader, k.Spec, s.Executable, s.Name, s.Value)
		}
	}
}
