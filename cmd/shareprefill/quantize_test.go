package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestBenchQuantizeCLI: bench prefill, decode and accuracy run a tiny
// random model with --quantize q8_0 and record the choice in their JSON
// reports; the accuracy report's device-memory note shows the Q8_0 weights
// the model was loaded with.
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
		{"bench", "accuracy", "--lens", "512", "--methods", "dense", "--tasks", "passkey", "--depths", "0.5", "--passkey-tokens", "2"},
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
		if args[1] == "accuracy" && (!strings.Contains(string(b), "device memory: weights") || !strings.Contains(string(b), "(Q8_0 ")) {
			t.Errorf("accuracy report does not note Q8_0 weights on the device:\n%.2000s", b)
		}
	}
}
