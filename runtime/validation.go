package runtime

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

const (
	extDebugUtils   = "VK_EXT_debug_utils"
	validationLayer = "VK_LAYER_KHRONOS_validation"

	sevError = 0x1000 // VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT

	// maxKeptMessages bounds the messages kept on the Go side per kind; more
	// are counted.
	maxKeptMessages = 256
)

// validator collects the messages of the Khronos validation layer for one
// instance through a VK_EXT_debug_utils messenger. The messenger's C callback
// appends to a bounded C ring (shim.c); Go drains the ring into errs/warns
// when asked, after each submission and when the instance closes.
type validator struct {
	ring      *C.sp_ring
	messenger unsafe.Pointer

	mu       sync.Mutex
	errs     []string
	warns    []string
	dropped  int  // messages lost (ring full or over maxKeptMessages)
	claimed  bool // someone collects the errors (ValidationErrors was called)
	finished bool // the ring is freed
}

// newValidator allocates the ring and returns the messenger create info to
// chain into VkInstanceCreateInfo.pNext (free it with C.sp_free after
// vkCreateInstance), so that vkCreateInstance and vkDestroyInstance report
// too.
func newValidator(features uint32) (*validator, unsafe.Pointer, error) {
	if !hasInstanceExtension(extDebugUtils, "") && !hasInstanceExtension(extDebugUtils, validationLayer) {
		return nil, nil, fmt.Errorf("%w: validation requested but the instance extension %s is missing", ErrMissingFeature, extDebugUtils)
	}
	ring := C.sp_ring_new()
	if ring == nil {
		return nil, nil, fmt.Errorf("validation: out of host memory")
	}
	info := C.sp_messenger_info(ring, C.uint32_t(features))
	if info == nil {
		C.sp_ring_free(ring)
		return nil, nil, fmt.Errorf("validation: out of host memory")
	}
	return &validator{ring: ring}, info, nil
}

// validationEnv parses SHAREPREFILL_VK_VALIDATION: "1" or "true" enables the
// layer's core checks; a comma-separated list of "sync" (synchronization
// validation: missing or wrong barriers), "gpu" (GPU-assisted validation:
// out-of-bounds shader accesses) and "best" (best-practices warnings) enables
// the layer with those checks as well.
func validationEnv() (on bool, features uint32, err error) {
	v := strings.TrimSpace(os.Getenv("SHAREPREFILL_VK_VALIDATION"))
	switch strings.ToLower(v) {
	case "", "0", "false":
		return false, 0, nil
	case "1", "true":
		return true, 0, nil
	}
	for _, w := range strings.Split(strings.ToLower(v), ",") {
		switch strings.TrimSpace(w) {
		case "sync":
			features |= C.SP_VAL_SYNC
		case "gpu":
			features |= C.SP_VAL_GPU_ASSISTED
		case "best":
			features |= C.SP_VAL_BEST_PRACTICES
		case "1", "true":
		default:
			return false, 0, fmt.Errorf("SHAREPREFILL_VK_VALIDATION=%q: want 1, or a comma-separated list of sync, gpu, best", v)
		}
	}
	return true, features, nil
}

// attach creates the messenger on the new instance.
func (v *validator) attach(inst vk.Instance) error {
	var m unsafe.Pointer
	r := C.sp_messenger_create(unsafe.Pointer(inst), v.ring, &m)
	if err := check("vkCreateDebugUtilsMessengerEXT", vk.Result(r)); err != nil {
		return err
	}
	v.messenger = m
	return nil
}

// poll drains the C ring into the Go lists.
func (v *validator) poll() {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pollLocked()
}

func (v *validator) pollLocked() {
	if v.finished {
		return
	}
	var buf [2048]C.char
	var sev C.uint32_t
	for C.sp_ring_pop(v.ring, &buf[0], C.int(len(buf)), &sev) != 0 {
		msg := C.GoString(&buf[0])
		list := &v.warns
		if sev&sevError != 0 {
			list = &v.errs
		}
		if len(*list) >= maxKeptMessages {
			v.dropped++
			continue
		}
		*list = append(*list, msg)
	}
	v.dropped += int(C.sp_ring_dropped(v.ring))
}

// detach destroys the messenger; call before vkDestroyInstance.
func (v *validator) detach(inst vk.Instance) {
	if v.messenger != nil {
		C.sp_messenger_destroy(unsafe.Pointer(inst), v.messenger)
		v.messenger = nil
	}
}

// finish drains the ring a last time and frees it; call after
// vkDestroyInstance. Errors that nobody collects go to stderr so that a
// validation run never loses them silently.
func (v *validator) finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pollLocked()
	if !v.finished {
		v.finished = true
		C.sp_ring_free(v.ring)
		v.ring = nil
	}
	if !v.claimed && len(v.errs) > 0 {
		fmt.Fprintf(os.Stderr, "shareprefill: Vulkan validation reported %d error(s) that no one collected:\n%s\n",
			len(v.errs), strings.Join(v.errs, "\n"))
		v.errs = nil
	}
}

// discard frees the ring without reporting its messages (instance creation
// failed; the error says why).
func (v *validator) discard() {
	v.mu.Lock()
	v.claimed = true
	v.mu.Unlock()
	v.finish()
}

// take returns and clears the errors (and the count of lost messages as a
// last line).
func (v *validator) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.claimed = true
	v.pollLocked()
	out := v.errs
	if v.dropped > 0 {
		out = append(out, fmt.Sprintf("(%d more validation messages were dropped)", v.dropped))
		v.dropped = 0
	}
	v.errs = nil
	return out
}

func (v *validator) takeWarnings() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pollLocked()
	out := v.warns
	v.warns = nil
	return out
}

// Validating reports whether the Khronos validation layer is active with a
// messenger collecting its messages.
func (d *Device) Validating() bool { return d.inst != nil && d.inst.val != nil }

// ValidationErrors returns and clears the errors the Khronos validation layer
// reported for this device's instance (SHAREPREFILL_VK_VALIDATION=1 or
// Options.Validation). It is nil without validation. It also works after
// Close, which collects the errors of vkDestroyDevice/vkDestroyInstance
// (objects not destroyed). Calling it marks the errors as collected: a
// closing instance whose errors were never asked for prints them to stderr.
func (d *Device) ValidationErrors() []string {
	if !d.Validating() {
		return nil
	}
	return d.inst.val.take()
}

// ValidationWarnings returns and clears the warnings (including performance
// warnings) of the validation layer.
func (d *Device) ValidationWarnings() []string {
	if !d.Validating() {
		return nil
	}
	return d.inst.val.takeWarnings()
}

func freeC(p unsafe.Pointer) { C.sp_free(p) }
