package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// opTieRows returns M rows of N logits with planted ties: values on a coarse
// grid (many duplicates), the row maximum repeated at several positions far
// apart, a few -inf, -0/+0 pairs, and one row where all values are equal.
func opTieRows(rng *rand.Rand, m, n int) []float32 {
	x := make([]float32, m*n)
	for r := 0; r < m; r++ {
		row := x[r*n : r*n+n]
		if r == 1 { // all equal: indices 0..k-1 expected
			for j := range row {
				row[j] = 0.5
			}
			continue
		}
		for j := range row {
			row[j] = float32(math.Round(rng.NormFloat64()*8) / 4)
		}
		if n > 3 {
			top := float32(20)
			for c := 0; c < 3; c++ {
				row[rng.IntN(n)] = top
			}
			row[n-1] = top // a tie at the very end
			row[rng.IntN(n)] = float32(math.Inf(-1))
			row[rng.IntN(n)] = float32(math.Copysign(0, -1))
		}
	}
	return x
}

func TestArgmax(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, m := range []int{1, 3, 17} {
		for _, n := range []int{1, 5, 1000, 70001, 70000, 8192} {
			xv := opTieRows(rng, m, n)
			x := opUp(t, d, runtime.F32, xv, m, n)
			idx := opNew(t, d, runtime.I32, m)
			opRun(t, d, func(r *runtime.Recorder) error { return Argmax(r, idx, x) }, idx)
			got, err := idx.DownloadI32()
			if err != nil {
				t.Fatal(err)
			}
			want := RefArgmax(xv, n)
			for r := range want {
				if got[r] != want[r] {
					t.Errorf("argmax M=%d N=%d row %d: got %d (%v), want %d (%v)", m, n, r, got[r], xv[r*n+int(max(got[r], 0))%n], want[r], xv[r*n+int(want[r])])
				}
			}
		}
	}
}

func TestTopK(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, m := range []int{1, 3, 17} {
		for _, n := range []int{1, 5, 1000, 70001} {
			for _, k := range []int{1, 5, 40, 256} {
				if k > n || (m == 17 && k == 40) {
					continue
				}
				xv := opTieRows(rng, m, n)
				if n == 1000 && m == 3 {
					xv[2*n+7] = float32(math.NaN()) // NaN ranks below -inf
				}
				x := opUp(t, d, runtime.F32, xv, m, n)
				vals := opNew(t, d, runtime.F32, m, k)
				idx := opNew(t, d, runtime.I32, m, k)
				opRun(t, d, func(r *runtime.Recorder) error { return TopK(r, vals, idx, x, k) }, vals, idx)
				gv, err := vals.DownloadF32()
				if err != nil {
					t.Fatal(err)
				}
				gi, err := idx.DownloadI32()
				if err != nil {
					t.Fatal(err)
				}
				wv, wi := RefTopK(xv, n, k)
				bad := 0
				for i := range wi {
					same := gv[i] == wv[i] || (math.IsNaN(float64(gv[i])) && math.IsNaN(float64(wv[i])))
					if gi[i] != wi[i] || !same || math.Signbit(float64(gv[i])) != math.Signbit(float64(wv[i])) {
						if bad < 5 {
							t.Errorf("topk M=%d N=%d k=%d: row %d rank %d: got (%v, %d), want (%v, %d)", m, n, k, i/k, i%k, gv[i], gi[i], wv[i], wi[i])
						}
						bad++
					}
				}
			}
		}
	}
}

func TestSampleErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	x := opNew(t, d, runtime.F32, 3, 10)
	v := opNew(t, d, runtime.F32, 3, 4)
	i := opNew(t, d, runtime.I32, 3, 4)
	for name, err := range map[string]error{
		"argmax idx length": Argmax(r, opNew(t, d, runtime.I32, 4), x),
		"argmax idx f32":    Argmax(r, opNew(t, d, runtime.F32, 3), x),
		"topk k > N":        TopK(r, opNew(t, d, runtime.F32, 3, 11), opNew(t, d, runtime.I32, 3, 11), x, 11),
		"topk k = 0":        TopK(r, v, i, x, 0),
		"topk size":         TopK(r, v, i, x, 3),
		"topk k > 256":      TopK(r, v, i, opNew(t, d, runtime.F32, 1, 300), 257),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestSampleTopP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.15)), float32(math.Log(0.05))}
	idx := []int32{10, 11, 12, 13}
	if got := SampleTopP(vals, idx, 0, 0.9, rng); got != 10 {
		t.Errorf("temp 0: got %d, want greedy 10", got)
	}
	if got := SampleTopP(vals, idx, 1, 1e-9, rng); got != 10 {
		t.Errorf("tiny top-p: got %d, want 10", got)
	}
	const n = 200000
	count := func(temp, topP float64) map[int]float64 {
		c := map[int]float64{}
		for i := 0; i < n; i++ {
			c[SampleTopP(vals, idx, temp, topP, rng)]++
		}
		for k := range c {
			c[k] /= n
		}
		return c
	}
	check := func(name string, got map[int]float64, want map[int]float64) {
		for k, w := range want {
			if math.Abs(got[k]-w) > 0.006 {
				t.Errorf("%s: P(%d) = %.4f, want %.4f", name, k, got[k], w)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: sampled %d, outside the nucleus", name, k)
			}
		}
	}
	check("temp 1, top-p 1", count(1, 1), map[int]float64{10: 0.5, 11: 0.3, 12: 0.15, 13: 0.05})
	// Nucleus 0.7: {10, 11} (mass 0.8), renormalised.
	check("temp 1, top-p 0.7", count(1, 0.7), map[int]float64{10: 0.5 / 0.8, 11: 0.3 / 0.8})
	// Temperature 2: p ∝ sqrt(p).
	s := math.Sqrt(0.5) + math.Sqrt(0.3) + math.Sqrt(0.15) + math.Sqrt(0.05)
	check("temp 2", count(2, 1), map[int]float64{10: math.Sqrt(0.5) / s, 11: math.Sqrt(0.3) / s, 12: math.Sqrt(0.15) / s, 13: math.Sqrt(0.05) / s})
	// -inf candidates and padding ids are never drawn.
	v2 := []float32{1, 1, float32(math.Inf(-1))}
	i2 := []int32{3, -1, 7}
	for i := 0; i < 1000; i++ {
		if got := SampleTopP(v2, i2, 1, 1, rng); got != 3 {
			t.Fatalf("drew %d; only 3 has non-zero probability", got)
		}
	}
}
