package kernels

import (
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func TestRopeInvFreq(t *testing.T) {
	// Default: 1/theta^(2i/d).
	inv := RopeInvFreq(10000, 8, nil)
	for i, w := range []float64{1, 0.1, 0.01, 0.001} {
		if math.Abs(inv[i]-w) > 1e-15 {
			t.Errorf("default inv_freq[%d] = %v, want %v", i, inv[i], w)
		}
	}
	// Llama 3.1 8B (theta 500000, d 128, llama3 factor 8, 1, 4, 8192); values
	// from a float64 transcription of transformers' _compute_llama3_parameters.
	sc := &Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	inv = RopeInvFreq(500000, 128, sc)
	inv32 := RopeInvFreqF32(500000, 128, sc)
	for i, w := range map[int]float64{0: 1, 1: 0.8146172338565447, 20: 0.016560440080994446,
		30: 0.0013718935677611381, 35: 9.556212353964683e-05, 50: 4.411534674558404e-06, 63: 3.068925988914511e-07} {
		if math.Abs(inv[i]-w) > 1e-12*w {
			t.Errorf("llama3 inv_freq[%d] = %.17g, want %.17g", i, inv[i], w)
		}
	}
	for i := range inv {
		if e := math.Abs(float64(inv32[i])-inv[i]) / inv[i]; e > 1e-6 {
			t.Errorf("f32 llama3 inv_freq[%d] = %v, f64 %v (rel %.3g)", i, inv32[i], inv[i], e)
		}
	}
}

func TestRope(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	sc := &Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}
	type cfg struct {
		theta float64
		sc    *Llama3Scaling
		pos0  int
	}
	cfgs := []cfg{{10000, nil, 0}, {500000, sc, 37}, {500000, sc, 131000}}
	for _, dt := range opDTypes {
		for _, c := range cfgs {
			for _, m := range []int{1, 3, 17} {
				for _, hd := range []int{8, 64, 128, 256} {
					for _, heads := range []int{1, 3} {
						invv := RopeInvFreqF32(c.theta, hd, c.sc)
						xv := opRound(dt, gputest.Normal(rng, m*heads*hd, 1))
						x := opUp(t, d, dt, xv, m, heads, hd)
						inv := opUp(t, d, runtime.F32, invv)
						out := opNew(t, d, dt, m, heads, hd)
						opRun(t, d, func(r *runtime.Recorder) error { return Rope(r, out, x, inv, heads, c.pos0) }, out)
						want := RefRope(xv, invv, heads, c.pos0)
						got, err := out.DownloadF32()
						if err != nil {
							t.Fatal(err)
						}
						if e := gputest.RelErr(got, want); e > opTol(dt) {
							t.Errorf("rope %s theta %g pos0 %d M=%d heads=%d D=%d: relative error %.3g > %.3g", dt, c.theta, c.pos0, m, heads, hd, e, opTol(dt))
						}
						// In place.
						opRun(t, d, func(r *runtime.Recorder) error { return Rope(r, x, x, inv, heads, c.pos0) })
						got, err = x.DownloadF32()
						if err != nil {
							t.Fatal(err)
						}
						if e := gputest.RelErr(got, want); e > opTol(dt) {
							t.Errorf("rope in place %s pos0 %d M=%d heads=%d D=%d: relative error %.3g", dt, c.pos0, m, heads, hd, e)
						}
					}
				}
			}
		}
	}
}

// TestRopeStrided rotates q and k in place inside a fused QKV activation
// [M, (Hq + 2·Hkv)·D] and checks that v is untouched.
func TestRopeStrided(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const m, hq, hkv, hd, pos0 = 5, 4, 2, 8, 9
	w := (hq + 2*hkv) * hd
	inv := RopeInvFreqF32(10000, hd, nil)
	for _, dt := range opDTypes {
		xv := opRound(dt, gputest.Normal(rng, m*w, 1))
		x := opUp(t, d, dt, xv, m, w)
		iv := opUp(t, d, runtime.F32, inv)
		opRun(t, d, func(r *runtime.Recorder) error {
			if err := RopeStrided(r, x, x, iv, RopeParams{Rows: m, Heads: hq, Pos0: pos0, XRowStride: w, OutRowStride: w}); err != nil {
				return err
			}
			return RopeStrided(r, x, x, iv, RopeParams{Rows: m, Heads: hkv, Pos0: pos0, XRowStride: w, XOffset: hq * hd, OutRowStride: w, OutOffset: hq * hd})
		})
		got, err := x.DownloadF32()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, m*w)
		for r := 0; r < m; r++ {
			row := xv[r*w : (r+1)*w]
			q := RefRope(row[:hq*hd], inv, hq, pos0+r)
			k := RefRope(row[hq*hd:(hq+hkv)*hd], inv, hkv, pos0+r)
			copy(want[r*w:], q)
			copy(want[r*w+hq*hd:], k)
			for j := (hq + hkv) * hd; j < w; j++ {
				want[r*w+j] = float64(row[j])
			}
		}
		if e := gputest.RelErr(got, want); e > opTol(dt) {
			t.Errorf("strided rope %s: relative error %.3g", dt, e)
		}
		for r := 0; r < m; r++ {
			for j := (hq + hkv) * hd; j < w; j++ {
				if got[r*w+j] != xv[r*w+j] {
					t.Fatalf("strided rope %s: v element (%d, %d) changed", dt, r, j)
				}
			}
		}
	}
}

func TestRopeErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	x := opNew(t, d, runtime.F32, 3, 2, 8)
	x16 := opNew(t, d, runtime.F16, 3, 2, 8)
	inv := opNew(t, d, runtime.F32, 4)
	inv3 := opNew(t, d, runtime.F32, 5)
	for name, err := range map[string]error{
		"D does not divide x": Rope(r, x, x, inv3, 2, 0),
		"heads 0":             Rope(r, x, x, inv, 0, 0),
		"dtype mismatch":      Rope(r, x16, x, inv, 2, 0),
		"negative pos0":       Rope(r, x, x, inv, 2, -1),
		"does not fit":        RopeStrided(r, x, x, inv, RopeParams{Rows: 4, Heads: 2}),
		"offset past stride":  RopeStrided(r, x, x, inv, RopeParams{Rows: 1, Heads: 2, XOffset: 8, XRowStride: 16}),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
