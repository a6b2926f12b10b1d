// Package runtime is shareprefill's Vulkan compute runtime: it loads the
// Vulkan loader (libvulkan.so.1) at run time, enumerates and describes
// devices, creates a logical device with the features the shaders need,
// sub-allocates device memory into tensors, builds compute pipelines from the
// embedded SPIR-V of package shaders, and records batches of dispatches into
// command buffers with the barriers they need.
//
// vulkan-go (a Vulkan 1.0 binding) is the main binding; a small cgo shim
// (shim.c) covers what it lacks: Features2/Properties2 chains, cooperative
// matrix enumeration and device creation with a features chain. The shim
// declares the structures it needs itself, so no Vulkan headers are needed to
// build.
//
// The Vulkan loader is process-wide state: it is loaded once, on the first
// call that needs it, and stays loaded.
//
// Typical use:
//
//	dev, err := runtime.Open(runtime.Options{})
//	if err != nil { ... }
//	defer dev.Close()
//	t, _ := dev.NewTensor(runtime.F32, 1024)
//	_ = t.UploadF32(data)
package runtime
