package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"time"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Arg is a byte range of a tensor bound to one storage-buffer binding.
type Arg struct {
	t         *Tensor
	off, size uint64
	err       error
}

// Arg binds the whole tensor.
// The range is rounded up to whole 32-bit words (allocations are padded to 16
// bytes), so shaders may read and write a tensor as 32-bit words.
func (t *Tensor) Arg() Arg { return Arg{t: t, off: 0, size: (t.bytes + 3) &^ 3} }

// Slice binds elements [off, off+n) of the tensor. off·elemsize must be a
// multiple of the device's minStorageBufferOffsetAlignment; kernels that need
// finer offsets take them as push constants instead. For a block-quantized
// tensor off and n must be whole blocks, and the byte offset is that of
// block off/BlockElems.
func (t *Tensor) Slice(off, n int) Arg {
	a := Arg{t: t}
	if off < 0 || n < 0 || off > t.Len() || n > t.Len()-off {
		a.err = fmt.Errorf("slice [%d:%d] out of range of tensor %s (%d elements)", off, off+n, t.name, t.Len())
		return a
	}
	var err error
	if a.off, a.size, err = t.dtype.elemBytes(uint64(off), uint64(n)); err != nil {
		a.err = fmt.Errorf("slice [%d:%d] of tensor %s: %w", off, off+n, t.name, err)
	} else if al := t.dev.alloc.align; (t.off+a.off)%al != 0 {
		a.err = fmt.Errorf("slice of tensor %s at element %d is not aligned to %d bytes", t.name, off, al)
	}
	return a
}

type rng struct {
	blk      int
	off, end uint64
}

func overlaps(a rng, list []rng) bool {
	for _, b := range list {
		if a.blk == b.blk && a.off < b.end && b.off < a.end {
			return true
		}
	}
	return false
}

// Timing is the GPU time of one recorded dispatch, from timestamps.
type Timing struct {
	Label string
	Nanos float64
}

// Recorder batches dispatches and copies into command buffers, inserting a
// memory barrier only where a command touches memory written (or writes memory
// read) since the last barrier.
//
// Submit runs the batch and waits for it. Flush submits without waiting, so
// that the host records the next batch while the GPU runs this one; Wait (or
// WaitContext) waits for every flushed batch at once (one host wait). A
// recorder keeps a ring of command buffers that grows as batches are flushed
// ahead, up to MaxBatchesInFlight; only past that does recording wait for the
// oldest batch. Batches run in submission order and each begins with a full
// barrier, so a batch sees everything earlier batches wrote.
//
// A Recorder is not safe for concurrent use; make one per goroutine.
type Recorder struct {
	d      *Device
	frames []*frame // the ring; grows up to MaxBatchesInFlight
	cur    int      // the frame being recorded
	seq    uint64   // submission counter (orders in-flight frames)

	recording bool
	replay    bool // the recorder of a Replay: reusable batches, no Flush
	count     int
	reads     []rng
	writes    []rng
	err       error

	// Per-dispatch state, reused so that recording a dispatch allocates
	// nothing of its own: the arguments of the one cgo call
	// (sp_record_dispatch), the hazard ranges, the pipeline bound in the
	// command buffer, the layout check of push-constant types.
	da     dispatchArgs
	rd, wr [maxKernelBindings + 1]rng
	bound  uint64
	plain  map[reflect.Type]int
	sets   setCache

	profile  bool
	userProf bool      // EnableProfiling was called (SetTrace(nil) keeps profiling then)
	recStart time.Time // when the batch being recorded began (traced recorders)
	done     []Timing  // timings of frames completed since the last Wait
	timings  []Timing
	trace    *Trace
}

// frame is one command buffer with everything its commands use: descriptor
// pools, a fence and (when profiling) a timestamp query pool.
type frame struct {
	pool     vk.CommandPool
	cmd      vk.CommandBuffer
	fence    vk.Fence
	dpools   []uint64 // VkDescriptorPool
	dpCur    int
	dpUsed   int
	qpool    vk.QueryPool
	qcap     int
	labels   []string
	inflight bool
	seq      uint64
	what     string
}

const setsPerPool = 256

// MaxBatchesInFlight is how many flushed batches a Recorder keeps in flight
// before recording waits for the oldest one.
const MaxBatchesInFlight = 64

// NewRecorder makes a recorder. Release it when done.
func (d *Device) NewRecorder() (*Recorder, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("recorder: device is closed")
	}
	r := &Recorder{d: d}
	f, err := d.newFrame()
	if err != nil {
		return nil, err
	}
	r.frames = []*frame{f}
	return r, nil
}

func (d *Device) newFrame() (*frame, error) {
	f := &frame{}
	pool, cmd, err := d.newCommandBuffer()
	f.pool, f.cmd = pool, cmd
	if err == nil {
		f.fence, err = d.newFence()
	}
	if err != nil {
		f.destroy(d)
		return nil, err
	}
	return f, nil
}

// EnableProfiling makes the recorder write GPU timestamps around each
// dispatch; Timings reports them after Submit or Wait. It is a no-op on
// devices without timestamps. Call it before recording.
func (r *Recorder) EnableProfiling() {
	if r.d.info.TimestampValidBits == 0 || r.recording {
		return
	}
	r.profile, r.userProf = true, true
}

// Release frees the recorder's Vulkan objects, after waiting for its batches
// still in flight. After a timeout or a lost device a batch may still be
// running, so the objects are handed to the device, which destroys them in
// Close after waiting for idle.
func (r *Recorder) Release() {
	d := r.d
	if d.dev == nil {
		return
	}
	if !d.isLost() {
		_ = r.wait(context.Background()) // errors leave the device lost: deferred below
	}
	if d.deferIfLost(r.destroy) {
		return
	}
	r.destroy()
}

func (r *Recorder) destroy() {
	for _, f := range r.frames {
		f.destroy(r.d)
	}
	r.sets.destroy(r.d)
	r.frames = nil
}

func (f *frame) destroy(d *Device) {
	if f.fence != nil {
		vk.DestroyFence(d.dev, f.fence, nil)
		f.fence = nil
	}
	for _, p := range f.dpools {
		d.destroyDescriptorPool(p)
	}
	f.dpools = nil
	if f.qpool != nil {
		vk.DestroyQueryPool(d.dev, f.qpool, nil)
		f.qpool = nil
	}
	if f.pool != nil {
		vk.DestroyCommandPool(d.dev, f.pool, nil)
		f.pool = nil
	}
}

func (r *Recorder) begin() error {
	if r.recording {
		return nil
	}
	f := r.frames[r.cur]
	if f.inflight {
		// The ring is full: the oldest batch must finish first.
		if err := r.complete(context.Background(), f); err != nil {
			return err
		}
	}
	begin := beginOneShot
	if r.replay {
		begin = beginReusable
	}
	if err := begin(f.cmd); err != nil {
		return err
	}
	r.called(2) // vkResetCommandBuffer, vkBeginCommandBuffer
	r.recording = true
	r.count = 0
	r.bound = 0
	r.reads, r.writes = r.reads[:0], r.writes[:0]
	if !r.replay && !r.Busy() {
		r.sets.trim(r.d) // no batch in flight uses a cached set
	}
	f.labels = f.labels[:0]
	if r.profile {
		// The query pool is made once per command buffer of the ring, before
		// the record span starts: a trace's "record" is the recording alone.
		if f.qpool == nil {
			f.qcap = 16384
			qci := vk.QueryPoolCreateInfo{
				SType:      vk.StructureTypeQueryPoolCreateInfo,
				QueryType:  vk.QueryTypeTimestamp,
				QueryCount: uint32(f.qcap),
			}
			var qp vk.QueryPool
			if err := check("vkCreateQueryPool", vk.CreateQueryPool(r.d.dev, &qci, nil, &qp)); err != nil {
				return err
			}
			f.qpool = qp
		}
	}
	if r.trace != nil {
		r.recStart = time.Now()
	}
	if r.profile {
		vk.CmdResetQueryPool(f.cmd, f.qpool, 0, uint32(f.qcap))
		r.called(1)
	}
	if r.seq > 0 {
		// Order this batch after everything submitted before it.
		r.d.cmdBarrier(f.cmd)
		r.d.ctr.barriers.Add(1)
		r.called(1)
	}
	return nil
}

// framePool returns a descriptor pool of the current frame with room for a
// set, creating one when the frame has none left; full reports that the
// pool it returned last could not allocate (out of pool memory).
func (r *Recorder) framePool(full bool) (uint64, error) {
	f := r.frames[r.cur]
	if full || f.dpUsed >= setsPerPool {
		f.dpCur++
		f.dpUsed = 0
	}
	if f.dpCur < len(f.dpools) {
		return f.dpools[f.dpCur], nil
	}
	p, err := r.d.createDescriptorPool(setsPerPool, setsPerPool*maxKernelBindings)
	if err != nil {
		return 0, err
	}
	f.dpools = append(f.dpools, p)
	f.dpCur, f.dpUsed = len(f.dpools)-1, 0
	return p, nil
}

// hazard records a barrier before a command with these reads and writes
// where it must wait for an earlier one (track).
func (r *Recorder) hazard(reads, writes []rng) {
	if r.track(reads, writes) {
		r.d.cmdBarrier(r.frames[r.cur].cmd)
		r.called(1)
	}
}

// track adds a command's reads and writes to the ranges touched since the
// last barrier and reports whether the command must wait for an earlier
// one of the batch: then it counts a barrier, which the caller records, and
// the ranges start afresh from the command's.
func (r *Recorder) track(reads, writes []rng) bool {
	need := false
	for _, a := range reads {
		need = need || overlaps(a, r.writes)
	}
	for _, a := range writes {
		need = need || overlaps(a, r.writes) || overlaps(a, r.reads)
	}
	if need {
		r.reads, r.writes = r.reads[:0], r.writes[:0]
		r.d.ctr.barriers.Add(1)
	}
	r.reads = append(r.reads, reads...)
	r.writes = append(r.writes, writes...)
	return need
}

func (r *Recorder) barrier() {
	r.d.cmdBarrier(r.frames[r.cur].cmd)
	r.d.ctr.barriers.Add(1)
	r.called(1)
	r.reads, r.writes = r.reads[:0], r.writes[:0]
}

// called counts n calls into the driver, one Vulkan function each
// (Counters.RecordCalls, VulkanCalls).
func (r *Recorder) called(n uint64) {
	r.d.ctr.cgoCalls.Add(n)
	r.d.ctr.calls.Add(n)
}

// Barrier forces a full memory barrier (normally inserted automatically).
func (r *Recorder) Barrier() error {
	if err := r.begin(); err != nil {
		return err
	}
	r.barrier()
	return nil
}

func toArg(a any) (Arg, error) {
	switch v := a.(type) {
	case *Tensor:
		if err := v.alive(); err != nil {
			return Arg{}, err
		}
		return v.Arg(), nil
	case Arg:
		if v.err != nil {
			return Arg{}, v.err
		}
		if err := v.t.alive(); err != nil {
			return Arg{}, err
		}
		return v, nil
	}
	return Arg{}, fmt.Errorf("argument of type %T is not a *Tensor or Arg", a)
}

// encodePush writes the push-constant block into r.da.push, zero-padded
// to size. A value whose Go layout is its little-endian encoding (fixed-size
// fields without padding, on a little-endian host: every push struct and
// array of the kernels) is copied as it lies in memory; anything else goes
// through encoding/binary. Both give the bytes binary.Write gives.
func (r *Recorder) encodePush(push any, size int) error {
	dst := r.da.push[:size:size]
	n := 0
	switch v := push.(type) {
	case nil:
	case []byte:
		n = len(v)
		if n > size {
			break
		}
		copy(dst, v)
	case []uint32:
		n = 4 * len(v)
		if n > size {
			break
		}
		for i, x := range v {
			binary.LittleEndian.PutUint32(dst[4*i:], x)
		}
	default:
		t := reflect.TypeOf(v)
		plain, ok := r.plain[t]
		if !ok {
			plain = -1
			// binary.Size takes a pointer's target: never copy a pointer.
			if hostLittleEndian() && t.Kind() != reflect.Pointer && binary.Size(v) == int(t.Size()) {
				plain = int(t.Size())
			}
			if r.plain == nil {
				r.plain = map[reflect.Type]int{}
			}
			r.plain[t] = plain
		}
		if plain >= 0 {
			n = plain
			if n > size {
				break
			}
			// The data word of an interface holding a value of a
			// non-pointer type points to the value.
			copy(dst, unsafe.Slice((*byte)((*[2]unsafe.Pointer)(unsafe.Pointer(&push))[1]), n))
			break
		}
		if n = binary.Size(v); n > size {
			break
		}
		if _, err := binary.Append(dst[:0], binary.LittleEndian, v); err != nil {
			return fmt.Errorf("encoding push constants %T: %w", push, err)
		}
	}
	if n > size {
		return fmt.Errorf("push constants of %d bytes exceed the kernel's %d", n, size)
	}
	clear(dst[n:])
	return nil
}

func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// Dispatch records one dispatch of k over groups workgroups. push is the
// push-constant block (a []byte, or a fixed-size value or struct encoded
// little-endian); args are *Tensor or Arg values for bindings 0..n-1.
func (r *Recorder) Dispatch(k *Kernel, groups [3]uint32, push any, args ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.dispatch(k, groups, nil, push, args)
	if err != nil {
		r.err = fmt.Errorf("dispatch %s: %w", k.desc.Shader, err)
	}
	return r.err
}

// dispatch records k over groups, or over the counts at ind when ind is not
// nil (DispatchIndirect).
func (r *Recorder) dispatch(k *Kernel, groups [3]uint32, ind *Arg, push any, args []any) error {
	if len(args) != k.desc.Bindings {
		return fmt.Errorf("%d arguments for %d bindings", len(args), k.desc.Bindings)
	}
	mc := r.d.info.MaxWorkgroupCount
	for i := 0; i < 3 && ind == nil; i++ {
		if groups[i] == 0 {
			return nil // nothing to do
		}
		if groups[i] > mc[i] {
			return fmt.Errorf("workgroup count %v exceeds the device limit %v", groups, mc)
		}
	}
	a := &r.da
	if err := r.encodePush(push, k.desc.PushSize); err != nil {
		return err
	}
	if err := r.begin(); err != nil {
		return err
	}
	reads, writes := r.rd[:0], r.wr[:0]
	maxRange := r.d.info.MaxStorageBufferRange
	var key setKey
	key.n = len(args)
	for i, x := range args {
		arg, err := toArg(x)
		if err != nil {
			return fmt.Errorf("binding %d: %w", i, err)
		}
		size := arg.size
		if size == 0 {
			size = 4
		}
		if size > maxRange {
			return fmt.Errorf("binding %d: tensor %s range of %s exceeds the device's maxStorageBufferRange %s; process it in chunks",
				i, arg.t.name, fmtBytes(size), fmtBytes(maxRange))
		}
		if arg.t.off+arg.off+size > arg.t.blk.size {
			size = arg.t.blk.size - arg.t.off - arg.off
		}
		off := arg.t.off + arg.off
		a.bufs[i], a.offs[i], a.ranges[i] = bufH(arg.t.blk.buf), off, size
		key.b[i] = setBinding{arg.t.blk.id, off, size}
		rg := rng{arg.t.blk.id, off, off + size}
		if k.desc.ReadOnly&(1<<i) != 0 {
			reads = append(reads, rg)
		} else {
			writes = append(writes, rg)
		}
	}
	a.indirect = 0
	if ind != nil {
		reads = append(reads, rng{ind.t.blk.id, ind.t.off + ind.off, ind.t.off + ind.off + ind.size})
		a.indirect, a.ibuf, a.ioff = 1, bufH(ind.t.blk.buf), ind.t.off+ind.off
	} else {
		a.g = groups
	}
	a.n, a.pushSize = uint32(len(args)), uint32(k.desc.PushSize)
	a.pipeline, a.layout, a.dsl = k.pipe, k.layout, k.dsl
	a.bindPipe = 0
	if k.pipe != r.bound {
		a.bindPipe = 1
	}
	// The descriptor set: a cached one with these bindings, or a new one
	// written by the dispatch's call (into the cache, or into the frame's
	// pools, reset when the frame completes).
	var cached bool
	a.pool, a.set = 0, 0
	if !r.replay {
		a.set, cached = r.sets.get(&key)
	}
	if !cached && !r.replay {
		var err error
		if a.pool, err = r.sets.pool(r.d); err != nil {
			return err
		}
	}
	if !cached && a.pool == 0 {
		var err error
		if a.pool, err = r.framePool(false); err != nil {
			return err
		}
	}
	barrier := r.track(reads, writes)
	a.barrier = 0
	if barrier {
		if r.profile {
			r.d.cmdBarrier(r.frames[r.cur].cmd) // before the dispatch's first timestamp
			r.called(1)
		} else {
			a.barrier = 1
		}
	}
	var err error
	r.timed(k.desc.Shader, func(f *frame) {
		for {
			res := r.d.recordDispatch(f.cmd, a)
			r.d.ctr.calls.Add(uint64(a.calls))
			r.d.ctr.cgoCalls.Add(1)
			if res != vk.ErrorOutOfPoolMemory && res != vk.ErrorFragmentedPool {
				err = check("vkAllocateDescriptorSets", res)
				return
			}
			// The pool is full: the next one (a new pool's creation error
			// is the dispatch's).
			if r.sets.owns(a.pool) {
				if a.pool, err = r.sets.next(r.d); err == nil && a.pool == 0 {
					a.pool, err = r.framePool(false)
				}
			} else {
				a.pool, err = r.framePool(true)
			}
			if err != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if a.pool != 0 {
		r.d.ctr.setWrites.Add(1)
		if !r.sets.add(&key, a.pool, a.set) {
			r.frames[r.cur].dpUsed++
		}
	}
	r.bound = k.pipe
	r.count++
	r.d.ctr.dispatches.Add(1)
	return nil
}

// Copy records a copy of src into dst (byte ranges of equal size).
func (r *Recorder) Copy(dst, src any) error {
	if r.err != nil {
		return r.err
	}
	d, err := toArg(dst)
	if err != nil {
		return err
	}
	s, err := toArg(src)
	if err != nil {
		return err
	}
	if d.size != s.size {
		return fmt.Errorf("copy: %d bytes into %d", s.size, d.size)
	}
	if err := r.begin(); err != nil {
		return err
	}
	if d.size == 0 {
		return nil
	}
	r.hazard([]rng{{s.t.blk.id, s.t.off + s.off, s.t.off + s.off + s.size}}, []rng{{d.t.blk.id, d.t.off + d.off, d.t.off + d.off + d.size}})
	r.called(1)
	r.timed("copy", func(f *frame) { r.d.cmdCopy(f.cmd, s.t.blk.buf, d.t.blk.buf, s.t.off+s.off, d.t.off+d.off, d.size) })
	r.count++
	r.d.ctr.copies.Add(1)
	return nil
}

// timed records one command, between two timestamps when profiling.
func (r *Recorder) timed(label string, cmd func(f *frame)) {
	f := r.frames[r.cur]
	q := 2 * len(f.labels)
	on := r.profile && q+2 <= f.qcap
	if on {
		vk.CmdWriteTimestamp(f.cmd, vk.PipelineStageTopOfPipeBit, f.qpool, uint32(q))
		r.called(1)
	}
	cmd(f)
	if on {
		vk.CmdWriteTimestamp(f.cmd, vk.PipelineStageBottomOfPipeBit, f.qpool, uint32(q+1))
		r.called(1)
		f.labels = append(f.labels, label)
	}
}

// Device is the recorder's device.
func (r *Recorder) Device() *Device { return r.d }

// Count is the number of commands recorded since the last Submit.
func (r *Recorder) Count() int { return r.count }

// Submit runs everything recorded and waits for it and for every earlier
// flushed batch (each wait bounded by the device's SubmitTimeout). The
// recorder is then empty and can record again.
func (r *Recorder) Submit() error { return r.SubmitContext(context.Background()) }

// SubmitContext is Submit whose wait returns ctx.Err() when ctx is done. The
// batches then keep running on the GPU: the recorder waits for them before it
// records again or is released, so their buffers must stay allocated until
// then.
func (r *Recorder) SubmitContext(ctx context.Context) error {
	if err := r.Flush(); err != nil {
		return err
	}
	return r.WaitContext(ctx)
}

// Flush submits everything recorded since the last Flush or Submit without
// waiting for it (with Options.Serialize it waits). Recording continues in a
// free command buffer of the ring; with MaxBatchesInFlight batches in flight,
// the next recorded command waits for the oldest first.
func (r *Recorder) Flush() error {
	if r.replay {
		r.abort()
		return fmt.Errorf("submit: the recorder of a Replay does not submit (Replay.Submit does)")
	}
	if r.err != nil {
		err := r.err
		r.abort()
		return err
	}
	if !r.recording {
		return nil
	}
	f := r.frames[r.cur]
	if err := check("vkEndCommandBuffer", vk.EndCommandBuffer(f.cmd)); err != nil {
		r.abort()
		return err
	}
	r.called(1)
	r.recording = false
	d := r.d
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		r.abort()
		return fmt.Errorf("submit: device is closed")
	}
	f.what = fmt.Sprintf("submit of %d commands", r.count)
	t0 := time.Now()
	if r.trace != nil && !r.recStart.IsZero() {
		r.trace.host("record", r.seq+1, r.count, r.recStart, t0)
	}
	err := d.submit(f.cmd, f.fence, f.what)
	d.mu.Unlock()
	if r.trace != nil {
		r.trace.host("submit", r.seq+1, r.count, t0, time.Now())
	}
	r.count = 0
	if err != nil {
		r.resetFrame(f)
		return err
	}
	r.seq++
	f.inflight, f.seq = true, r.seq
	next := -1
	for i, g := range r.frames {
		if !g.inflight {
			next = i
			break
		}
	}
	if next < 0 && len(r.frames) < MaxBatchesInFlight {
		if nf, err := d.newFrame(); err == nil {
			r.frames = append(r.frames, nf)
			next = len(r.frames) - 1
		}
	}
	if next < 0 { // recording waits for the oldest batch (begin)
		next = r.oldest(^uint64(0))
	}
	r.cur = next
	if d.opts.Serialize {
		return r.complete(context.Background(), f)
	}
	return nil
}

// Wait waits for every flushed batch. Timings then reports the dispatches of
// the batches completed since the previous Wait or Submit.
func (r *Recorder) Wait() error { return r.WaitContext(context.Background()) }

// WaitContext is Wait that returns ctx.Err() when ctx is done before the GPU
// finishes (see SubmitContext).
func (r *Recorder) WaitContext(ctx context.Context) error {
	r.timings = r.timings[:0]
	err := r.wait(ctx)
	r.timings = append(r.timings, r.done...)
	r.done = r.done[:0]
	return err
}

// wait completes every in-flight frame, with one host wait.
func (r *Recorder) wait(ctx context.Context) error {
	if i := r.oldest(^uint64(0)); i >= 0 {
		newest := r.frames[i]
		for _, f := range r.frames {
			if f.inflight && f.seq > newest.seq {
				newest = f
			}
		}
		return r.complete(ctx, newest)
	}
	return nil
}

// oldest returns the index of the in-flight frame with the lowest sequence
// number not above seq, or −1.
func (r *Recorder) oldest(seq uint64) int {
	best := -1
	for i, f := range r.frames {
		if f.inflight && f.seq <= seq && (best < 0 || f.seq < r.frames[best].seq) {
			best = i
		}
	}
	return best
}

// Busy reports whether a flushed batch may still be running.
func (r *Recorder) Busy() bool { return r.oldest(^uint64(0)) >= 0 }

// complete waits, with one host wait, for frame f and every frame flushed
// before it, collects their timings in submission order and recycles them.
// When ctx is done first, they stay in flight and ctx.Err() is returned.
func (r *Recorder) complete(ctx context.Context, f *frame) error {
	var fs []*frame
	for _, g := range r.frames {
		if g.inflight && g.seq <= f.seq {
			fs = append(fs, g)
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].seq < fs[j].seq })
	fences := make([]vk.Fence, len(fs))
	for i, g := range fs {
		fences[i] = g.fence
	}
	t0 := time.Now()
	err := r.d.waitFences(ctx, fences, f.what)
	if r.trace != nil {
		r.trace.host("wait", f.seq, 0, t0, time.Now())
	}
	if err != nil {
		if ctx.Err() != nil && !r.d.isLost() {
			return err
		}
		for _, g := range fs {
			g.inflight = false // the device is lost: never wait again
		}
		return err
	}
	for _, g := range fs {
		g.inflight = false
		if r.profile && len(g.labels) > 0 && err == nil {
			err = r.readTimings(g)
		}
		if !r.replay { // a Replay's descriptor sets live as long as its recording
			r.resetFrame(g)
		}
	}
	return err
}

// SetTrace makes the recorder log into t (nil: stop): every submission and
// every host wait, and on devices with timestamps the GPU start and end of
// every dispatch and copy (it turns profiling on). Call it between batches.
func (r *Recorder) SetTrace(t *Trace) {
	r.trace = t
	if t == nil {
		r.profile = r.userProf
		return
	}
	t.setPeriod(r.d)
	if r.d.info.TimestampValidBits > 0 && !r.recording {
		r.profile = true
	}
}

// Discard drops everything recorded since the last Flush (after an error in
// the middle of recording a batch). Flushed batches are not affected.
func (r *Recorder) Discard() { r.abort() }

// Ready waits until the command buffer the next command goes to is free,
// returning ctx.Err() if ctx is done first. Recording waits by itself when the
// double buffer is full; Ready lets a caller do that wait with a context.
func (r *Recorder) Ready(ctx context.Context) error {
	if f := r.frames[r.cur]; !r.recording && f.inflight {
		return r.complete(ctx, f)
	}
	return nil
}

// abort drops what is being recorded after an error.
func (r *Recorder) abort() {
	r.recording = false
	r.err = nil
	r.count = 0
	if f := r.frames[r.cur]; !f.inflight {
		r.resetFrame(f)
	}
}

// resetFrame recycles the descriptor sets of a frame that is not running.
func (r *Recorder) resetFrame(f *frame) {
	if r.d.isLost() {
		return // the descriptor sets may still be in use by a running dispatch
	}
	for _, p := range f.dpools {
		r.d.resetDescriptorPool(p)
	}
	f.dpCur, f.dpUsed = 0, 0
}

func (r *Recorder) readTimings(f *frame) error {
	n := 2 * len(f.labels)
	data := make([]uint64, n)
	res := vk.GetQueryPoolResults(r.d.dev, f.qpool, 0, uint32(n), uint(8*n), unsafe.Pointer(&data[0]), 8,
		vk.QueryResultFlags(vk.QueryResult64Bit|vk.QueryResultWaitBit))
	if err := check("vkGetQueryPoolResults", res); err != nil {
		return err
	}
	bits := r.d.info.TimestampValidBits
	mask := uint64(1)<<bits - 1
	if bits >= 64 {
		mask = ^uint64(0)
	}
	period := float64(r.d.info.TimestampPeriod)
	for i, l := range f.labels {
		a, b := data[2*i]&mask, data[2*i+1]&mask
		ns := -1.0
		if b >= a {
			ns = float64(b-a) * period
		}
		r.done = append(r.done, Timing{Label: l, Nanos: ns})
		if r.trace != nil && b >= a {
			r.trace.gpu(l, f.seq, float64(a)*period, float64(b)*period)
		}
	}
	return nil
}

// Timings are the per-dispatch GPU times of the batches completed by the
// last Submit or Wait, in submission order (profiling only); a negative
// value marks an invalid measurement.
func (r *Recorder) Timings() []Timing { return append([]Timing(nil), r.timings...) }

// Run records with fn on a fresh recorder, submits and releases it.
func (d *Device) Run(fn func(r *Recorder) error) error {
	r, err := d.NewRecorder()
	if err != nil {
		return err
	}
	defer r.Release()
	if err := fn(r); err != nil {
		r.abort()
		return err
	}
	return r.Submit()
}

// Groups1D folds n invocations of a workgroup of size local into a grid of at
// most the device's x limit: shaders compute the flat id as
// gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * local.
func (d *Device) Groups1D(n, local int) [3]uint32 {
	g := (n + local - 1) / local
	if g == 0 {
		return [3]uint32{0, 1, 1}
	}
	mx := int(d.info.MaxWorkgroupCount[0])
	if g <= mx {
		return [3]uint32{uint32(g), 1, 1}
	}
	y := (g + mx - 1) / mx
	x := (g + y - 1) / y
	return [3]uint32{uint32(x), uint32(y), 1}
}

// CopyBytes records a byte copy of n bytes from src at srcOff to dst at dstOff.
func (r *Recorder) CopyBytes(dst *Tensor, dstOff uint64, src *Tensor, srcOff uint64, n uint64) error {
	if r.err != nil {
		return r.err
	}
	if err := dst.alive(); err != nil {
		return err
	}
	if err := src.alive(); err != nil {
		return err
	}
	if dstOff+n > dst.bytes || srcOff+n > src.bytes {
		return fmt.Errorf("copy of %d bytes out of range (%s: %d+%d, %s: %d+%d)", n, src.name, srcOff, src.bytes, dst.name, dstOff, dst.bytes)
	}
	if n == 0 {
		return nil
	}
	if err := r.begin(); err != nil {
		return err
	}
	s0, d0 := src.off+srcOff, dst.off+dstOff
	r.hazard([]rng{{src.blk.id, s0, s0 + n}}, []rng{{dst.blk.id, d0, d0 + n}})
	r.called(1)
	r.timed("copy", func(f *frame) { r.d.cmdCopy(f.cmd, src.blk.buf, dst.blk.buf, s0, d0, n) })
	r.count++
	r.d.ctr.copies.Add(1)
	return nil
}
