package runtime

// #cgo LDFLAGS: -ldl
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// InstallHint tells a user how to get a Vulkan loader and a driver.
const InstallHint = "install a Vulkan loader and driver (Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers; `make deps` does this as root)"

// ErrNoVulkan is wrapped by errors about a missing Vulkan loader or device.
var ErrNoVulkan = errors.New("no Vulkan")

var (
	loadOnce sync.Once
	loadErr  error
)

// loadVulkan opens libvulkan.so.1 (falling back to libvulkan.so) once per
// process and hands its vkGetInstanceProcAddr to vulkan-go.
func loadVulkan() error {
	loadOnce.Do(func() {
		var buf [512]C.char
		p := C.sp_load(&buf[0], C.int(len(buf)))
		if p == nil {
			loadErr = fmt.Errorf("%w: cannot load the Vulkan loader (libvulkan.so.1): %s; %s",
				ErrNoVulkan, C.GoString(&buf[0]), InstallHint)
			return
		}
		vk.SetGetInstanceProcAddr(unsafe.Pointer(p))
		if err := vk.Init(); err != nil {
			loadErr = fmt.Errorf("%w: initialising the Vulkan loader: %v; %s", ErrNoVulkan, err, InstallHint)
		}
	})
	return loadErr
}
