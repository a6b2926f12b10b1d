package kernels

import (
	"os"
	"strconv"
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
