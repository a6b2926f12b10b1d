package runtime

// #include <stdint.h>
// #include <stdlib.h>
// #include "vkcalls.h"
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// This file wraps vkcalls.c: the Vulkan calls whose create-info structures
// nest pointers. vulkan-go would copy them into C memory freed by Go
// finalizers, which can run while the driver still reads them (seen as a
// rare crash in vkCreateComputePipelines), so these calls build their
// structures in C instead.

func bufH(b vk.Buffer) uint64  { return uint64(uintptr(unsafe.Pointer(b))) }
func fenceH(f vk.Fence) uint64 { return uint64(uintptr(unsafe.Pointer(f))) }

func (d *Device) calls() *C.sp_dev { return (*C.sp_dev)(d.sp) }

func (d *Device) initCalls(inst vk.Instance) error {
	p := C.sp_dev_new(unsafe.Pointer(inst), unsafe.Pointer(d.dev))
	if p == nil {
		return fmt.Errorf("loading device functions: vkGetDeviceProcAddr failed")
	}
	d.sp = unsafe.Pointer(p)
	return nil
}

func (d *Device) freeCalls() {
	if d.sp != nil {
		C.sp_dev_free(d.calls())
		d.sp = nil
	}
}

func (d *Device) createShaderModule(code []uint32) (uint64, error) {
	var out C.uint64_t
	r := C.sp_create_shader_module(d.calls(), (*C.uint32_t)(unsafe.Pointer(&code[0])), C.size_t(4*len(code)), &out)
	return uint64(out), check("vkCreateShaderModule", vk.Result(r))
}

func (d *Device) createSetLayout(n int) (uint64, error) {
	var out C.uint64_t
	r := C.sp_create_set_layout(d.calls(), C.uint32_t(n), &out)
	return uint64(out), check("vkCreateDescriptorSetLayout", vk.Result(r))
}

func (d *Device) createPipelineLayout(setLayout uint64, push int) (uint64, error) {
	var out C.uint64_t
	r := C.sp_create_pipeline_layout(d.calls(), C.uint64_t(setLayout), C.uint32_t(push), &out)
	return uint64(out), check("vkCreatePipelineLayout", vk.Result(r))
}

func (d *Device) createComputePipeline(module, layout uint64, spec []uint32, subgroupSize, flags, pipeFlags uint32) (uint64, error) {
	var out C.uint64_t
	var sp *C.uint32_t
	if len(spec) > 0 {
		sp = (*C.uint32_t)(unsafe.Pointer(&spec[0]))
	}
	r := C.sp_create_compute_pipeline(d.calls(), C.uint64_t(module), C.uint64_t(layout), sp, C.uint32_t(len(spec)),
		C.uint32_t(subgroupSize), C.uint32_t(flags), C.uint32_t(pipeFlags), &out)
	return uint64(out), check("vkCreateComputePipelines", vk.Result(r))
}

func (d *Device) destroyPipelineObjects(pipe, layout uint64) {
	if pipe != 0 {
		C.sp_destroy_pipeline(d.calls(), C.uint64_t(pipe))
	}
	if layout != 0 {
		C.sp_destroy_pipeline_layout(d.calls(), C.uint64_t(layout))
	}
}

func (d *Device) destroySetLayout(l uint64)    { C.sp_destroy_set_layout(d.calls(), C.uint64_t(l)) }
func (d *Device) destroyShaderModule(m uint64) { C.sp_destroy_shader_module(d.calls(), C.uint64_t(m)) }
func (d *Device) destroyDescriptorPool(p uint64) {
	C.sp_destroy_descriptor_pool(d.calls(), C.uint64_t(p))
}
func (d *Device) resetDescriptorPool(p uint64) { C.sp_reset_descriptor_pool(d.calls(), C.uint64_t(p)) }

func (d *Device) createDescriptorPool(maxSets, descriptors int) (uint64, error) {
	var out C.uint64_t
	r := C.sp_create_descriptor_pool(d.calls(), C.uint32_t(maxSets), C.uint32_t(descriptors), &out)
	return uint64(out), check("vkCreateDescriptorPool", vk.Result(r))
}

// dispatchArgs is C's sp_dispatch (vkcalls.h), field for field: the
// recorder fills one in place and records a dispatch with one cgo call.
type dispatchArgs struct {
	pool, dsl, set    uint64
	pipeline, layout  uint64
	ibuf, ioff        uint64
	n, pushSize       uint32
	barrier, bindPipe uint32
	indirect          uint32
	g                 [3]uint32
	calls             uint32
	_                 uint32
	bufs              [16]uint64
	offs              [16]uint64
	ranges            [16]uint64
	push              [128]byte
}

// The layouts agree (a mismatch fails to compile).
var (
	_ [unsafe.Sizeof(dispatchArgs{}) - C.sizeof_sp_dispatch]byte
	_ [C.sizeof_sp_dispatch - unsafe.Sizeof(dispatchArgs{})]byte
	_ [unsafe.Offsetof(dispatchArgs{}.bufs) - 96]byte
	_ [96 - unsafe.Offsetof(dispatchArgs{}.bufs)]byte
)

// recordDispatch records the dispatch a describes (sp_record_dispatch).
func (d *Device) recordDispatch(cmd vk.CommandBuffer, a *dispatchArgs) vk.Result {
	return vk.Result(C.sp_record_dispatch(d.calls(), unsafe.Pointer(cmd), (*C.sp_dispatch)(unsafe.Pointer(a))))
}

func (d *Device) cmdBarrier(cmd vk.CommandBuffer) { C.sp_cmd_barrier(d.calls(), unsafe.Pointer(cmd)) }

func (d *Device) cmdHostBarrier(cmd vk.CommandBuffer) {
	C.sp_cmd_host_barrier(d.calls(), unsafe.Pointer(cmd))
}

func (d *Device) cmdCopy(cmd vk.CommandBuffer, src, dst vk.Buffer, srcOff, dstOff, size uint64) {
	C.sp_cmd_copy(d.calls(), unsafe.Pointer(cmd), C.uint64_t(bufH(src)), C.uint64_t(bufH(dst)),
		C.uint64_t(srcOff), C.uint64_t(dstOff), C.uint64_t(size))
}

func (d *Device) queueSubmit(cmd vk.CommandBuffer, fence vk.Fence) vk.Result {
	return vk.Result(C.sp_queue_submit(d.calls(), unsafe.Pointer(d.queue), unsafe.Pointer(cmd), C.uint64_t(fenceH(fence))))
}

// cStrings copies ss into a C array of C strings; free releases them.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	p := (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	a := unsafe.Slice(p, len(ss))
	for i, s := range ss {
		a[i] = C.CString(strings.TrimSuffix(s, "\x00"))
	}
	return p, func() {
		for _, c := range a {
			C.free(unsafe.Pointer(c))
		}
		C.free(unsafe.Pointer(p))
	}
}

// createInstance creates a VkInstance with its create info built in C.
func createInstance(app string, api uint32, layers, exts []string, pnext unsafe.Pointer) (vk.Instance, vk.Result) {
	capp := C.CString(strings.TrimSuffix(app, "\x00"))
	defer C.free(unsafe.Pointer(capp))
	l, freeL := cStrings(layers)
	defer freeL()
	e, freeE := cStrings(exts)
	defer freeE()
	var out unsafe.Pointer
	r := C.sp_create_instance(capp, C.uint32_t(api), l, C.uint32_t(len(layers)), e, C.uint32_t(len(exts)), pnext, &out)
	return vk.Instance(out), vk.Result(r)
}

func (d *Device) pipelineStats(pipe uint64) (string, error) {
	const capBytes = 64 << 10
	buf := (*C.char)(C.malloc(capBytes))
	defer C.free(unsafe.Pointer(buf))
	r := C.sp_pipeline_stats(d.calls(), C.uint64_t(pipe), buf, capBytes)
	if err := check("vkGetPipelineExecutableStatisticsKHR", vk.Result(r)); err != nil {
		return "", err
	}
	return C.GoString(buf), nil
}
