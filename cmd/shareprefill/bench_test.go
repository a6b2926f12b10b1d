package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
		t.Fatalf("%s is not a PNG (%d bytes)", path, len(b))
	}
}

// plotsFlag is "--plots DIR/plots" in the bench build (tag plots), which
// draws them, and nothing in the product build, which refuses the flag
// (TestPlotsOnlyInBenchBuild).
func plotsFlag(dir string) []string {
	if plotsUnavailable() != nil {
		return nil
	}
	return []string{"--plots", filepath.Join(dir, "plots")}
}

// wantPNGs checks the named PNG files in dir in the bench build, and that
// dir was not made in the product build.
func wantPNGs(t *testing.T, dir string, names ...string) {
	t.Helper()
	if plotsUnavailable() != nil {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("the product build made %s (%v)", dir, err)
		}
		return
	}
	for _, n := range names {
		isPNG(t, filepath.Join(dir, n))
	}
}

// TestPlotsOnlyInBenchBuild: the product build refuses --plots before any
// work, saying how to build one that draws them; the bench build accepts
// the flag.
func TestPlotsOnlyInBenchBuild(t *testing.T) {
	dir := t.TempDir()
	plots := filepath.Join(dir, "plots")
	var out, errb bytes.Buffer
	code := run([]string{"bench", "prefill", "--model", filepath.Join(dir, "no-model"), "--plots", plots}, &out, &errb)
	if plotsUnavailable() == nil {
		if code == 0 || strings.Contains(errb.String(), "--plots") {
			t.Errorf("bench build: exit %d, %s; want the missing model to fail, not --plots", code, errb.String())
		}
		return
	}
	if code != 2 || !strings.Contains(errb.String(), "--plots: this shareprefill was built without PNG plots") || !strings.Contains(errb.String(), "-tags plots") {
		t.Errorf("product build: exit %d, %s; want exit 2 refusing --plots and naming -tags plots", code, errb.String())
	}
	if _, err := os.Stat(plots); !os.IsNotExist(err) {
		t.Errorf("the refused --plots directory exists (%v)", err)
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, k := range []string{"bench", "impl", "device", "commit", "date", "params", "results"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("%s has no %q", path, k)
		}
	}
	return m
}

// TestBenchKernelsCLI runs `shareprefill bench kernels` end to end at tiny
// sizes (lavapipe) and checks that the JSON, Markdown, masks and PNG plots
// exist and parse; it does not judge the times.
func TestBenchKernelsCLI(t *testing.T) {
	gputest.Device(t) // skip without Vulkan
	dir := t.TempDir()
	js, md, plots := filepath.Join(dir, "k.json"), filepath.Join(dir, "k.md"), filepath.Join(dir, "plots")
	var out, errb bytes.Buffer
	args := []string{"bench", "kernels", "--lens", "256", "--densities", "1,0.5", "--hq", "4", "--hkv", "2", "--d", "64",
		"--block", "32", "--reps", "2", "--warmup", "1", "--flush-mib", "1", "--matmul-m", "none",
		"--json", js, "--md", md}
	if plotsUnavailable() == nil { // the bench build (tag plots)
		args = append(args, "--plots", plots)
	}
	code := run(args, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// On a CPU device a one-line warning gives the size of the run; every
	// timed configuration has a numbered progress line (1 length × (dense,
	// 2 densities, 5 estimation kernels)).
	if gputest.Device(t).Info().Type == runtime.TypeCPU && !strings.Contains(errb.String(), "is a CPU device: 8 timed configurations") {
		t.Errorf("no CPU warning on stderr:\n%s", errb.String())
	}
	for _, line := range []string{"bench: [1/8] n=256: dense flash attention", "bench: [3/8] n=256: γ-cover counts", "bench: [8/8] n=256: "} {
		if !strings.Contains(errb.String(), line) {
			t.Errorf("stderr lacks the progress line %q:\n%s", line, errb.String())
		}
	}
	rep := readJSON(t, js)
	res := rep["results"].(map[string]any)
	if n := len(res["attention"].([]any)); n != 3 {
		t.Fatalf("%d attention rows, want 3", n)
	}
	if _, ok := res["matmul"]; ok {
		t.Fatal("--matmul-m none still ran the matmuls")
	}
	if dev := rep["device"].(map[string]any); dev["name"] == "" || dev["vendor"] == "" || dev["driver"] == "" {
		t.Fatalf("device %v", dev)
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mdText), "| 256 | sparse | 0.50 |") || !strings.Contains(out.String(), "### Attention") {
		t.Fatalf("markdown:\n%s", mdText)
	}
	wantPNGs(t, plots, "attention_latency.png", "attention_speedup.png", "attention_tflops.png")
	// The masks go next to the JSON by default.
	var man struct {
		Masks []struct {
			RowPtr string `json:"row_ptr"`
			Cols   string `json:"cols"`
		} `json:"masks"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "k.masks", "masks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil || len(man.Masks) != 2 {
		t.Fatalf("manifest %s: %v", b, err)
	}
	for _, m := range man.Masks {
		for _, f := range []string{m.RowPtr, m.Cols} {
			if b, err := os.ReadFile(filepath.Join(dir, "k.masks", f)); err != nil || !bytes.HasPrefix(b, []byte("\x93NUMPY")) {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}

	// compare joins it with a peer report in the same envelope.
	peer := map[string]any{"bench": "kernels", "impl": "torch", "device": map[string]any{"name": "H200"}, "commit": "x", "date": "d",
		"params": map[string]any{}, "results": map[string]any{"attention": []map[string]any{
			{"kind": "sdpa", "n": 256, "density": 1, "median_ms": 0.01},
			{"kind": "flex", "n": 256, "density": 0.5, "mask": "n256_d0.5", "median_ms": 0.01},
		}}}
	pb, _ := json.Marshal(peer)
	pj := filepath.Join(dir, "peer.json")
	os.WriteFile(pj, pb, 0o644)
	out.Reset()
	if code := run([]string{"bench", "compare", "--md", filepath.Join(dir, "cmp.md"), js, pj}, &out, &errb); code != 0 {
		t.Fatalf("compare exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "| 256 | 1.00 | dense |") || !strings.Contains(out.String(), "| 256 | 0.50 | sparse |") {
		t.Fatalf("compare output:\n%s", out.String())
	}
}

// TestBenchPrefillAccuracyCLI generates a tiny random model and runs
// `bench prefill` and `bench accuracy` on it.
func TestBenchPrefillAccuracyCLI(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "gen-model", "--shape", "tiny", "--out", mdir}, &out, &errb); code != 0 {
		t.Fatalf("gen-model exit %d: %s", code, errb.String())
	}
	js := filepath.Join(dir, "p.json")
	traces := filepath.Join(dir, "traces")
	if code := run(append([]string{"bench", "prefill", "--model", mdir, "--lens", "64,200", "--methods", "dense", "--reps", "1",
		"--json", js, "--traces", traces, "--quiet"}, plotsFlag(dir)...), &out, &errb); code != 0 {
		t.Fatalf("prefill exit %d: %s", code, errb.String())
	}
	rows := readJSON(t, js)["results"].(map[string]any)["prefill"].([]any)
	if len(rows) != 2 {
		t.Fatalf("%d prefill rows", len(rows))
	}
	// --traces: one Chrome trace per cell, and the cell's profile.
	for i, n := range []int{64, 200} {
		if tr := filepath.Join(traces, fmt.Sprintf("trace-dense-%d.json", n)); !isChromeTrace(tr) {
			t.Errorf("%s is not a Chrome trace", tr)
		}
		if _, ok := rows[i].(map[string]any)["profile"]; !ok {
			t.Errorf("row %d has no profile with --traces", i)
		}
	}
	// A directory of other files is not overwritten.
	other := filepath.Join(dir, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"bench", "prefill", "--model", mdir, "--lens", "64", "--methods", "dense", "--traces", other, "--quiet"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--traces") {
		t.Errorf("--traces into a foreign directory: exit %d, %s", code, errb.String())
	}
	wantPNGs(t, filepath.Join(dir, "plots"), "prefill_latency.png")
	aj := filepath.Join(dir, "a.json")
	if code := run(append([]string{"bench", "accuracy", "--model", mdir, "--lens", "512", "--methods", "dense", "--tasks", "passkey",
		"--depths", "0.5", "--passkey-tokens", "2", "--json", aj, "--quiet"}, plotsFlag(dir)...), &out, &errb); code != 0 {
		t.Fatalf("accuracy exit %d: %s", code, errb.String())
	}
	sum := readJSON(t, aj)["results"].(map[string]any)["retrieval_summary"].([]any)
	if len(sum) != 1 {
		t.Fatalf("summary %v", sum)
	}
	wantPNGs(t, filepath.Join(dir, "plots"), "accuracy_vs_density.png")
	// Usage errors exit 2.
	for _, args := range [][]string{{"bench"}, {"bench", "nope"}, {"bench", "prefill"}, {"bench", "kernels", "--lens", "x"},
		{"bench", "prefill", "--model", mdir, "--methods", "magic"}} {
		if code := run(args, &out, &errb); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
}
