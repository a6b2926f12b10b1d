package gputest

import (
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
