package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// Profile is where the time of one traced call went (runtime.Trace): GPU time
// per kind of work (kernels.Category), GPU busy and idle, host waits and
// submissions. Times are in milliseconds.
type Profile struct {
	WallMs     float64            `json:"wall_ms"`
	GPUBusyMs  float64            `json:"gpu_busy_ms"`
	GPUIdleMs  float64            `json:"gpu_idle_ms"`
	GPUBusyPct float64            `json:"gpu_busy_pct"` // GPU busy / wall
	HostWaitMs float64            `json:"host_wait_ms"`
	Submits    int                `json:"submits"`
	Waits      int                `json:"waits"`
	Commands   int                `json:"commands"`
	ByKindMs   map[string]float64 `json:"by_kind_ms"`
	HasGPU     bool               `json:"has_gpu_timestamps"`
}

// ProfileOf summarises a trace.
func ProfileOf(t *runtime.Trace) Profile {
	s := t.Summary(kernels.Category)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	p := Profile{WallMs: ms(s.Wall), GPUBusyMs: ms(s.GPUBusy), GPUIdleMs: ms(s.GPUIdle), HostWaitMs: ms(s.HostWait),
		Submits: s.Submits, Waits: s.Waits, Commands: s.Commands, ByKindMs: map[string]float64{}, HasGPU: s.HasGPU}
	if s.Wall > 0 {
		p.GPUBusyPct = 100 * float64(s.GPUBusy) / float64(s.Wall)
	}
	for k, v := range s.ByCategory {
		p.ByKindMs[k] = ms(v)
	}
	return p
}

// tracedPrefill runs one prefill of ids on a fresh cache with a trace
// attached and returns its profile; with file set it also writes the trace
// there in the Chrome trace-event format.
func tracedPrefill(ctx context.Context, m *shareprefill.Model, ids []int, file string) (Profile, error) {
	tr := runtime.NewTrace()
	if err := m.SetTrace(tr); err != nil {
		return Profile{}, err
	}
	defer m.SetTrace(nil)
	if err := m.Reset(); err != nil {
		return Profile{}, err
	}
	if _, err := m.Prefill(ctx, ids); err != nil {
		return Profile{}, fmt.Errorf("traced prefill: %w", err)
	}
	if file != "" {
		if err := writeTrace(tr, file); err != nil {
			return Profile{}, err
		}
	}
	return ProfileOf(tr), nil
}

// profileTable lists the profiles of rows that have one.
func profileTable(rows []PrefillRow) *Table {
	kinds := []string{"matmul", "attention", "estimate", "plan", "pivot-map", "copy", "other"}
	t := &Table{Title: "Where the prefill time goes (one traced run per cell)",
		Header: append([]string{"method", "n", "wall ms", "GPU busy %", "GPU idle ms", "host waits", "submits"}, kinds...)}
	for _, r := range rows {
		p := r.Profile
		if p == nil {
			continue
		}
		cells := []string{r.Method, fmt.Sprint(r.N), f(p.WallMs, 2), f(p.GPUBusyPct, 0), f(p.GPUIdleMs, 2), fmt.Sprint(p.Waits), fmt.Sprint(p.Submits)}
		for _, k := range kinds {
			cells = append(cells, f(p.ByKindMs[k], 2))
		}
		t.Add(cells...)
	}
	t.Foot = "GPU times from per-dispatch timestamps (ms, summed per kind: kernels.Category); GPU busy = union of dispatch intervals / wall; idle = gaps between dispatches on the GPU clock"
	if len(t.Rows) == 0 {
		return nil
	}
	return t
}

// writeTrace writes t to file in the Chrome trace-event format.
func writeTrace(t *runtime.Trace, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	if err := t.WriteChrome(f); err != nil {
		f.Close()
		return fmt.Errorf("trace %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("trace %s: %w", file, err)
	}
	return nil
}
