package runtime

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"strings"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Enumerations with arrays of structures go through the C shim: vulkan-go's
// wrappers keep the array in C memory with a finalizer that a garbage
// collection may run before the Vulkan call returns (the C heap was
// corrupted that way; TestGCStress under validation).

// hasInstanceLayer reports whether the Vulkan implementation offers the
// instance layer name.
func hasInstanceLayer(name string) bool {
	c := C.CString(name)
	defer C.free(unsafe.Pointer(c))
	return C.sp_instance_has_layer(c) != 0
}

// hasInstanceExtension reports whether the instance extension name is
// offered by layer ("" for the implementation and its implicit layers).
func hasInstanceExtension(name, layer string) bool {
	var cl *C.char
	if layer != "" {
		cl = C.CString(layer)
		defer C.free(unsafe.Pointer(cl))
	}
	names := extNames(func(buf *C.char, n C.uint32_t, need *C.uint32_t) C.int {
		return C.sp_instance_ext_names(cl, buf, n, need)
	})
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// deviceExtensions returns the device extension names of pd.
func deviceExtensions(inst vk.Instance, pd vk.PhysicalDevice) []string {
	return extNames(func(buf *C.char, n C.uint32_t, need *C.uint32_t) C.int {
		return C.sp_device_ext_names(unsafe.Pointer(inst), unsafe.Pointer(pd), buf, n, need)
	})
}

// extNames calls list with a C buffer, growing it until the names fit.
func extNames(list func(buf *C.char, n C.uint32_t, need *C.uint32_t) C.int) []string {
	size := C.uint32_t(16 << 10)
	for try := 0; try < 4; try++ {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		var need C.uint32_t
		r := list(buf, size, &need)
		if r >= 0 {
			s := C.GoStringN(buf, C.int(need))
			C.free(unsafe.Pointer(buf))
			return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' })
		}
		C.free(unsafe.Pointer(buf))
		if need <= size {
			return nil // out of host memory in C
		}
		size = need
	}
	return nil
}

// queueFamily is what the runtime reads of a queue family.
type queueFamily struct {
	Flags              vk.QueueFlags
	TimestampValidBits uint32
}

// queueFamilies returns the queue families of pd.
func queueFamilies(inst vk.Instance, pd vk.PhysicalDevice) []queueFamily {
	const max = 64
	var flags, bits [max]C.uint32_t
	n := C.sp_queue_families(unsafe.Pointer(inst), unsafe.Pointer(pd), &flags[0], &bits[0], max)
	qs := make([]queueFamily, n)
	for i := range qs {
		qs[i] = queueFamily{Flags: vk.QueueFlags(flags[i]), TimestampValidBits: uint32(bits[i])}
	}
	return qs
}
