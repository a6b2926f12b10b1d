package runtime

import (
	"errors"
	"fmt"

	vk "github.com/vulkan-go/vulkan"
)

// Sentinel errors that callers can test with errors.Is.
var (
	// ErrOutOfDeviceMemory: the device (or host) ran out of memory.
	ErrOutOfDeviceMemory = errors.New("out of device memory")
	// ErrDeviceLost: the device was lost (driver reset, hang or fault). The
	// Device must be closed; every later call fails.
	ErrDeviceLost = errors.New("device lost")
	// ErrTimeout: a submission did not finish within the configured time.
	ErrTimeout = errors.New("GPU work did not finish in time")
	// ErrMissingFeature: the device lacks something the caller requires.
	ErrMissingFeature = errors.New("missing device feature")
)

// VkError is a failed Vulkan call.
type VkError struct {
	Call   string
	Result vk.Result
}

func (e *VkError) Error() string {
	msg := fmt.Sprintf("%s failed: %s", e.Call, resultName(e.Result))
	if e.Result == vk.ErrorDeviceLost {
		msg += " (run with SHAREPREFILL_VK_SERIALIZE=1 to find the failing dispatch)"
	}
	return msg
}

// Unwrap maps the Vulkan result to the package's sentinel errors.
func (e *VkError) Unwrap() error {
	switch e.Result {
	case vk.ErrorOutOfDeviceMemory, vk.ErrorOutOfHostMemory:
		return ErrOutOfDeviceMemory
	case vk.ErrorDeviceLost:
		return ErrDeviceLost
	case vk.Timeout:
		return ErrTimeout
	case vk.ErrorFeatureNotPresent, vk.ErrorExtensionNotPresent:
		return ErrMissingFeature
	}
	return nil
}

func check(call string, r vk.Result) error {
	if r == vk.Success {
		return nil
	}
	return &VkError{Call: call, Result: r}
}

func resultName(r vk.Result) string {
	switch r {
	case vk.Success:
		return "VK_SUCCESS"
	case vk.NotReady:
		return "VK_NOT_READY"
	case vk.Timeout:
		return "VK_TIMEOUT"
	case vk.Incomplete:
		return "VK_INCOMPLETE"
	case vk.ErrorOutOfHostMemory:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case vk.ErrorOutOfDeviceMemory:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case vk.ErrorInitializationFailed:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case vk.ErrorDeviceLost:
		return "VK_ERROR_DEVICE_LOST"
	case vk.ErrorMemoryMapFailed:
		return "VK_ERROR_MEMORY_MAP_FAILED"
	case vk.ErrorLayerNotPresent:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case vk.ErrorExtensionNotPresent:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case vk.ErrorFeatureNotPresent:
		return "VK_ERROR_FEATURE_NOT_PRESENT"
	case vk.ErrorIncompatibleDriver:
		return "VK_ERROR_INCOMPATIBLE_DRIVER"
	case vk.ErrorTooManyObjects:
		return "VK_ERROR_TOO_MANY_OBJECTS"
	case vk.ErrorFragmentedPool:
		return "VK_ERROR_FRAGMENTED_POOL"
	case vk.ErrorOutOfPoolMemory:
		return "VK_ERROR_OUT_OF_POOL_MEMORY"
	}
	return fmt.Sprintf("VkResult(%d)", int32(r))
}
