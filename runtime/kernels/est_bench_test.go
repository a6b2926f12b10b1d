package kernels

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestEstTiming reports GPU times of the estimation and block-map kernels at
// a realistic shape (Llama-3-8B heads). It runs only with
// SHAREPREFILL_EST_TIMING=<S> (e.g. 32768); it checks nothing but the
// row sums of the results.
func TestEstTiming(t *testing.T) {
	sv := os.Getenv("SHAREPREFILL_EST_TIMING")
	if sv == "" {
		t.Skip("set SHAREPREFILL_EST_TIMING=<S> to time the estimation kernels")
	}
	S, err := strconv.Atoi(sv)
	if err != nil {
		t.Fatal(err)
	}
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	p := EstParams{S: S, B: 128, Hq: 32, Hkv: 8, D: 128}
	nb := p.NB()
	q := upload(t, d, runtime.F16, gputest.Normal(rng, p.S*p.Hq*p.D, 1))
	k := upload(t, d, runtime.F16, gputest.Normal(rng, p.S*p.Hkv*p.D, 1))
	ws := estWorkspace(t, d, p)
	v, s := empty(t, d, runtime.F32, p.Hq*p.S), empty(t, d, runtime.F32, p.Hq*p.S)
	vb, sb := empty(t, d, runtime.F32, p.Hq*nb), empty(t, d, runtime.F32, p.Hq*nb)
	a := empty(t, d, runtime.F32, p.Hq*nb)
	m := empty(t, d, runtime.F32, p.Hq*nb*nb)
	counts := empty(t, d, runtime.I32, 2*p.Hq)
	lse := upload(t, d, runtime.F32, make([]float32, p.Hq*p.S)) // values irrelevant for timing
	heads := empty(t, d, runtime.I32, 1)
	if err := heads.UploadI32([]int32{3}); err != nil {
		t.Fatal(err)
	}
	bm := empty(t, d, runtime.F32, nb*nb)
	for rep := 0; rep < 2; rep++ {
		r, err := d.NewRecorder()
		if err != nil {
			t.Fatal(err)
		}
		r.EnableProfiling()
		err = LastBlockEstimates(r, ws, v, s, vb, sb, q, k, p)
		if err == nil {
			err = CoverCounts(r, ws, counts, v, s, 0.9, p)
		}
		if err == nil {
			err = PooledEstimate(r, ws, a, q, k, p)
		}
		if err == nil {
			err = PooledBlockScores(r, ws, m, q, k, p)
		}
		if err == nil {
			err = BlockMap(r, bm, q, k, lse, heads, p)
		}
		if err == nil {
			err = r.Submit()
		}
		if err != nil {
			r.Release()
			t.Fatal(err)
		}
		if rep == 1 {
			var total float64
			for _, tm := range r.Timings() {
				t.Logf("%-16s %9.3f ms", tm.Label, tm.Nanos/1e6)
				total += tm.Nanos
			}
			t.Logf("S=%d Hq=%d Hkv=%d D=%d B=%d: total %.3f ms (block map: 1 head)", p.S, p.Hq, p.Hkv, p.D, p.B, total/1e6)
		}
		r.Release()
	}
	checkRowSums(t, "v", download(t, v), p.S, func(int) int { return p.S }, 1e-4)
	checkRowSums(t, "s", download(t, s), p.S, func(int) int { return p.S }, 1e-4)
	checkRowSums(t, "M", download(t, m), nb, func(r int) int { return r%nb + 1 }, 1e-4)
	c, err := counts.DownloadI32()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counts (k_v, k_s) of heads 0..3: %v", c[:8])
}

// TestCoverTiming reports the GPU time of every CoverCounts variant the
// device can run at Hq = 8 (bench-lm-8k's heads) and length
// SHAREPREFILL_COVER_TIMING=<S> (e.g. 8192), on two inputs: heavy-tailed
// random distributions (few entries in the crossing exponent bin) and
// near-uniform ones (the crossing bin holds most entries: est_cover_hist's
// slow case). It checks each variant's counts against the float64
// reference (one off where a prefix sum lies within rounding of γ·Σx).
func TestCoverTiming(t *testing.T) {
	sv := os.Getenv("SHAREPREFILL_COVER_TIMING")
	if sv == "" {
		t.Skip("set SHAREPREFILL_COVER_TIMING=<S> to time the cover kernels")
	}
	S, err := strconv.Atoi(sv)
	if err != nil {
		t.Fatal(err)
	}
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const hq, reps, gamma = 8, 5, 0.9
	p := EstParams{S: S, B: 128, Hq: hq, Hkv: hq, D: 1}
	ws := estWorkspace(t, d, p)
	counts := empty(t, d, runtime.I32, 2*hq)
	for _, in := range []struct {
		name  string
		sigma float64
	}{{"heavy-tailed", 3}, {"near-uniform", 0.1}} {
		x := make([]float32, 2*hq*S)
		for r := 0; r < 2*hq; r++ {
			row := x[r*S : (r+1)*S]
			var sum float64
			for i := range row {
				row[i] = float32(math.Exp(in.sigma * rng.NormFloat64()))
				sum += float64(row[i])
			}
			for i := range row {
				row[i] = float32(float64(row[i]) / sum)
			}
		}
		v, s := upload(t, d, runtime.F32, x[:hq*S]), upload(t, d, runtime.F32, x[hq*S:])
		for _, variant := range []string{"sg", "hist", "probes", "bins"} {
			if !variantUsable("cover", variant, d.Caps()) {
				continue
			}
			r, err := d.NewRecorder()
			if err != nil {
				t.Fatal(err)
			}
			r.EnableProfiling()
			for i := 0; i < reps+1 && err == nil; i++ {
				err = coverCounts(r, coverCfg{variant: variant}, ws, counts, v, s, gamma, p)
			}
			if err == nil {
				err = r.Submit()
			}
			if err != nil {
				r.Release()
				t.Fatalf("%s: %v", variant, err)
			}
			var tm []float64 // the dispatches' (not the counters' zeroing)
			for _, e := range r.Timings() {
				if strings.Contains(e.Label, "est_cover") {
					tm = append(tm, e.Nanos)
				}
			}
			r.Release()
			if len(tm) != reps+1 {
				t.Fatalf("%s: %d timings, want %d", variant, len(tm), reps+1)
			}
			tm = tm[1:] // the first is a warm-up
			best, sum := slices.Min(tm), 0.0
			for _, e := range tm {
				sum += e
			}
			t.Logf("%s S=%d Hq=%d %-7s: best %7.1f µs, mean %7.1f µs over %d", in.name, S, hq, variant, best/1e3, sum/1e3/float64(len(tm)), len(tm))
			got, err := counts.DownloadI32()
			if err != nil {
				t.Fatal(err)
			}
			for h := 0; h < hq; h++ {
				for w, row := range [][]float32{x[h*S : (h+1)*S], x[(hq+h)*S : (hq+h+1)*S]} {
					want := RefCoverCount(gputest.F64(row), gamma)
					if g := int(got[2*h+w]); g != want && !(abs(g-want) == 1 && refCoverAmbiguous(gputest.F64(row), gamma, 1e-6)) {
						t.Errorf("%s %s head %d vec %d: count %d, want %d", in.name, variant, h, w, g, want)
					}
				}
			}
		}
	}
}
