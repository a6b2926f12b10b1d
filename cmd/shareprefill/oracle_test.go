package main

import (
	"strings"
	"testing"
)

// TestBenchOracleFlags: --oracle-weights takes quantized and f16 only (a
// usage error naming the flag), and an oracle directory without cases is an
// error naming it.
func TestBenchOracleFlags(t *testing.T) {
	needVulkan(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"bench", "accuracy", "--oracle", dir, "--oracle-weights", "quantized,bogus"}, 2, []string{"--oracle-weights", `"bogus"`, "quantized, f16"}},
		{[]string{"bench", "accuracy", "--oracle", dir, "--oracle-cases", "none*"}, 1, []string{"no case directories", dir}},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit status %d, want %d; stderr:\n%s", tc.args, code, tc.code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}
