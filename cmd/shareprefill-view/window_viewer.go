//go:build viewer

package main

import (
	"fmt"
	"image"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/vulkan-go/glfw/v3.3/glfw"
	vk "github.com/vulkan-go/vulkan"

	"github.com/shareprefill/shareprefill/runtime"
)

func init() { goruntime.LockOSThread() } // GLFW wants the main thread

// presenter copies CPU-built frames into swapchain images: the frame goes
// to a host-visible buffer, vkCmdCopyBufferToImage writes the acquired
// image, and (for --screenshot) vkCmdCopyImageToBuffer reads it back.
type presenter struct {
	ext     runtime.ExternalVulkan
	qlock   *sync.Mutex
	dev     vk.Device
	queue   vk.Queue
	surface vk.Surface
	sc      vk.Swapchain
	images  []vk.Image
	format  vk.Format
	bgra    bool
	extent  vk.Extent2D
	pool    vk.CommandPool
	cmd     vk.CommandBuffer
	fence   vk.Fence
	acquire vk.Semaphore
	done    vk.Semaphore
	buf     vk.Buffer
	mem     vk.DeviceMemory
	ptr     unsafe.Pointer
	size    uint64
}

func vkErr(call string, r vk.Result) error {
	if r == vk.Success {
		return nil
	}
	return fmt.Errorf("%s: VkResult %d", call, r)
}

func runWindow(c config) error {
	if err := glfw.Init(); err != nil {
		return fmt.Errorf("GLFW: %w (no display? set DISPLAY or run under xvfb-run)", err)
	}
	defer glfw.Terminate()
	if !glfw.VulkanSupported() {
		return fmt.Errorf("GLFW finds no Vulkan loader; %s", runtime.InstallHint)
	}
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI)
	glfw.WindowHint(glfw.Resizable, glfw.False)
	win, err := glfw.CreateWindow(c.width, c.height, "shareprefill-view", nil, nil)
	if err != nil {
		return fmt.Errorf("creating the window: %w", err)
	}
	defer win.Destroy()

	// The application's Vulkan objects, with what presenting needs; the
	// runtime computes on the same device through Adopt.
	ext, err := runtime.CreateVulkan(runtime.VulkanOptions{
		Options:            runtime.Options{Device: c.device},
		InstanceExtensions: win.GetRequiredInstanceExtensions(),
		DeviceExtensions:   []string{"VK_KHR_swapchain"},
		ApplicationName:    "shareprefill-view",
	})
	if err != nil {
		return err
	}
	defer runtime.DestroyVulkan(ext)
	qlock := &sync.Mutex{}
	ext.QueueLock = qlock

	sp, err := win.CreateWindowSurface(vk.Instance(ext.Instance), nil)
	if err != nil {
		return err
	}
	p := &presenter{ext: ext, qlock: qlock, dev: vk.Device(ext.Device), queue: vk.Queue(ext.Queue), surface: vk.SurfaceFromPointer(sp)}
	defer vk.DestroySurface(vk.Instance(ext.Instance), p.surface, nil)
	var ok vk.Bool32
	vk.GetPhysicalDeviceSurfaceSupport(vk.PhysicalDevice(ext.PhysicalDevice), ext.QueueFamily, p.surface, &ok)
	if ok == vk.False {
		return fmt.Errorf("queue family %d cannot present to the window", ext.QueueFamily)
	}

	dev, err := runtime.Adopt(ext)
	if err != nil {
		return err
	}
	v, err := viewDataFor(c, func() (*runtime.Device, error) { return dev, nil })
	dev.Close() // the model is done; the window keeps the device
	if err != nil {
		return err
	}
	if err := dumpData(c.dump, v); err != nil {
		return err
	}

	if err := p.init(c.width, c.height); err != nil {
		p.destroy()
		return err
	}
	defer p.destroy()

	layer := min(max(c.layer, 0), len(v.Layers)-1)
	frame := image.NewRGBA(image.Rect(0, 0, int(p.extent.Width), int(p.extent.Height)))
	draw := func() error {
		drawFrame(frame, v, layer)
		win.SetTitle(fmt.Sprintf("shareprefill-view: %s layer %d", v.Planner, layer))
		return p.present(frame, c.screenshot)
	}
	if c.screenshot != "" {
		return draw()
	}
	dirty := true
	win.SetKeyCallback(func(w *glfw.Window, key glfw.Key, _ int, action glfw.Action, _ glfw.ModifierKey) {
		if action == glfw.Release {
			return
		}
		switch key {
		case glfw.KeyRight, glfw.KeyJ, glfw.KeyDown, glfw.KeyPageDown:
			layer = min(layer+1, len(v.Layers)-1)
		case glfw.KeyLeft, glfw.KeyK, glfw.KeyUp, glfw.KeyPageUp:
			layer = max(layer-1, 0)
		case glfw.KeyHome:
			layer = 0
		case glfw.KeyEnd:
			layer = len(v.Layers) - 1
		case glfw.KeyQ, glfw.KeyEscape:
			w.SetShouldClose(true)
		}
		dirty = true
	})
	win.SetRefreshCallback(func(*glfw.Window) { dirty = true })
	for !win.ShouldClose() {
		if dirty {
			dirty = false
			if err := draw(); err != nil {
				return err
			}
		}
		glfw.WaitEventsTimeout(0.25)
	}
	return nil
}

func (p *presenter) init(w, h int) error {
	pd := vk.PhysicalDevice(p.ext.PhysicalDevice)
	var caps vk.SurfaceCapabilities
	if err := vkErr("vkGetPhysicalDeviceSurfaceCapabilitiesKHR", vk.GetPhysicalDeviceSurfaceCapabilities(pd, p.surface, &caps)); err != nil {
		return err
	}
	caps.Deref()
	caps.CurrentExtent.Deref()
	caps.MinImageExtent.Deref()
	caps.MaxImageExtent.Deref()
	need := vk.ImageUsageFlags(vk.ImageUsageTransferDstBit | vk.ImageUsageTransferSrcBit)
	if caps.SupportedUsageFlags&need != need {
		return fmt.Errorf("the surface's images cannot be transfer source and destination (usage 0x%x)", caps.SupportedUsageFlags)
	}
	p.extent = caps.CurrentExtent
	if p.extent.Width == 0xFFFFFFFF {
		p.extent = vk.Extent2D{Width: uint32(w), Height: uint32(h)}
	}
	if p.extent.Width == 0 || p.extent.Height == 0 {
		return fmt.Errorf("the window has no area")
	}
	var nf uint32
	vk.GetPhysicalDeviceSurfaceFormats(pd, p.surface, &nf, nil)
	formats := make([]vk.SurfaceFormat, nf)
	vk.GetPhysicalDeviceSurfaceFormats(pd, p.surface, &nf, formats)
	found := false
	for _, f := range formats {
		f.Deref()
		switch f.Format {
		case vk.FormatB8g8r8a8Unorm, vk.FormatB8g8r8a8Srgb, vk.FormatR8g8b8a8Unorm, vk.FormatR8g8b8a8Srgb:
			// Copies move bytes unconverted: the frame's sRGB-encoded
			// bytes are shown as they are with either encoding.
			if !found || f.Format == vk.FormatB8g8r8a8Unorm {
				p.format, found = f.Format, true
				p.bgra = f.Format == vk.FormatB8g8r8a8Unorm || f.Format == vk.FormatB8g8r8a8Srgb
			}
		}
	}
	if !found {
		return fmt.Errorf("the surface offers no 8-bit RGBA/BGRA format")
	}
	n := caps.MinImageCount + 1
	if caps.MaxImageCount > 0 && n > caps.MaxImageCount {
		n = caps.MaxImageCount
	}
	sci := vk.SwapchainCreateInfo{
		SType:            vk.StructureTypeSwapchainCreateInfo,
		Surface:          p.surface,
		MinImageCount:    n,
		ImageFormat:      p.format,
		ImageColorSpace:  vk.ColorSpaceSrgbNonlinear,
		ImageExtent:      p.extent,
		ImageArrayLayers: 1,
		ImageUsage:       need,
		ImageSharingMode: vk.SharingModeExclusive,
		PreTransform:     caps.CurrentTransform,
		CompositeAlpha:   vk.CompositeAlphaOpaqueBit,
		PresentMode:      vk.PresentModeFifo,
		Clipped:          vk.True,
	}
	if caps.SupportedCompositeAlpha&vk.CompositeAlphaFlags(vk.CompositeAlphaOpaqueBit) == 0 {
		sci.CompositeAlpha = vk.CompositeAlphaInheritBit
	}
	var sc vk.Swapchain
	if err := vkErr("vkCreateSwapchainKHR", vk.CreateSwapchain(p.dev, &sci, nil, &sc)); err != nil {
		return err
	}
	p.sc = sc
	var ni uint32
	vk.GetSwapchainImages(p.dev, p.sc, &ni, nil)
	p.images = make([]vk.Image, ni)
	if err := vkErr("vkGetSwapchainImagesKHR", vk.GetSwapchainImages(p.dev, p.sc, &ni, p.images)); err != nil {
		return err
	}

	cpi := vk.CommandPoolCreateInfo{SType: vk.StructureTypeCommandPoolCreateInfo,
		Flags: vk.CommandPoolCreateFlags(vk.CommandPoolCreateResetCommandBufferBit), QueueFamilyIndex: p.ext.QueueFamily}
	var pool vk.CommandPool
	if err := vkErr("vkCreateCommandPool", vk.CreateCommandPool(p.dev, &cpi, nil, &pool)); err != nil {
		return err
	}
	p.pool = pool
	cmds := make([]vk.CommandBuffer, 1)
	cai := vk.CommandBufferAllocateInfo{SType: vk.StructureTypeCommandBufferAllocateInfo, CommandPool: p.pool,
		Level: vk.CommandBufferLevelPrimary, CommandBufferCount: 1}
	if err := vkErr("vkAllocateCommandBuffers", vk.AllocateCommandBuffers(p.dev, &cai, cmds)); err != nil {
		return err
	}
	p.cmd = cmds[0]
	fci := vk.FenceCreateInfo{SType: vk.StructureTypeFenceCreateInfo}
	var fence vk.Fence
	if err := vkErr("vkCreateFence", vk.CreateFence(p.dev, &fci, nil, &fence)); err != nil {
		return err
	}
	p.fence = fence
	sci2 := vk.SemaphoreCreateInfo{SType: vk.StructureTypeSemaphoreCreateInfo}
	var acq vk.Semaphore
	if err := vkErr("vkCreateSemaphore", vk.CreateSemaphore(p.dev, &sci2, nil, &acq)); err != nil {
		return err
	}
	p.acquire = acq
	var done vk.Semaphore
	if err := vkErr("vkCreateSemaphore", vk.CreateSemaphore(p.dev, &sci2, nil, &done)); err != nil {
		return err
	}
	p.done = done

	// One host-visible, coherent buffer for the frame and the readback.
	p.size = uint64(p.extent.Width) * uint64(p.extent.Height) * 4
	bci := vk.BufferCreateInfo{SType: vk.StructureTypeBufferCreateInfo, Size: vk.DeviceSize(p.size),
		Usage:       vk.BufferUsageFlags(vk.BufferUsageTransferSrcBit | vk.BufferUsageTransferDstBit),
		SharingMode: vk.SharingModeExclusive}
	var buf vk.Buffer
	if err := vkErr("vkCreateBuffer", vk.CreateBuffer(p.dev, &bci, nil, &buf)); err != nil {
		return err
	}
	p.buf = buf
	var req vk.MemoryRequirements
	vk.GetBufferMemoryRequirements(p.dev, p.buf, &req)
	req.Deref()
	var mp vk.PhysicalDeviceMemoryProperties
	vk.GetPhysicalDeviceMemoryProperties(pd, &mp)
	mp.Deref()
	want := vk.MemoryPropertyFlags(vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit)
	idx := -1
	for i := uint32(0); i < mp.MemoryTypeCount; i++ {
		mt := mp.MemoryTypes[i]
		mt.Deref()
		if req.MemoryTypeBits&(1<<i) != 0 && mt.PropertyFlags&want == want {
			idx = int(i)
			break
		}
	}
	if idx < 0 {
		return fmt.Errorf("no host-visible coherent memory for the frame buffer")
	}
	mai := vk.MemoryAllocateInfo{SType: vk.StructureTypeMemoryAllocateInfo, AllocationSize: req.Size, MemoryTypeIndex: uint32(idx)}
	var mem vk.DeviceMemory
	if err := vkErr("vkAllocateMemory", vk.AllocateMemory(p.dev, &mai, nil, &mem)); err != nil {
		return err
	}
	p.mem = mem
	if err := vkErr("vkBindBufferMemory", vk.BindBufferMemory(p.dev, p.buf, p.mem, 0)); err != nil {
		return err
	}
	var ptr unsafe.Pointer
	if err := vkErr("vkMapMemory", vk.MapMemory(p.dev, p.mem, 0, vk.DeviceSize(p.size), 0, &ptr)); err != nil {
		return err
	}
	p.ptr = ptr
	return nil
}

func (p *presenter) destroy() {
	if p.dev == nil {
		return
	}
	vk.DeviceWaitIdle(p.dev)
	if p.ptr != nil {
		vk.UnmapMemory(p.dev, p.mem)
	}
	if p.buf != nil {
		vk.DestroyBuffer(p.dev, p.buf, nil)
	}
	if p.mem != nil {
		vk.FreeMemory(p.dev, p.mem, nil)
	}
	for _, s := range []vk.Semaphore{p.acquire, p.done} {
		if s != nil {
			vk.DestroySemaphore(p.dev, s, nil)
		}
	}
	if p.fence != nil {
		vk.DestroyFence(p.dev, p.fence, nil)
	}
	if p.pool != nil {
		vk.DestroyCommandPool(p.dev, p.pool, nil)
	}
	if p.sc != nil {
		vk.DestroySwapchain(p.dev, p.sc, nil)
	}
	p.dev = nil
}

func imageBarrier(cmd vk.CommandBuffer, img vk.Image, from, to vk.ImageLayout, srcAccess, dstAccess vk.AccessFlagBits, srcStage, dstStage vk.PipelineStageFlagBits) {
	b := vk.ImageMemoryBarrier{
		SType:               vk.StructureTypeImageMemoryBarrier,
		SrcAccessMask:       vk.AccessFlags(srcAccess),
		DstAccessMask:       vk.AccessFlags(dstAccess),
		OldLayout:           from,
		NewLayout:           to,
		SrcQueueFamilyIndex: vk.QueueFamilyIgnored,
		DstQueueFamilyIndex: vk.QueueFamilyIgnored,
		Image:               img,
		SubresourceRange:    vk.ImageSubresourceRange{AspectMask: vk.ImageAspectFlags(vk.ImageAspectColorBit), LevelCount: 1, LayerCount: 1},
	}
	vk.CmdPipelineBarrier(cmd, vk.PipelineStageFlags(srcStage), vk.PipelineStageFlags(dstStage), 0, 0, nil, 0, nil, 1, []vk.ImageMemoryBarrier{b})
}

// present shows frame (sized to the swapchain) and, when screenshot is
// set, reads the presented image back and saves it as PNG.
func (p *presenter) present(frame *image.RGBA, screenshot string) error {
	var idx uint32
	r := vk.AcquireNextImage(p.dev, p.sc, 5_000_000_000, p.acquire, nil, &idx)
	if r != vk.Success && r != vk.Suboptimal {
		return vkErr("vkAcquireNextImageKHR", r)
	}
	dst := unsafe.Slice((*byte)(p.ptr), p.size)
	copy(dst, frame.Pix)
	if p.bgra {
		for i := 0; i < len(dst); i += 4 {
			dst[i], dst[i+2] = dst[i+2], dst[i]
		}
	}
	img := p.images[idx]
	cmd := p.cmd
	if err := vkErr("vkResetCommandBuffer", vk.ResetCommandBuffer(cmd, 0)); err != nil {
		return err
	}
	bi := vk.CommandBufferBeginInfo{SType: vk.StructureTypeCommandBufferBeginInfo, Flags: vk.CommandBufferUsageFlags(vk.CommandBufferUsageOneTimeSubmitBit)}
	if err := vkErr("vkBeginCommandBuffer", vk.BeginCommandBuffer(cmd, &bi)); err != nil {
		return err
	}
	region := []vk.BufferImageCopy{{
		ImageSubresource: vk.ImageSubresourceLayers{AspectMask: vk.ImageAspectFlags(vk.ImageAspectColorBit), LayerCount: 1},
		ImageExtent:      vk.Extent3D{Width: p.extent.Width, Height: p.extent.Height, Depth: 1},
	}}
	imageBarrier(cmd, img, vk.ImageLayoutUndefined, vk.ImageLayoutTransferDstOptimal, 0, vk.AccessTransferWriteBit,
		vk.PipelineStageTopOfPipeBit, vk.PipelineStageTransferBit)
	vk.CmdCopyBufferToImage(cmd, p.buf, img, vk.ImageLayoutTransferDstOptimal, 1, region)
	last := vk.ImageLayoutTransferDstOptimal
	if screenshot != "" {
		imageBarrier(cmd, img, vk.ImageLayoutTransferDstOptimal, vk.ImageLayoutTransferSrcOptimal, vk.AccessTransferWriteBit, vk.AccessTransferReadBit,
			vk.PipelineStageTransferBit, vk.PipelineStageTransferBit)
		// The buffer's frame was consumed by the copy above (same stage,
		// ordered by the barrier); overwrite it with the image's content.
		bb := vk.BufferMemoryBarrier{SType: vk.StructureTypeBufferMemoryBarrier, SrcAccessMask: vk.AccessFlags(vk.AccessTransferReadBit),
			DstAccessMask: vk.AccessFlags(vk.AccessTransferWriteBit), SrcQueueFamilyIndex: vk.QueueFamilyIgnored, DstQueueFamilyIndex: vk.QueueFamilyIgnored,
			Buffer: p.buf, Size: vk.DeviceSize(vk.WholeSize)}
		vk.CmdPipelineBarrier(cmd, vk.PipelineStageFlags(vk.PipelineStageTransferBit), vk.PipelineStageFlags(vk.PipelineStageTransferBit), 0, 0, nil, 1, []vk.BufferMemoryBarrier{bb}, 0, nil)
		vk.CmdCopyImageToBuffer(cmd, img, vk.ImageLayoutTransferSrcOptimal, p.buf, 1, region)
		last = vk.ImageLayoutTransferSrcOptimal
	}
	imageBarrier(cmd, img, last, vk.ImageLayoutPresentSrc, vk.AccessTransferWriteBit|vk.AccessTransferReadBit, 0,
		vk.PipelineStageTransferBit, vk.PipelineStageBottomOfPipeBit)
	if err := vkErr("vkEndCommandBuffer", vk.EndCommandBuffer(cmd)); err != nil {
		return err
	}
	si := []vk.SubmitInfo{{
		SType:                vk.StructureTypeSubmitInfo,
		WaitSemaphoreCount:   1,
		PWaitSemaphores:      []vk.Semaphore{p.acquire},
		PWaitDstStageMask:    []vk.PipelineStageFlags{vk.PipelineStageFlags(vk.PipelineStageTransferBit)},
		CommandBufferCount:   1,
		PCommandBuffers:      []vk.CommandBuffer{cmd},
		SignalSemaphoreCount: 1,
		PSignalSemaphores:    []vk.Semaphore{p.done},
	}}
	p.qlock.Lock()
	r = vk.QueueSubmit(p.queue, 1, si, p.fence)
	if r == vk.Success {
		pi := vk.PresentInfo{
			SType:              vk.StructureTypePresentInfo,
			WaitSemaphoreCount: 1,
			PWaitSemaphores:    []vk.Semaphore{p.done},
			SwapchainCount:     1,
			PSwapchains:        []vk.Swapchain{p.sc},
			PImageIndices:      []uint32{idx},
		}
		pr := vk.QueuePresent(p.queue, &pi)
		if pr != vk.Success && pr != vk.Suboptimal {
			r = pr
		}
	}
	p.qlock.Unlock()
	if err := vkErr("vkQueueSubmit/vkQueuePresentKHR", r); err != nil {
		return err
	}
	fences := []vk.Fence{p.fence}
	if err := vkErr("vkWaitForFences", vk.WaitForFences(p.dev, 1, fences, vk.True, 30_000_000_000)); err != nil {
		return err
	}
	vk.ResetFences(p.dev, 1, fences)
	if screenshot == "" {
		return nil
	}
	out := image.NewRGBA(frame.Rect)
	copy(out.Pix, unsafe.Slice((*byte)(p.ptr), p.size))
	if p.bgra {
		for i := 0; i < len(out.Pix); i += 4 {
			out.Pix[i], out.Pix[i+2] = out.Pix[i+2], out.Pix[i]
		}
	}
	return writePNG(screenshot, out)
}
