package runtime

import (
	"fmt"
	"math"
	"sort"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
	"github.com/x448/float16"
)

// DType is the element type of a tensor.
//
// Besides the plain types, a DType may be one of ggml's block-quantized
// types (Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K): a row of such a tensor (its
// innermost dimension) is a whole number of blocks of BlockElems elements
// stored in BlockBytes bytes each, byte for byte as in a GGUF file, so that
// a GGUF tensor's data uploads unchanged. Elements of a quantized type have
// no byte size of their own: sizes come from RowBytes.
type DType uint8

// Element types.
const (
	F32 DType = iota
	F16
	BF16
	I32
	U32
	U8

	// Q8_0 is ggml's block_q8_0: 32 elements in 34 bytes, an f16 scale d
	// and 32 int8 quants q; x = d·q.
	Q8_0
	// Q4_0 is ggml's block_q4_0: 32 elements in 18 bytes, an f16 scale d
	// and 16 bytes whose low nibbles are elements 0–15 and high nibbles
	// elements 16–31; x = d·(q−8).
	Q4_0
	// Q5_0 is ggml's block_q5_0: 32 elements in 22 bytes, an f16 scale d,
	// a little-endian uint32 of fifth bits (bit i for element i), then
	// nibbles as in Q4_0; x = d·(q−16).
	Q5_0
	// Q4_K is ggml's block_q4_K: 256 elements in 144 bytes, f16 d and
	// dmin, 12 bytes of eight 6-bit group scales and mins, then 128 bytes
	// of nibbles (bytes 32c…32c+31 hold group 2c in the low and 2c+1 in
	// the high nibbles); x = (d·sc)·q − dmin·m.
	Q4_K
	// Q5_K is ggml's block_q5_K: Q4_K's head (16 bytes), 32 bytes of fifth
	// bits (bit g of byte e for element e of group g), then Q4_K's 128
	// nibble bytes: 256 elements in 176 bytes.
	Q5_K
	// Q6_K is ggml's block_q6_K: 256 elements in 210 bytes, 128 bytes of
	// low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one per
	// 16 elements), then an f16 d; x = (d·sc)·(q−32).
	Q6_K
)

// quantTypes are the block-quantized types, in declaration order.
var quantTypes = []DType{Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K}

// QuantizedTypes returns the block-quantized types, in declaration order
// (a fresh slice).
func QuantizedTypes() []DType { return append([]DType(nil), quantTypes...) }

// Size is the size of one element in bytes. It is 0 for a block-quantized
// type, whose elements have no whole-byte size (use RowBytes).
func (d DType) Size() int {
	switch d {
	case F16, BF16:
		return 2
	case U8:
		return 1
	case F32, I32, U32:
		return 4
	}
	return 0
}

// IsQuantized reports whether d is a block-quantized type.
func (d DType) IsQuantized() bool { return d.BlockElems() > 1 }

// BlockElems is the number of elements of one block: 32 for Q8_0, Q4_0 and
// Q5_0, 256 for the K-quants, 1 for the plain types, 0 for an unknown
// DType.
func (d DType) BlockElems() int {
	switch d {
	case Q8_0, Q4_0, Q5_0:
		return 32
	case Q4_K, Q5_K, Q6_K:
		return 256
	}
	if d.Size() > 0 {
		return 1
	}
	return 0
}

// BlockBytes is the size of one block in bytes (the element size for the
// plain types, 0 for an unknown DType).
func (d DType) BlockBytes() int {
	switch d {
	case Q8_0:
		return 34
	case Q4_0:
		return 18
	case Q5_0:
		return 22
	case Q4_K:
		return 144
	case Q5_K:
		return 176
	case Q6_K:
		return 210
	}
	return d.Size()
}

// RowBytes returns the bytes that k consecutive elements of type d occupy
// (a row of k elements). It is an error when d is unknown, when k is
// negative or not a whole number of blocks, or when the size overflows an
// int.
func (d DType) RowBytes(k int) (int, error) {
	be, bb := d.BlockElems(), d.BlockBytes()
	if be == 0 {
		return 0, fmt.Errorf("row of %d elements: unknown dtype %s", k, d)
	}
	if k < 0 {
		return 0, fmt.Errorf("row of %d %s elements: negative length", k, d)
	}
	if k%be != 0 {
		return 0, fmt.Errorf("row of %d %s elements: not a whole number of %d-element blocks", k, d, be)
	}
	if k/be > math.MaxInt/bb {
		return 0, fmt.Errorf("row of %d %s elements: the byte count overflows", k, d)
	}
	return k / be * bb, nil
}

// String gives the type's lower-case name: "f32", "f16", …, "q8_0",
// "q4_k".
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	case I32:
		return "i32"
	case U32:
		return "u32"
	case U8:
		return "u8"
	case Q8_0:
		return "q8_0"
	case Q4_0:
		return "q4_0"
	case Q5_0:
		return "q5_0"
	case Q4_K:
		return "q4_k"
	case Q5_K:
		return "q5_k"
	case Q6_K:
		return "q6_k"
	}
	return fmt.Sprintf("dtype(%d)", d)
}

// elemBytes returns the bytes of n elements of d starting at element off
// (byte offset and size). For a quantized type both must be whole blocks.
func (d DType) elemBytes(off, n uint64) (boff, size uint64, err error) {
	be, bb := uint64(d.BlockElems()), uint64(d.BlockBytes())
	if be == 0 {
		return 0, 0, fmt.Errorf("unknown dtype %s", d)
	}
	if off%be != 0 || n%be != 0 {
		return 0, 0, fmt.Errorf("elements [%d, %d) of %s are not whole %d-element blocks", off, off+n, d, be)
	}
	return off / be * bb, n / be * bb, nil
}

// block is one VkDeviceMemory with one VkBuffer spanning it; tensors are
// sub-allocated from it with a first-fit free list.
type block struct {
	id     int
	mem    vk.DeviceMemory
	buf    vk.Buffer
	size   uint64
	free   []span // sorted by offset, coalesced
	used   uint64
	mapped unsafe.Pointer // non-nil when host visible and mapped
}

type span struct{ off, size uint64 }

func (b *block) alloc(size, align uint64) (uint64, bool) {
	for i, s := range b.free {
		start := (s.off + align - 1) / align * align
		if start+size > s.off+s.size {
			continue
		}
		// Split s into [s.off,start) and [start+size, end).
		end := s.off + s.size
		var repl []span
		if start > s.off {
			repl = append(repl, span{s.off, start - s.off})
		}
		if start+size < end {
			repl = append(repl, span{start + size, end - start - size})
		}
		b.free = append(b.free[:i], append(repl, b.free[i+1:]...)...)
		b.used += size
		return start, true
	}
	return 0, false
}

func (b *block) release(off, size uint64) {
	b.used -= size
	i := sort.Search(len(b.free), func(i int) bool { return b.free[i].off > off })
	b.free = append(b.free, span{})
	copy(b.free[i+1:], b.free[i:])
	b.free[i] = span{off, size}
	// Coalesce with neighbours.
	if i+1 < len(b.free) && b.free[i].off+b.free[i].size == b.free[i+1].off {
		b.free[i].size += b.free[i+1].size
		b.free = append(b.free[:i+1], b.free[i+2:]...)
	}
	if i > 0 && b.free[i-1].off+b.free[i-1].size == b.free[i].off {
		b.free[i-1].size += b.free[i].size
		b.free = append(b.free[:i], b.free[i+1:]...)
	}
}

// allocator hands out device-local ranges from large blocks.
type allocator struct {
	d         *Device
	blocks    []*block
	nextID    int
	blockSize uint64
	align     uint64
	allocated uint64 // bytes of VkDeviceMemory held
}

func findMemoryType(mp *vk.PhysicalDeviceMemoryProperties, bits uint32, want, avoid vk.MemoryPropertyFlagBits) (uint32, bool) {
	for i := uint32(0); i < mp.MemoryTypeCount; i++ {
		t := mp.MemoryTypes[i]
		t.Deref()
		if bits&(1<<i) == 0 {
			continue
		}
		f := vk.MemoryPropertyFlagBits(t.PropertyFlags)
		if f&want == want && f&avoid == 0 {
			return i, true
		}
	}
	return 0, false
}

// newBuffer creates a buffer with storage, transfer and indirect usage and memory of the
// wanted properties bound to it.
func (d *Device) newBuffer(size uint64, want []vk.MemoryPropertyFlagBits, what string) (vk.Buffer, vk.DeviceMemory, uint32, error) {
	if d.info.MaxBufferSize > 0 && size > d.info.MaxBufferSize {
		return nil, nil, 0, fmt.Errorf("allocating %s of %s: larger than the device's maxBufferSize %s", what, fmtBytes(size), fmtBytes(d.info.MaxBufferSize))
	}
	// Indirect: kernels may read their workgroup counts from any buffer
	// (Recorder.DispatchIndirect).
	usage := vk.BufferUsageFlags(vk.BufferUsageStorageBufferBit | vk.BufferUsageTransferSrcBit | vk.BufferUsageTransferDstBit |
		vk.BufferUsageIndirectBufferBit)
	bci := vk.BufferCreateInfo{
		SType:       vk.StructureTypeBufferCreateInfo,
		Size:        vk.DeviceSize(size),
		Usage:       usage,
		SharingMode: vk.SharingModeExclusive,
	}
	var buf vk.Buffer
	if err := check("vkCreateBuffer", vk.CreateBuffer(d.dev, &bci, nil, &buf)); err != nil {
		return nil, nil, 0, fmt.Errorf("allocating %s of %s: %w", what, fmtBytes(size), err)
	}
	var req vk.MemoryRequirements
	vk.GetBufferMemoryRequirements(d.dev, buf, &req)
	req.Deref()
	var mt uint32
	ok := false
	for _, w := range want {
		if mt, ok = findMemoryType(&d.memProps, req.MemoryTypeBits, w, 0); ok {
			break
		}
	}
	if !ok {
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, nil, 0, fmt.Errorf("allocating %s: no suitable memory type", what)
	}
	mai := vk.MemoryAllocateInfo{
		SType:           vk.StructureTypeMemoryAllocateInfo,
		AllocationSize:  req.Size,
		MemoryTypeIndex: mt,
	}
	var mem vk.DeviceMemory
	if r := vk.AllocateMemory(d.dev, &mai, nil, &mem); r != vk.Success {
		vk.DestroyBuffer(d.dev, buf, nil)
		err := check("vkAllocateMemory", r)
		return nil, nil, 0, fmt.Errorf("allocating %s of %s (device memory in use: %s of %s): %w",
			what, fmtBytes(uint64(req.Size)), fmtBytes(d.alloc.allocated), fmtBytes(d.info.DeviceLocalBytes()), err)
	}
	if err := check("vkBindBufferMemory", vk.BindBufferMemory(d.dev, buf, mem, 0)); err != nil {
		vk.FreeMemory(d.dev, mem, nil)
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, nil, 0, fmt.Errorf("allocating %s: %w", what, err)
	}
	return buf, mem, mt, nil
}

func (a *allocator) alloc(size uint64, what string) (*block, uint64, error) {
	if size == 0 {
		size = 4
	}
	size = (size + 15) &^ 15
	for _, b := range a.blocks {
		if off, ok := b.alloc(size, a.align); ok {
			return b, off, nil
		}
	}
	bs := a.blockSize
	if size > bs {
		bs = size
	}
	if lim := a.d.maxAlloc; lim > 0 && bs > lim {
		if size > lim {
			return nil, 0, fmt.Errorf("allocating %s of %s: %w: larger than the device's allocation limit %s (maxMemoryAllocationSize; override with SHAREPREFILL_VK_MAX_ALLOC)",
				what, fmtBytes(size), ErrOutOfDeviceMemory, fmtBytes(lim))
		}
		bs = lim
	}
	// Some drivers (lavapipe) allocate past the heap; fail early and clearly.
	if heap := a.d.info.DeviceLocalBytes(); heap > 0 && a.allocated+bs > heap {
		if a.allocated+size > heap {
			return nil, 0, fmt.Errorf("allocating %s of %s: %w: %s of the device's %s are in use, %s free",
				what, fmtBytes(size), ErrOutOfDeviceMemory, fmtBytes(a.allocated), fmtBytes(heap), fmtBytes(heap-min(heap, a.allocated)))
		}
		bs = size // a block of just this size still fits
	}
	buf, mem, _, err := a.d.newBuffer(bs, []vk.MemoryPropertyFlagBits{vk.MemoryPropertyDeviceLocalBit, 0}, what)
	if err != nil {
		return nil, 0, err
	}
	b := &block{id: a.nextID, mem: mem, buf: buf, size: bs, free: []span{{0, bs}}}
	a.nextID++
	a.blocks = append(a.blocks, b)
	a.allocated += bs
	off, ok := b.alloc(size, a.align)
	if !ok {
		return nil, 0, fmt.Errorf("allocating %s: internal error: fresh block too small", what)
	}
	return b, off, nil
}

// release returns a range; empty blocks are freed, except the first one.
func (a *allocator) release(b *block, off, size uint64) {
	if size == 0 {
		size = 4
	}
	size = (size + 15) &^ 15
	b.release(off, size)
	// After a timeout a dispatch may still use the block: Close frees it.
	if b.used == 0 && len(a.blocks) > 1 && !a.d.lost.Load() {
		for i, x := range a.blocks {
			if x == b {
				a.blocks = append(a.blocks[:i], a.blocks[i+1:]...)
				break
			}
		}
		vk.DestroyBuffer(a.d.dev, b.buf, nil)
		vk.FreeMemory(a.d.dev, b.mem, nil)
		a.allocated -= b.size
	}
}

func (a *allocator) destroy() {
	for _, b := range a.blocks {
		vk.DestroyBuffer(a.d.dev, b.buf, nil)
		vk.FreeMemory(a.d.dev, b.mem, nil)
	}
	a.blocks = nil
	a.allocated = 0
}

// Tensor is a typed range of device memory with a shape. Tensors are
// sub-allocated from large device-local blocks and must be released with
// Free.
type Tensor struct {
	dev   *Device
	blk   *block
	off   uint64
	bytes uint64
	dtype DType
	shape []int
	name  string
	view  bool // shares its parent's memory; Free does nothing
}

// NewTensor allocates an uninitialised tensor on the device.
//
// For a block-quantized dtype the innermost dimension is the row length,
// which must be a whole number of blocks: NewTensor(Q4_K, N, K) holds N rows
// of K/256 blocks (N·RowBytes(K) bytes), the layout of a GGUF tensor of
// ggml shape [K, N]; upload its bytes with UploadBytes.
func (d *Device) NewTensor(dt DType, shape ...int) (*Tensor, error) {
	return d.NewNamedTensor("tensor", dt, shape...)
}

// NewNamedTensor is NewTensor with a name used in error messages.
func (d *Device) NewNamedTensor(name string, dt DType, shape ...int) (*Tensor, error) {
	n := uint64(1)
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("tensor %s: negative dimension in shape %v", name, shape)
		}
		if s > 0 && n > math.MaxUint64/uint64(s) {
			return nil, fmt.Errorf("tensor %s: shape %v overflows", name, shape)
		}
		n *= uint64(s)
	}
	var bytes uint64
	switch {
	case dt.IsQuantized():
		if len(shape) == 0 {
			return nil, fmt.Errorf("tensor %s: a %s tensor needs a shape whose last dimension is the row length", name, dt)
		}
		if k := shape[len(shape)-1]; k%dt.BlockElems() != 0 {
			return nil, fmt.Errorf("tensor %s %v: rows of %d %s elements are not a whole number of %d-element blocks",
				name, shape, k, dt, dt.BlockElems())
		}
		bytes = n / uint64(dt.BlockElems()) * uint64(dt.BlockBytes())
	case dt.Size() == 0:
		return nil, fmt.Errorf("tensor %s: unknown dtype %s", name, dt)
	default:
		if s := uint64(dt.Size()); n > math.MaxUint64/s {
			return nil, fmt.Errorf("tensor %s: shape %v overflows", name, shape)
		}
		bytes = n * uint64(dt.Size())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("tensor %s: device is closed", name)
	}
	blk, off, err := d.alloc.alloc(bytes, fmt.Sprintf("tensor %s %v %s", name, shape, dt))
	if err != nil {
		return nil, err
	}
	d.ctr.allocs.Add(1)
	return &Tensor{dev: d, blk: blk, off: off, bytes: bytes, dtype: dt, shape: append([]int(nil), shape...), name: name}, nil
}

// View returns a tensor of the given shape over the parent's elements
// starting at element off. The byte offset must be a multiple of the device's
// storage-buffer alignment (Device.Alignment) so the view can be bound. A view
// shares memory with its parent: its Free does nothing, and it must not be
// used after the parent is freed. A view of a block-quantized tensor starts
// and ends on block boundaries (whole rows, typically).
func (t *Tensor) View(off int, shape ...int) (*Tensor, error) {
	if err := t.alive(); err != nil {
		return nil, err
	}
	n := uint64(1)
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("view of %s: negative dimension in %v", t.name, shape)
		}
		if s > 0 && n > math.MaxUint64/uint64(s) {
			return nil, fmt.Errorf("view of %s: shape %v overflows", t.name, shape)
		}
		n *= uint64(s)
	}
	if off < 0 || n > uint64(t.Len()) || uint64(off) > uint64(t.Len())-n {
		return nil, fmt.Errorf("view of %s: elements [%d, %d) out of its %d", t.name, off, int64(off)+int64(n), t.Len())
	}
	boff, size, err := t.dtype.elemBytes(uint64(off), n)
	if err != nil {
		return nil, fmt.Errorf("view of %s: %w", t.name, err)
	}
	if t.dtype.IsQuantized() && len(shape) > 0 && shape[len(shape)-1]%t.dtype.BlockElems() != 0 {
		return nil, fmt.Errorf("view of %s as %v: rows are not a whole number of %d-element %s blocks", t.name, shape, t.dtype.BlockElems(), t.dtype)
	}
	if (t.off+boff)%t.dev.alloc.align != 0 {
		return nil, fmt.Errorf("view of %s at element %d: byte offset not aligned to %d", t.name, off, t.dev.alloc.align)
	}
	return &Tensor{dev: t.dev, blk: t.blk, off: t.off + boff, bytes: size, dtype: t.dtype,
		shape: append([]int(nil), shape...), name: t.name, view: true}, nil
}

// Alignment is the byte alignment that tensor views and slices must respect.
func (d *Device) Alignment() uint64 { return d.alloc.align }

// Free releases the tensor's memory. Using the tensor afterwards is an error.
// Freeing a view does nothing.
func (t *Tensor) Free() {
	if t == nil || t.blk == nil {
		return
	}
	if t.view {
		return
	}
	t.dev.mu.Lock()
	if !t.dev.closed {
		t.dev.alloc.release(t.blk, t.off, t.bytes)
	}
	t.dev.mu.Unlock()
	t.blk = nil
}

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape is the tensor's shape (do not modify).
func (t *Tensor) Shape() []int { return t.shape }

// Len is the number of elements.
func (t *Tensor) Len() int {
	if be, bb := t.dtype.BlockElems(), t.dtype.BlockBytes(); bb > 0 {
		return int(t.bytes / uint64(bb) * uint64(be))
	}
	return 0
}

// Bytes is the size in bytes.
func (t *Tensor) Bytes() uint64 { return t.bytes }

// Name is the tensor's name.
func (t *Tensor) Name() string { return t.name }

func (t *Tensor) alive() error {
	if t == nil || t.blk == nil {
		return fmt.Errorf("use of a freed or nil tensor")
	}
	return nil
}

// UploadBytes copies raw bytes into the tensor at byte offset off.
func (t *Tensor) UploadBytes(data []byte, off uint64) error {
	if err := t.alive(); err != nil {
		return err
	}
	if off+uint64(len(data)) > t.bytes {
		return fmt.Errorf("upload to %s: %d bytes at offset %d exceed its %d bytes", t.name, len(data), off, t.bytes)
	}
	return t.dev.upload(t.blk.buf, t.off+off, data)
}

// DownloadBytes copies the tensor's bytes to the host.
func (t *Tensor) DownloadBytes() ([]byte, error) {
	if err := t.alive(); err != nil {
		return nil, err
	}
	out := make([]byte, t.bytes)
	if err := t.dev.download(t.blk.buf, t.off, out); err != nil {
		return nil, err
	}
	return out, nil
}

// UploadF32 converts v to the tensor's dtype (f32, f16 or bf16) and uploads it.
// len(v) must equal Len(). It is an error for other dtypes (upload the
// blocks of a quantized tensor with UploadBytes).
func (t *Tensor) UploadF32(v []float32) error {
	if t.dtype != F32 && t.dtype != F16 && t.dtype != BF16 {
		return fmt.Errorf("upload to %s: float32 data for a %s tensor (quantized tensors take their raw blocks through UploadBytes)", t.name, t.dtype)
	}
	if len(v) != t.Len() {
		return fmt.Errorf("upload to %s: %d values for %d elements", t.name, len(v), t.Len())
	}
	return t.UploadBytes(EncodeF32(v, t.dtype), 0)
}

// DownloadF32 downloads a f32, f16 or bf16 tensor as float32 values.
func (t *Tensor) DownloadF32() ([]float32, error) {
	b, err := t.DownloadBytes()
	if err != nil {
		return nil, err
	}
	return DecodeF32(b, t.dtype)
}

// UploadI32 uploads int32 values into an i32 or u32 tensor.
func (t *Tensor) UploadI32(v []int32) error {
	if t.dtype != I32 && t.dtype != U32 {
		return fmt.Errorf("upload to %s: int32 data for a %s tensor", t.name, t.dtype)
	}
	if len(v) != t.Len() {
		return fmt.Errorf("upload to %s: %d values for %d elements", t.name, len(v), t.Len())
	}
	return t.UploadBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)), 0)
}

// DownloadI32 downloads an i32 or u32 tensor.
func (t *Tensor) DownloadI32() ([]int32, error) {
	if t.dtype != I32 && t.dtype != U32 {
		return nil, fmt.Errorf("download of %s: int32 data from a %s tensor", t.name, t.dtype)
	}
	b, err := t.DownloadBytes()
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(b)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(b)), b)
	return out, nil
}

// EncodeF32 converts float32 values to the bytes of dtype dt (f32, f16 or
// bf16; f16 rounds to nearest even, bf16 rounds to nearest even).
func EncodeF32(v []float32, dt DType) []byte {
	switch dt {
	case F16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			h := float16.Fromfloat32(x).Bits()
			out[2*i] = byte(h)
			out[2*i+1] = byte(h >> 8)
		}
		return out
	case BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			h := F32ToBF16(x)
			out[2*i] = byte(h)
			out[2*i+1] = byte(h >> 8)
		}
		return out
	}
	out := make([]byte, 4*len(v))
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
	return out
}

// DecodeF32 converts bytes of dtype dt (f32, f16 or bf16) to float32.
func DecodeF32(b []byte, dt DType) ([]float32, error) {
	switch dt {
	case F16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = float16.Frombits(uint16(b[2*i]) | uint16(b[2*i+1])<<8).Float32()
		}
		return out, nil
	case BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(uint16(b[2*i])|uint16(b[2*i+1])<<8) << 16)
		}
		return out, nil
	case F32:
		out := make([]float32, len(b)/4)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(b)), b)
		return out, nil
	}
	return nil, fmt.Errorf("cannot decode %s as float32", dt)
}

// F32ToBF16 rounds a float32 to bfloat16 bits (nearest even; NaN stays NaN).
func F32ToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// RoundF16 rounds float32 values through f16 (what an f16 tensor stores).
func RoundF16(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float16.Fromfloat32(x).Float32()
	}
	return out
}

func fmtBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
