package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"
)

// Trace is a log of what recorders did (Recorder.SetTrace): on the host,
// every submission and every wait for the GPU; on the GPU, the start and end
// of every dispatch and copy, from timestamps. It summarises the log
// (Summary) and writes it as a Chrome trace-event file (WriteChrome, for
// chrome://tracing or Perfetto). A Trace is safe for concurrent use.
type Trace struct {
	mu     sync.Mutex
	origin time.Time
	hostEv []HostEvent
	gpuEv  []GPUEvent
	hasGPU bool // the device writes timestamps
}

// HostEvent is a host-side span: the recording of a batch (from its first
// command to its submission), a submission or a wait for the GPU.
type HostEvent struct {
	Kind     string        // "record", "submit" or "wait"
	Batch    uint64        // the recorder's batch number
	Commands int           // commands in the batch (submit only)
	Start    time.Duration // since the trace began
	End      time.Duration
}

// GPUEvent is the GPU execution of one recorded command.
type GPUEvent struct {
	Label string // shader name, or "copy"
	Batch uint64
	// Start and End are GPU clock nanoseconds (an arbitrary origin).
	Start, End float64
}

// NewTrace starts an empty trace; host times are measured from now.
func NewTrace() *Trace { return &Trace{origin: time.Now()} }

func (t *Trace) setPeriod(d *Device) {
	t.mu.Lock()
	t.hasGPU = t.hasGPU || d.info.TimestampValidBits > 0
	t.mu.Unlock()
}

func (t *Trace) host(kind string, batch uint64, commands int, start, end time.Time) {
	t.mu.Lock()
	t.hostEv = append(t.hostEv, HostEvent{Kind: kind, Batch: batch, Commands: commands, Start: start.Sub(t.origin), End: end.Sub(t.origin)})
	t.mu.Unlock()
}

func (t *Trace) gpu(label string, batch uint64, start, end float64) {
	t.mu.Lock()
	t.gpuEv = append(t.gpuEv, GPUEvent{Label: label, Batch: batch, Start: start, End: end})
	t.mu.Unlock()
}

// Host returns a copy of the host events in the order they happened.
func (t *Trace) Host() []HostEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.hostEv)
}

// GPU returns a copy of the GPU events in the order they completed.
func (t *Trace) GPU() []GPUEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.gpuEv)
}

// TraceSummary is what a trace adds up to.
type TraceSummary struct {
	// Wall is the host time from the first host event's start to the last
	// one's end.
	Wall time.Duration
	// Submits and Waits count the host events; HostWait is the host time
	// spent waiting for the GPU.
	Submits, Waits int
	HostWait       time.Duration
	// Records counts the batches recorded on the host and HostRecord is the
	// host time from each one's first command to its submission (a Replay
	// submitted again records nothing).
	Records    int
	HostRecord time.Duration
	// GPUSpan is the GPU clock from the first command's start to the last
	// command's end; GPUBusy is the time at least one command ran (the
	// union of the commands' intervals); GPUIdle = GPUSpan − GPUBusy.
	GPUSpan, GPUBusy, GPUIdle time.Duration
	// Commands is the number of GPU events; ByCategory sums their
	// durations per category (overlapping commands count in full).
	Commands   int
	ByCategory map[string]time.Duration
	// HasGPU is false on devices without timestamps (every GPU figure 0).
	HasGPU bool
}

// Summary adds the trace up; category maps a GPU event's label to the
// category it is counted in (nil: the label itself).
func (t *Trace) Summary(category func(label string) string) TraceSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TraceSummary{ByCategory: map[string]time.Duration{}, HasGPU: t.hasGPU, Commands: len(t.gpuEv)}
	if len(t.hostEv) > 0 {
		first, last := t.hostEv[0].Start, t.hostEv[0].End
		for _, e := range t.hostEv {
			first, last = min(first, e.Start), max(last, e.End)
			switch e.Kind {
			case "submit":
				s.Submits++
			case "wait":
				s.Waits++
				s.HostWait += e.End - e.Start
			case "record":
				s.Records++
				s.HostRecord += e.End - e.Start
			}
		}
		s.Wall = last - first
	}
	if len(t.gpuEv) == 0 {
		return s
	}
	ev := slices.Clone(t.gpuEv)
	sort.Slice(ev, func(i, j int) bool { return ev[i].Start < ev[j].Start })
	start, end := ev[0].Start, ev[0].End
	var busy float64
	curS, curE := ev[0].Start, ev[0].End
	for _, e := range ev {
		c := e.Label
		if category != nil {
			c = category(e.Label)
		}
		s.ByCategory[c] += time.Duration(e.End - e.Start)
		end = max(end, e.End)
		if e.Start > curE {
			busy += curE - curS
			curS, curE = e.Start, e.End
		} else {
			curE = max(curE, e.End)
		}
	}
	busy += curE - curS
	s.GPUSpan = time.Duration(end - start)
	s.GPUBusy = time.Duration(busy)
	s.GPUIdle = s.GPUSpan - s.GPUBusy
	return s
}

// WriteChrome writes the trace in the Chrome trace-event format: a host track
// (submissions, waits) and a GPU track (one slice per command, named by its
// label, with its batch). GPU times are placed on the host clock by the
// offset that makes the earliest-starting batch begin when it was submitted
// (a batch cannot start before its submission).
func (t *Trace) WriteChrome(w io.Writer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	type event struct {
		Name string         `json:"name"`
		Cat  string         `json:"cat"`
		Ph   string         `json:"ph"`
		TS   float64        `json:"ts"` // µs
		Dur  float64        `json:"dur"`
		PID  int            `json:"pid"`
		TID  int            `json:"tid"`
		Args map[string]any `json:"args,omitempty"`
	}
	out := struct {
		TraceEvents     []event `json:"traceEvents"`
		DisplayTimeUnit string  `json:"displayTimeUnit"`
	}{DisplayTimeUnit: "ms"}
	meta := func(tid int, name string) {
		out.TraceEvents = append(out.TraceEvents, event{Name: "thread_name", Ph: "M", PID: 1, TID: tid, Args: map[string]any{"name": name}})
	}
	meta(1, "host")
	meta(2, "GPU")
	submitted := map[uint64]float64{} // batch → host ns of its submission's end
	for _, e := range t.hostEv {
		out.TraceEvents = append(out.TraceEvents, event{
			Name: e.Kind, Cat: "host", Ph: "X", TS: us(float64(e.Start)), Dur: us(float64(e.End - e.Start)), PID: 1, TID: 1,
			Args: map[string]any{"batch": e.Batch, "commands": e.Commands},
		})
		if e.Kind == "submit" {
			submitted[e.Batch] = float64(e.End)
		}
	}
	offset, ok := 0.0, false
	for _, e := range t.gpuEv {
		if h, has := submitted[e.Batch]; has && (!ok || e.Start-h < offset) {
			offset, ok = e.Start-h, true
		}
	}
	if !ok && len(t.gpuEv) > 0 {
		offset = t.gpuEv[0].Start
	}
	for _, e := range t.gpuEv {
		out.TraceEvents = append(out.TraceEvents, event{
			Name: e.Label, Cat: "gpu", Ph: "X", TS: us(e.Start - offset), Dur: us(e.End - e.Start), PID: 1, TID: 2,
			Args: map[string]any{"batch": e.Batch},
		})
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
}

func us(ns float64) float64 { return ns / 1e3 }
