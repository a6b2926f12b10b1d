package runtime

import (
	"strings"
	"testing"

	vk "github.com/vulkan-go/vulkan"
)

// openValidated opens the default device with the validation layer, or skips
// when Vulkan or the layer is missing.
func openValidated(t *testing.T) *Device {
	t.Helper()
	if err := loadVulkan(); err != nil {
		t.Skipf("no Vulkan: %v", err)
	}
	if !hasInstanceLayer(validationLayer) {
		t.Skip("VK_LAYER_KHRONOS_validation not installed (apt-get install vulkan-validationlayers)")
	}
	d, err := Open(Options{Validation: true})
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	t.Cleanup(d.Close)
	if !d.Validating() {
		t.Fatal("Options.Validation: the device reports no validation messenger")
	}
	return d
}

// TestValidationCollectsErrors provokes two validation errors through raw
// Vulkan calls (a zero-sized buffer; a fence never destroyed, reported when
// the device is destroyed) and checks that ValidationErrors returns them and
// then clears them.
func TestValidationCollectsErrors(t *testing.T) {
	d := openValidated(t)
	if errs := d.ValidationErrors(); len(errs) != 0 {
		t.Fatalf("errors on a fresh device: %q", errs)
	}
	bci := vk.BufferCreateInfo{
		SType:       vk.StructureTypeBufferCreateInfo,
		Size:        0, // VUID-VkBufferCreateInfo-size-00912
		Usage:       vk.BufferUsageFlags(vk.BufferUsageStorageBufferBit),
		SharingMode: vk.SharingModeExclusive,
	}
	var buf vk.Buffer
	if vk.CreateBuffer(d.dev, &bci, nil, &buf) == vk.Success && buf != vk.NullBuffer {
		vk.DestroyBuffer(d.dev, buf, nil)
	}
	errs := d.ValidationErrors()
	if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "00912") {
		t.Errorf("zero-sized buffer: validation errors %q, want VUID-VkBufferCreateInfo-size-00912", errs)
	}
	if again := d.ValidationErrors(); len(again) != 0 {
		t.Errorf("ValidationErrors did not clear: %q", again)
	}

	if _, err := d.newFence(); err != nil { // leaked on purpose
		t.Fatal(err)
	}
	d.Close()
	errs = d.ValidationErrors()
	if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "VkFence") {
		t.Errorf("fence alive at vkDestroyDevice: validation errors %q, want one naming the VkFence", errs)
	}
}

// TestValidationOffByDefault: without the option nothing is collected.
func TestValidationOffByDefault(t *testing.T) {
	if on, _, _ := validationEnv(); on {
		t.Skip("SHAREPREFILL_VK_VALIDATION is set")
	}
	if err := loadVulkan(); err != nil {
		t.Skipf("no Vulkan: %v", err)
	}
	d, err := Open(Options{})
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	defer d.Close()
	if d.Validating() || d.ValidationErrors() != nil {
		t.Error("validation active without being asked for")
	}
}
