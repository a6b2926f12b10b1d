package runtime

import (
	"fmt"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Instance is a Vulkan instance with its enumerated devices.
type Instance struct {
	inst    vk.Instance
	devices []DeviceInfo
	layers  []string
	val     *validator // validation messages; nil without validation
}

// InstanceOptions configures NewInstance.
type InstanceOptions struct {
	// Validation enables the Khronos validation layer
	// (VK_LAYER_KHRONOS_validation); also SHAREPREFILL_VK_VALIDATION=1.
	Validation bool
}

// NewInstance loads Vulkan and creates an instance. When there is no loader or
// no device the error says so and how to fix it.
func NewInstance(opts InstanceOptions) (*Instance, error) {
	if err := loadVulkan(); err != nil {
		return nil, err
	}
	var (
		layers, exts []string
		val          *validator
		valInfo      unsafe.Pointer
	)
	valEnv, valFeatures, err := validationEnv()
	if err != nil {
		return nil, err
	}
	if opts.Validation || valEnv {
		if !hasInstanceLayer(validationLayer) {
			return nil, fmt.Errorf("%w: validation requested but VK_LAYER_KHRONOS_validation is not installed (Debian: apt-get install vulkan-validationlayers)", ErrMissingFeature)
		}
		layers = append(layers, validationLayer+"\x00")
		if val, valInfo, err = newValidator(valFeatures); err != nil {
			return nil, err
		}
		exts = append(exts, extDebugUtils+"\x00")
	}
	// The messenger create info (C memory) in pNext also reports on
	// vkCreateInstance and vkDestroyInstance.
	inst, r := createInstance("shareprefill", vk.MakeVersion(1, 3, 0), layers, exts, valInfo)
	if valInfo != nil {
		freeC(valInfo)
		if r != vk.Success {
			val.discard() // the loader's messages repeat the error returned below
		}
	}
	if r == vk.ErrorIncompatibleDriver {
		return nil, fmt.Errorf("%w: vkCreateInstance: no compatible Vulkan driver (VK_ERROR_INCOMPATIBLE_DRIVER); %s", ErrNoVulkan, InstallHint)
	}
	if err := check("vkCreateInstance", r); err != nil {
		return nil, fmt.Errorf("%w: %v; %s", ErrNoVulkan, err, InstallHint)
	}
	if err := vk.InitInstance(inst); err != nil {
		vk.DestroyInstance(inst, nil)
		return nil, fmt.Errorf("loading instance functions: %w", err)
	}
	in := &Instance{inst: inst, layers: layers, val: val}
	if val != nil {
		if err := val.attach(inst); err != nil {
			in.Close()
			return nil, fmt.Errorf("validation messenger: %w", err)
		}
	}
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(inst, &n, nil)); err != nil {
		in.Close()
		return nil, err
	}
	pds := make([]vk.PhysicalDevice, n)
	if n > 0 {
		if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(inst, &n, pds)); err != nil {
			in.Close()
			return nil, err
		}
	}
	for i, pd := range pds[:n] {
		in.devices = append(in.devices, describe(inst, pd, i))
	}
	return in, nil
}

// Devices returns the physical devices of the instance.
func (in *Instance) Devices() []DeviceInfo { return in.devices }

// Close destroys the instance. Devices opened from it must be closed first.
func (in *Instance) Close() {
	if in.inst != nil {
		if in.val != nil {
			in.val.detach(in.inst)
		}
		vk.DestroyInstance(in.inst, nil)
		in.inst = nil
		if in.val != nil {
			in.val.finish()
		}
	}
}

// ListDevices is a convenience: it creates an instance, describes its devices
// and closes it.
func ListDevices() ([]DeviceInfo, error) {
	in, err := NewInstance(InstanceOptions{})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if len(in.devices) == 0 {
		return nil, fmt.Errorf("%w: the Vulkan loader found no device (no driver installed?); %s", ErrNoVulkan, InstallHint)
	}
	return in.devices, nil
}
