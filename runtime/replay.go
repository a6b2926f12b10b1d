package runtime

import (
	"context"
	"fmt"
	"time"

	vk "github.com/vulkan-go/vulkan"
)

// Replay is a batch of commands recorded once and submitted any number of
// times: a reusable command buffer with its descriptor sets. Recording costs
// host time per command (descriptor sets, hazard tracking, the driver's
// command encoding); a replayed batch costs one submission however many
// commands it holds.
//
// Everything that changes between submissions must reach the commands
// through memory, never through push constants or workgroup counts fixed at
// recording: the usual way is a CopyFromHost from a HostBuffer that the host
// rewrites before each Submit, recorded first, and kernels that read their
// per-submission parameters (a position, a length) from the copied tensor.
// The tensors the commands use must stay allocated until the recording is
// dropped (Record again, Reset or Release).
//
// Each submission begins with a full barrier, so it sees everything that
// earlier submissions to the device wrote (of any recorder), and a recorder
// that submits after it begins with one too. A Replay is not safe for
// concurrent use.
type Replay struct {
	r        *Recorder
	recorded bool
	commands int
}

// replayBatchBase is the first batch number of a Replay's submissions, so
// that a trace shared with ordinary recorders (whose batches count from 1)
// keeps them apart.
const replayBatchBase = 1 << 40

// NewReplay makes an empty Replay. Release it when done.
func (d *Device) NewReplay() (*Replay, error) {
	r, err := d.NewRecorder()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	r.replay = true
	r.seq = replayBatchBase
	return &Replay{r: r}, nil
}

// Record drops the previous recording (after waiting for a submission still
// in flight) and records fn into the batch. fn records on r as on any
// recorder but must not Submit, Flush or Wait on it. Device counters count
// the commands recorded here, once; later submissions record nothing. After
// an error nothing is recorded.
func (p *Replay) Record(fn func(r *Recorder) error) error {
	r := p.r
	if err := p.drop(context.Background()); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := r.begin(); err != nil {
		r.abort()
		return fmt.Errorf("replay: %w", err)
	}
	if err := fn(r); err != nil {
		r.abort()
		return err
	}
	if r.err != nil {
		err := r.err
		r.abort()
		return err
	}
	if !r.recording {
		return fmt.Errorf("replay: the recording was submitted or dropped while being recorded")
	}
	f := r.frames[r.cur]
	if err := check("vkEndCommandBuffer", vk.EndCommandBuffer(f.cmd)); err != nil {
		r.abort()
		return fmt.Errorf("replay: %w", err)
	}
	r.called(1)
	if r.trace != nil && !r.recStart.IsZero() {
		r.trace.host("record", r.seq+1, r.count, r.recStart, time.Now())
	}
	r.recording = false
	p.commands = r.count
	f.what = fmt.Sprintf("replay of %d commands", r.count)
	r.count = 0
	p.recorded = true
	return nil
}

// drop waits for a submission in flight (ctx) and forgets the recording.
func (p *Replay) drop(ctx context.Context) error {
	if err := p.r.WaitContext(ctx); err != nil {
		return err
	}
	p.recorded, p.commands = false, 0
	if r := p.r; !r.recording {
		r.resetFrame(r.frames[r.cur])
	}
	return nil
}

// Recorded reports whether a recording is ready to be submitted.
func (p *Replay) Recorded() bool { return p.recorded }

// Commands is the number of commands (dispatches and copies) recorded.
func (p *Replay) Commands() int { return p.commands }

// Reset waits for a submission in flight and drops the recording; the next
// Record starts afresh. It returns ctx.Err() (keeping the recording) when ctx
// is done first.
func (p *Replay) Reset(ctx context.Context) error { return p.drop(ctx) }

// Submit runs the recorded batch once and waits for it. When ctx is done
// first it returns ctx.Err() with the batch still running: the host must not
// touch what the batch uses (its host buffers) before a later Wait, Submit,
// Record or Reset, each of which waits for it first.
func (p *Replay) Submit(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	return p.r.WaitContext(ctx)
}

// Start submits the recorded batch once and returns without waiting for it
// (after waiting for this Replay's previous submission, if still in
// flight). The batch begins with a full barrier, so it runs after every
// earlier submission to the device: two Replays started one after the other
// form a pipeline in which the second reads what the first wrote, while the
// host prepares a third. The host must not touch what the batch uses before
// Wait (or a later Start, Submit, Record or Reset) returns.
func (p *Replay) Start(ctx context.Context) error {
	r := p.r
	if !p.recorded {
		return fmt.Errorf("replay: nothing recorded")
	}
	if err := r.WaitContext(ctx); err != nil {
		return err
	}
	f := r.frames[r.cur]
	d := r.d
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("replay: device is closed")
	}
	t0 := time.Now()
	err := d.submit(f.cmd, f.fence, f.what)
	d.mu.Unlock()
	if r.trace != nil {
		r.trace.host("submit", r.seq+1, p.commands, t0, time.Now())
	}
	if err != nil {
		return err
	}
	r.seq++
	f.inflight, f.seq = true, r.seq
	return nil
}

// Wait waits for a submission in flight, if any (after a Submit whose
// context was done first). Timings then reports its dispatches.
func (p *Replay) Wait(ctx context.Context) error { return p.r.WaitContext(ctx) }

// Busy reports whether a submission may still be running.
func (p *Replay) Busy() bool { return p.r.Busy() }

// SetTrace makes later recordings and submissions log into t (nil: stop),
// as Recorder.SetTrace. GPU timestamps are part of a recording: a recording
// made without them is dropped, so that the next Record adds them.
func (p *Replay) SetTrace(t *Trace) error {
	prof := p.r.profile
	p.r.SetTrace(t)
	if p.r.profile != prof {
		return p.drop(context.Background())
	}
	return nil
}

// Timings are the per-dispatch GPU times of the last completed submission
// (profiling only), as Recorder.Timings.
func (p *Replay) Timings() []Timing { return p.r.Timings() }

// Release waits for a submission in flight and frees the Replay's Vulkan
// objects.
func (p *Replay) Release() {
	if p.r != nil {
		p.r.Release()
		p.recorded = false
	}
}

// beginReusable begins recording cmd for any number of submissions (one at
// a time).
func beginReusable(cmd vk.CommandBuffer) error {
	if err := check("vkResetCommandBuffer", vk.ResetCommandBuffer(cmd, 0)); err != nil {
		return err
	}
	bi := vk.CommandBufferBeginInfo{SType: vk.StructureTypeCommandBufferBeginInfo}
	return check("vkBeginCommandBuffer", vk.BeginCommandBuffer(cmd, &bi))
}
