package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestBenchQuantizeCLI: bench prefill and bench decode run a tiny random
// model with --quantize q8_0 and record the choice in their JSON reports.
func TestBenchQuantizeCLI(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "gen-model", "--shape", "tiny", "--out", mdir}, &out, &errb); code != 0 {
		t.Fatalf("gen-model exit %d: %s", code, errb.String())
	}
	for _, args := range [][]string{
		{"bench", "prefill", "--lens", "64", "--methods", "dense", "--reps", "1", "--warmup", "0"},
		{"bench", "decode", "--lens", "64", "--gen", "2", "--reps", "1", "--warmup", "0"},
	} {
		js := filepath.Join(dir, args[1]+".json")
		args = append(args, "--model", mdir, "--quantize", "q8_0", "--json", js, "--quiet")
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%s exit %d: %s", args[1], code, errb.String())
		}
		b, err := os.ReadFile(js)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"quantize": "q8_0"`) {
			t.Errorf("%s report does not record --quantize q8_0:\n%.600s", args[1], b)
		}
	}
}
