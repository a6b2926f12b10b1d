package harness

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// Stat summarises repeated timings in milliseconds.
type Stat struct {
	Median float64 `json:"median_ms"`
	P20    float64 `json:"p20_ms"`
	P80    float64 `json:"p80_ms"`
	Min    float64 `json:"min_ms"`
	N      int     `json:"reps"`
}

// Summarize computes the statistics of samples (ms). Percentiles
// interpolate linearly between order statistics.
func Summarize(ms []float64) Stat {
	if len(ms) == 0 {
		return Stat{Median: math.NaN(), P20: math.NaN(), P80: math.NaN(), Min: math.NaN()}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return Stat{Median: Percentile(s, 50), P20: Percentile(s, 20), P80: Percentile(s, 80), Min: s[0], N: len(s)}
}

// Percentile of sorted values (p in [0, 100]).
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	x := p / 100 * float64(len(sorted)-1)
	i := int(math.Floor(x))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	fr := x - float64(i)
	return sorted[i]*(1-fr) + sorted[i+1]*fr
}

// Timer runs recorded GPU work repeatedly and measures it: GPU timestamps
// around each dispatch (summed over the dispatches of one run) when the
// device has them, else the wall time of Submit. An optional flush buffer is
// filled before every run (outside the measured dispatches) to evict the L2
// cache.
type Timer struct {
	Dev    *runtime.Device
	Warmup int
	// WarmupFor extends the warm-up until this much wall time has passed
	// (0: Warmup runs only). GPUs run slow for a while after idling or
	// after fresh allocations: on an H100, matmul repetitions ran 5× slow
	// for the first 100–150 ms of a shape (bench/RESULTS.md, round 5).
	WarmupFor time.Duration
	Reps      int
	Flush     *runtime.Tensor // nil: no flush
}

// Kind is "gpu-timestamps" or "wall".
func (t *Timer) Kind() string {
	if t.Dev.Info().TimestampValidBits > 0 {
		return "gpu-timestamps"
	}
	return "wall"
}

// Time records rec Warmup+Reps times, one Submit each, and summarises the
// timed runs.
func (t *Timer) Time(rec func(r *runtime.Recorder) error) (Stat, error) {
	ms, err := t.Samples(rec)
	if err != nil {
		return Stat{}, err
	}
	return Summarize(ms), nil
}

// Samples is Time without the summary.
func (t *Timer) Samples(rec func(r *runtime.Recorder) error) ([]float64, error) {
	r, err := t.Dev.NewRecorder()
	if err != nil {
		return nil, err
	}
	defer r.Release()
	gpu := t.Kind() == "gpu-timestamps"
	if gpu {
		r.EnableProfiling()
	}
	var out []float64
	warm := t.Warmup
	if warm == 0 && t.WarmupFor > 0 {
		warm = 1
	}
	began := time.Now()
	for i := 0; i < warm+t.Reps; i++ {
		skip := 0
		if t.Flush != nil {
			if err := kernels.Fill(r, t.Flush, uint32(i)); err != nil {
				return nil, err
			}
			skip = 1
		}
		if err := rec(r); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := r.Submit(); err != nil {
			return nil, err
		}
		wall := time.Since(start)
		if i < warm {
			// Extend the warm-up run by run until WarmupFor has passed.
			if i == warm-1 && time.Since(began) < t.WarmupFor {
				warm++
			}
			continue
		}
		if !gpu {
			out = append(out, float64(wall.Nanoseconds())/1e6)
			continue
		}
		var ns float64
		tm := r.Timings()
		if len(tm) <= skip {
			return nil, fmt.Errorf("timer: %d timestamps for a run (want more than %d)", len(tm), skip)
		}
		for _, x := range tm[skip:] {
			if x.Nanos < 0 {
				return nil, fmt.Errorf("timer: invalid timestamp for %s", x.Label)
			}
			ns += x.Nanos
		}
		out = append(out, ns/1e6)
	}
	return out, nil
}

// ParseInts parses "4096,8k,16K" (k = 1024).
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		if f == "" {
			continue
		}
		mul := 1
		if strings.HasSuffix(f, "k") {
			mul, f = 1024, strings.TrimSuffix(f, "k")
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad length %q (want positive integers, k = 1024)", f)
		}
		out = append(out, v*mul)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}

// ParseFloats parses "1,0.5,0.2" with every value in [lo, hi].
func ParseFloats(s string, lo, hi float64) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < lo || v > hi || math.IsNaN(v) {
			return nil, fmt.Errorf("bad value %q (want %g ≤ x ≤ %g)", f, lo, hi)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return out, nil
}

// ParseList splits a comma-separated list of names (lower-cased, trimmed).
func ParseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}
