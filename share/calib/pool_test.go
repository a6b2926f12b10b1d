package calib

import (
	"math"
	"testing"
)

func lowerOnes(nb int) []float32 {
	m := make([]float32, nb*nb)
	for r := range nb {
		for c := 0; c <= r; c++ {
			m[r*nb+c] = 1
		}
	}
	return m
}

func TestPoolHandComputed(t *testing.T) {
	const a, b = 1.75 / 2.25, 1.0 // see comments below
	tests := []struct {
		name string
		m    []float32
		nb   int
		opts PoolOptions
		want []float64
	}{
		{
			name: "identity size keeps values",
			m:    []float32{1, 0, 0.25, 0.75},
			nb:   2, opts: PoolOptions{Grid: 2, Scale: ScaleNone},
			want: []float64{1, 0, 0.25, 0.75},
		},
		{
			name: "identity size scaled by max",
			m:    []float32{0.5, 0, 0.25, 0.25},
			nb:   2, opts: PoolOptions{Grid: 2},
			want: []float64{1, 0, 0.5, 0.5},
		},
		{
			name: "downsample 4 to 2 averages 2x2 squares",
			m: []float32{
				1, 0, 0, 0,
				0.5, 0.5, 0, 0,
				0.2, 0.2, 0.6, 0,
				0.1, 0.3, 0.2, 0.4,
			},
			nb: 4, opts: PoolOptions{Grid: 2, Scale: ScaleNone},
			want: []float64{2.0 / 4, 0, 0.8 / 4, 1.2 / 4},
		},
		{
			// Cell (0,0) covers rows/cols [0,1.5): 1·1 + (1,0)·0.5 + (1,1)·0.25 = 1.75
			// over area 2.25; cell (1,0) lies fully in the ones region, so 1.
			name: "fractional 3 to 2 by area",
			m:    lowerOnes(3),
			nb:   3, opts: PoolOptions{Grid: 2, Scale: ScaleNone},
			want: []float64{a, 0, b, a},
		},
		{
			name: "upsample 2 to 4 repeats blocks and clears the upper triangle",
			m:    []float32{1, 0, 0.25, 0.75},
			nb:   2, opts: PoolOptions{Grid: 4, Scale: ScaleNone},
			want: []float64{
				1, 0, 0, 0,
				1, 1, 0, 0,
				0.25, 0.25, 0.75, 0,
				0.25, 0.25, 0.75, 0.75,
			},
		},
		{
			name: "sqrt then max",
			m:    []float32{1, 0, 0.25, 0.75},
			nb:   2, opts: PoolOptions{Grid: 2, Sqrt: true},
			want: []float64{1, 0, 0.5, math.Sqrt(0.75)},
		},
		{
			name: "all zero stays zero",
			m:    make([]float32, 9),
			nb:   3, opts: PoolOptions{Grid: 2},
			want: []float64{0, 0, 0, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Pool(tc.m, tc.nb, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("len %d, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-7 {
					t.Fatalf("cell %d = %g, want %g (got %v)", i, got[i], tc.want[i], got)
				}
			}
		})
	}
}

// TestPoolMassPreserved checks that downsampling a row-normalised map by an
// integer factor keeps the total mass (times the cell area).
func TestPoolMassPreserved(t *testing.T) {
	for _, nb := range []int{64, 96, 128} {
		data := make([]float32, nb*nb)
		for r := range nb {
			for c := 0; c <= r; c++ {
				data[r*nb+c] = 1 / float32(r+1)
			}
		}
		got, err := Pool(data, nb, PoolOptions{Grid: 32, Scale: ScaleNone})
		if err != nil {
			t.Fatal(err)
		}
		area := float64(nb*nb) / (32 * 32)
		s := 0.0
		for _, v := range got {
			s += v * area
		}
		if math.Abs(s-float64(nb)) > 1e-3 {
			t.Errorf("nb %d: pooled mass %g, want %d", nb, s, nb)
		}
	}
}

func TestPoolRangeAndShape(t *testing.T) {
	maps, _ := synthHeads(2, 3)
	for _, m := range maps {
		for _, sq := range []bool{false, true} {
			p, err := Pool(m.Data, m.NB, PoolOptions{Sqrt: sq})
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != DefaultGrid*DefaultGrid {
				t.Fatalf("len %d", len(p))
			}
			peak := 0.0
			for i, v := range p {
				if v < 0 || v > 1 {
					t.Fatalf("value %g out of [0,1]", v)
				}
				if i%DefaultGrid > i/DefaultGrid && v != 0 {
					t.Fatalf("upper cell %d = %g", i, v)
				}
				peak = max(peak, v)
			}
			if peak != 1 {
				t.Fatalf("peak %g, want 1", peak)
			}
		}
	}
}

func TestPoolErrors(t *testing.T) {
	tests := []struct {
		name string
		m    []float32
		nb   int
		opts PoolOptions
	}{
		{"short", make([]float32, 3), 2, PoolOptions{}},
		{"zero nb", nil, 0, PoolOptions{}},
		{"bad scale", make([]float32, 4), 2, PoolOptions{Scale: "log"}},
		{"bad grid", make([]float32, 4), 2, PoolOptions{Grid: -1}},
	}
	for _, tc := range tests {
		if _, err := Pool(tc.m, tc.nb, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestLowerTriangle(t *testing.T) {
	got := lowerTriangle([]float64{1, 0, 0, 2, 3, 0, 4, 5, 6}, 3)
	want := []float64{1, 2, 3, 4, 5, 6}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
