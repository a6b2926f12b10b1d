// Command embed-device shows an application that manages its own Vulkan
// compute device: it opens a runtime.Device once, runs its own kernels on
// it, and loads the model onto the same device with shareprefill.Load.
// Closing the model leaves the device open; the application closes it.
//
// An application that already renders with Vulkan would get its Device
// from runtime.Adopt (handing over its VkInstance, VkPhysicalDevice,
// VkDevice and VkQueue) instead of runtime.Open; -adopt demonstrates that
// path with handles made by runtime.CreateVulkan.
//
//	go run ./examples/embed-device
//	go run ./examples/embed-device -adopt
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

func main() {
	adopt := flag.Bool("adopt", false, "adopt application-created Vulkan handles (runtime.Adopt) instead of runtime.Open")
	flag.Parse()
	log.SetFlags(0)

	var dev *runtime.Device
	if *adopt {
		// The application's own instance and device (here made by the
		// runtime's helper; a renderer would pass its existing handles).
		ext, err := runtime.CreateVulkan(runtime.VulkanOptions{ApplicationName: "embed-device"})
		if err != nil {
			log.Fatal(err)
		}
		defer runtime.DestroyVulkan(ext) // after dev.Close (defers run last-in first-out)
		if dev, err = runtime.Adopt(ext); err != nil {
			log.Fatal(err)
		}
	} else {
		var err error
		if dev, err = runtime.Open(runtime.Options{}); err != nil {
			log.Fatal(err)
		}
	}
	defer dev.Close()
	fmt.Println("device:", dev.Info().Name, "adopted:", dev.Adopted())

	// The application's own GPU work on the device.
	x, err := dev.NewTensor(runtime.F32, 4)
	if err != nil {
		log.Fatal(err)
	}
	defer x.Free()
	if err := x.UploadF32([]float32{1, 2, 3, 4}); err != nil {
		log.Fatal(err)
	}
	if err := dev.Run(func(r *runtime.Recorder) error { return kernels.Scale(r, x, x, 10, 0) }); err != nil {
		log.Fatal(err)
	}
	v, err := x.DownloadF32()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("own kernel:", v)

	// The model on the same device.
	ctx := context.Background()
	m, err := shareprefill.Load(ctx, dev, shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // leaves dev open
	fmt.Print("story: Once upon a time")
	if _, err := m.Generate(ctx, "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 40},
		func(s string) error { fmt.Print(s); return nil }); err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	fmt.Printf("device memory in use: %.1f MiB\n", float64(dev.MemoryInUse())/(1<<20))
}
