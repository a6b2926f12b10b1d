package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestBenchStructuredCLI writes the structured vehicle at test size,
// checks its attention with `bench density` (CPU) and, where Vulkan is
// available, runs `bench prefill --prompt structured` on it.
func TestBenchStructuredCLI(t *testing.T) {
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "gen-model", "--kind", "structured", "--shape", "tiny-d128", "--context", "4096", "--out", mdir}, &out, &errb); code != 0 {
		t.Fatalf("gen-model exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "structured attention") || !strings.Contains(out.String(), "vocab 258") {
		t.Fatalf("gen-model said %q", out.String())
	}
	js := filepath.Join(dir, "d.json")
	out.Reset()
	if code := run([]string{"bench", "density", "--model", mdir, "--n", "512", "--layers", "0", "--heads", "0,3",
		"--json", js, "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("density exit %d: %s", code, errb.String())
	}
	res := readJSON(t, js)["results"].(map[string]any)
	heads := res["heads"].([]any)
	if len(heads) != 2 || res["exact"] != true || res["query_blocks"].(float64) != 4 {
		t.Fatalf("density results %v", res)
	}
	for _, h := range heads {
		r := h.(map[string]any)
		if r["layer"].(float64) != 0 || r["kind"] == "" || !(r["density"].(float64) > 0 && r["density"].(float64) <= 1) {
			t.Fatalf("row %v", r)
		}
	}
	if !strings.Contains(out.String(), "| 0 | 3 |") || !strings.Contains(out.String(), "Density per layer") {
		t.Fatalf("markdown:\n%s", out.String())
	}
	for _, args := range [][]string{
		{"bench", "density"},
		{"bench", "density", "--model", mdir, "--n", "1"},
		{"bench", "density", "--model", mdir, "--prompt", "corpus"},
		{"bench", "density", "--model", mdir, "--heads", "x"},
		{"bench", "density", "--model", mdir, "--mass", "2"},
		{"bench", "prefill", "--model", mdir, "--prompt", "poem"},
	} {
		if code := run(args, &out, &errb); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
	if code := run([]string{"bench", "gen-model", "--kind", "magic", "--out", filepath.Join(dir, "m2")}, &out, &errb); code != 2 {
		t.Fatalf("gen-model --kind magic: exit %d, want 2", code)
	}
	if _, err := harness.GenModel(filepath.Join(dir, "m3"), harness.GenModelParams{Kind: "magic", Shape: "tiny"}); err == nil {
		t.Fatal("GenModel accepts kind magic")
	}
	if code := run([]string{"bench", "density", "--model", mdir, "--layers", "2"}, &out, &errb); code != 1 {
		t.Fatalf("density --layers 2 of a 2-layer model: exit %d, want 1", code)
	}

	gputest.Device(t) // the rest needs Vulkan
	pj := filepath.Join(dir, "p.json")
	if code := run([]string{"bench", "prefill", "--model", mdir, "--prompt", "structured", "--lens", "256", "--methods", "dense",
		"--reps", "1", "--json", pj, "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("prefill exit %d: %s", code, errb.String())
	}
	pres := readJSON(t, pj)["results"].(map[string]any)
	if pres["tokens"] != "structured" || len(pres["prefill"].([]any)) != 1 {
		t.Fatalf("prefill results %v", pres)
	}
}
