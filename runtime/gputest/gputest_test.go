package gputest

import (
	"math"
	"strings"
	"testing"
)

func TestEnvSeed(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    uint64
		wantErr bool
	}{
		{"0", 0, false},
		{"42", 42, false},
		{"18446744073709551615", 1<<64 - 1, false},
		{"18446744073709551616", 0, true}, // overflows uint64
		{"12x", 0, true},
		{"-1", 0, true},
		{" 7", 0, true},
	} {
		t.Setenv(SeedEnv, tc.env)
		got, err := envSeed()
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), SeedEnv) {
				t.Errorf("%s=%q: error %v, want one naming %s", SeedEnv, tc.env, err, SeedEnv)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s=%q: %d, %v; want %d", SeedEnv, tc.env, got, err, tc.want)
		}
	}
	// Set, the seed makes Rand reproducible.
	t.Setenv(SeedEnv, "1234")
	if a, b := Rand(t).Uint64(), Rand(t).Uint64(); a != b {
		t.Errorf("two generators with %s=1234 differ: %d, %d", SeedEnv, a, b)
	}
}

// TestScaledErr: the error against a scale (RelErr's is want itself), and
// +Inf for NaN, Inf or mismatched lengths.
func TestScaledErr(t *testing.T) {
	for _, c := range []struct {
		got         []float32
		want, scale []float64
		e           float64
	}{
		{[]float32{1, 2}, []float64{1, 2}, []float64{1, 2}, 0},
		{[]float32{0.5}, []float64{0}, []float64{2}, 0.25},
		{[]float32{3}, []float64{0}, []float64{0}, 3},
		{[]float32{1, 1}, []float64{0, 1}, []float64{3, 4}, 0.2},
		{[]float32{float32(math.NaN())}, []float64{1}, []float64{1}, math.Inf(1)},
		{[]float32{float32(math.Inf(-1))}, []float64{1}, []float64{1}, math.Inf(1)},
		{[]float32{1}, []float64{1, 2}, []float64{1, 2}, math.Inf(1)},
		{[]float32{1}, []float64{1}, []float64{1, 2}, math.Inf(1)},
	} {
		if e := ScaledErr(c.got, c.want, c.scale); math.Abs(e-c.e) > 1e-12 && e != c.e {
			t.Errorf("ScaledErr(%v, %v, %v) = %g, want %g", c.got, c.want, c.scale, e, c.e)
		}
	}
	if e := RelErr([]float32{1.1}, []float64{1}); math.Abs(e-0.1) > 1e-6 {
		t.Errorf("RelErr(1.1, 1) = %g, want 0.1", e)
	}
}
