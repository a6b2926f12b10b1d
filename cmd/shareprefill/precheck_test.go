package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/bench/harness"
)

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func sameSnapshot(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d files, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s changed", what, k)
		}
	}
}

// wantUsage runs the CLI and wants exit status 2 and one error line holding
// every part of want.
func wantUsage(t *testing.T, want []string, args ...string) {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != 2 {
		t.Errorf("%q: exit %d, want 2; stderr:\n%s", args, code, errOut)
	}
	noStackTrace(t, out, errOut)
	if n := strings.Count(strings.TrimRight(errOut, "\n"), "\n"); n != 0 {
		t.Errorf("%q: stderr has %d lines, want 1:\n%s", args, n+1, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("%q: error %q lacks %q", args, strings.TrimSpace(errOut), w)
		}
	}
}

// TestGenModelKeepsRealModels: gen-model refuses a directory that holds a
// model it did not generate (without --force), and overwrites its own.
func TestGenModelKeepsRealModels(t *testing.T) {
	real := modelDir(t, nil, nil)
	before := snapshot(t, real)
	wantUsage(t, []string{"--out", real, "--force", harness.GeneratedMarker}, "bench", "gen-model", "--shape", "tiny", "--out", real)
	sameSnapshot(t, "real model after gen-model", snapshot(t, real), before)

	gen := filepath.Join(t.TempDir(), "gen")
	for i := 0; i < 2; i++ { // new, then its own output again
		code, out, errOut := runCLI(t, "bench", "gen-model", "--shape", "tiny", "--layers", "1", "--out", gen)
		if code != 0 {
			t.Fatalf("gen-model into %s (round %d): exit %d: %s", gen, i, code, errOut)
		}
		if !strings.Contains(out, "wrote "+gen) {
			t.Errorf("stdout %q", out)
		}
		if !harness.IsGenerated(gen) {
			t.Fatalf("%s has no %s", gen, harness.GeneratedMarker)
		}
	}

	// An empty directory is fine; a file is not a directory.
	if code, _, errOut := runCLI(t, "bench", "gen-model", "--shape", "tiny", "--layers", "1", "--out", t.TempDir()); code != 0 {
		t.Errorf("empty directory: exit %d: %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, []string{"--out", "not a directory"}, "bench", "gen-model", "--shape", "tiny", "--out", file)

	// --force overwrites the real model.
	code, _, errOut := runCLI(t, "bench", "gen-model", "--shape", "tiny", "--layers", "1", "--out", real, "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(real, "config.json")); bytes.Equal(b, []byte(before["config.json"])) {
		t.Errorf("--force did not write config.json")
	}
}

// TestRunFlagValues: every flag value that would change meaning without a
// word, or fail only after loading the model, is a usage error (exit 2)
// naming the flag, found before anything is loaded: --model names a
// directory without weights, so a check made after loading would report
// the weights instead.
func TestRunFlagValues(t *testing.T) {
	noWeights := modelDir(t, []string{"model.safetensors"}, nil)
	promptFile := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(promptFile, []byte("Once"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--max-tokens", "0"}, []string{"--max-tokens 0", "≥ 1"}},
		{[]string{"--temp", "NaN"}, []string{"--temp NaN", "finite"}},
		{[]string{"--temp", "Inf"}, []string{"--temp +Inf", "finite"}},
		{[]string{"--temp", "-1"}, []string{"--temp -1", "≥ 0"}},
		{[]string{"--top-p", "0"}, []string{"--top-p 0", "0 < p ≤ 1"}},
		{[]string{"--top-p", "1.5"}, []string{"--top-p 1.5", "0 < p ≤ 1"}},
		{[]string{"--top-p", "NaN"}, []string{"--top-p NaN"}},
		{[]string{"--prompt", ""}, []string{"--prompt is empty"}},
		{[]string{"--prompt", "", "--prompt-file", promptFile}, []string{"--prompt or --prompt-file"}},
		{[]string{"--prompt-file", ""}, []string{"--prompt-file is empty"}},
		{[]string{"--context", "-5"}, []string{"--context -5"}},
		{[]string{"--attn", "bogus"}, []string{"--attn", "dense, vs, flex or share"}},
		{[]string{"--preset", "bogus"}, []string{"--preset", "paper or release"}},
		{[]string{"--preset", "paper:gama=0.99"}, []string{"--preset", `unknown knob "gama"`, "gamma"}},
		{[]string{"--clusters", promptFile}, []string{"--clusters needs --attn share"}},
		{[]string{"--system", "be brief"}, []string{"--system needs --chat"}},
		{[]string{"--quantize", "q4_k_m"}, []string{"--quantize", `"q4_k_m"`, "supported: q8_0, none"}},
		{[]string{"--stats-json", filepath.Join(t.TempDir(), "no", "stats.json")}, []string{"--stats-json", "does not exist"}},
		{[]string{"--stats-json", t.TempDir()}, []string{"--stats-json", "is a directory"}},
		{[]string{"--stats-json", promptFile, "--prompt-file", promptFile}, []string{"--stats-json", "--prompt-file"}},
		{[]string{"--stats-json", filepath.Join(noWeights, "stats.json")}, []string{"--stats-json", "inside the --model directory"}},
		{[]string{"--stats-json", filepath.Join(noWeights, "config.json"), "--force"}, []string{"--stats-json", "--model"}},
	}
	for _, tc := range tests {
		args := append([]string{"run", "--model", noWeights}, tc.args...)
		wantUsage(t, tc.want, args...)
	}
	if b, err := os.ReadFile(promptFile); err != nil || string(b) != "Once" {
		t.Errorf("the prompt file changed: %q, %v", b, err)
	}
}

// TestRunStatsJSONOverwrite: --stats-json writes over its own files and
// over a foreign file only with --force.
func TestRunStatsJSONOverwrite(t *testing.T) {
	needVulkan(t)
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, []string{"--stats-json", "--force"}, "run", "--max-tokens", "1", "--stats-json", notes)
	if b, _ := os.ReadFile(notes); string(b) != "my notes" {
		t.Fatalf("notes overwritten: %q", b)
	}
	stats := filepath.Join(dir, "stats.json")
	for _, args := range [][]string{
		{"--stats-json", stats},            // new
		{"--stats-json", stats},            // its own
		{"--stats-json", notes, "--force"}, // foreign, forced
	} {
		args = append([]string{"run", "--max-tokens", "1", "--quiet", "--prompt", "Once"}, args...)
		if code, _, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errOut)
		}
	}
	if !isStatsJSON(stats) || !isStatsJSON(notes) {
		t.Errorf("the stats files are not stats JSON")
	}
}

// TestRunPromptEcho: the prompt is echoed only once the prefill has
// succeeded; a prompt longer than the context is never printed.
func TestRunPromptEcho(t *testing.T) {
	needVulkan(t)
	long := strings.Repeat("Once upon a time there was a little girl named Lily. ", 40)
	code, out, errOut := runCLI(t, "run", "--context", "128", "--prompt", long, "--max-tokens", "1")
	if code != 1 || !strings.Contains(errOut, "context") {
		t.Fatalf("too long a prompt: exit %d, stderr %q", code, errOut)
	}
	if out != "" {
		t.Errorf("too long a prompt: stdout has %d bytes, want none: %.80q…", len(out), out)
	}
	code, out, errOut = runCLI(t, "run", "--prompt", "Lily", "--max-tokens", "2", "--temp", "0", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "Lily") || len(out) <= len("Lily\n") || strings.Count(out, "Lily") != 1 {
		t.Errorf("stdout %q: want the prompt once, then the generated text", out)
	}
}

// TestCalibrateChecksFirst: calibrate checks every flag value and its
// --out path before loading the model (whose weights are missing here, so
// a later check would report them instead), and never overwrites an input,
// a file in the model directory, or a file that is not a cluster file.
func TestCalibrateChecksFirst(t *testing.T) {
	noWeights := modelDir(t, []string{"model.safetensors"}, nil)
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	notes := filepath.Join(dir, "notes.txt")
	for p, s := range map[string]string{data: "Once upon a time.", notes: "my notes"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	config, _ := os.ReadFile(filepath.Join(noWeights, "config.json"))
	cfgPath := filepath.Join(noWeights, "config.json")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--out", data}, []string{"--out", "--data"}},
		{[]string{"--out", data, "--force"}, []string{"--out", "--data"}},
		{[]string{"--out", cfgPath, "--force"}, []string{"--out", "--model directory"}},
		{[]string{"--out", filepath.Join(noWeights, "clusters.json")}, []string{"--out", "--model directory"}},
		{[]string{"--out", notes}, []string{"--out", "not a cluster file", "--force"}},
		{[]string{"--out", filepath.Join(dir, "missing", "c.json")}, []string{"--out", "does not exist"}},
		{[]string{"--out", dir}, []string{"--out", "is a directory"}},
		{[]string{"--linkage", "bogus"}, []string{"--linkage", "ward, average or complete"}},
		{[]string{"--target-clusters", "1000"}, []string{"--target-clusters 1000", "want 1 to"}},
		{[]string{"--kappa", "2"}, []string{"--kappa 2", "0 < κ ≤ 1"}},
		{[]string{"--gamma", "-1"}, []string{"--gamma -1", "0 < γ ≤ 1"}},
		{[]string{"--epochs", "-1"}, []string{"--epochs -1", "≥ 1"}},
		{[]string{"--block", "0"}, []string{"--block 0", "1 to 1024"}},
		{[]string{"--min-gain", "0"}, []string{"--min-gain 0"}},
		{[]string{"--threshold", "1", "--target-clusters", "3"}, []string{"not both"}},
		{[]string{"--device", "no-such-gpu-xyz"}, []string{"--device", "no-such-gpu-xyz"}},
	}
	for _, tc := range tests {
		args := append([]string{"calibrate", "--model", noWeights, "--data", data, "--out", filepath.Join(dir, "c.json")}, tc.args...)
		if tc.args[0] == "--device" {
			needVulkan(t)
			code, _, errOut := runCLI(t, args...)
			if code != 2 || !strings.Contains(errOut, "--device") {
				t.Errorf("%q: exit %d, stderr %q; want 2 naming --device", args, code, errOut)
			}
			continue
		}
		wantUsage(t, tc.want, args...)
	}
	for p, want := range map[string]string{data: "Once upon a time.", notes: "my notes", cfgPath: string(config)} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s changed", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c.json")); err == nil {
		t.Errorf("a failed calibrate wrote --out")
	}
	// A missing --data file is found before the model loads too (exit 1:
	// a missing file, not a bad command line).
	code, _, errOut := runCLI(t, "calibrate", "--model", noWeights, "--data", filepath.Join(dir, "nope.txt"), "--out", filepath.Join(dir, "c.json"))
	if code != 1 || !strings.Contains(errOut, "--data") || !strings.Contains(errOut, "nope.txt") {
		t.Errorf("missing --data: exit %d, stderr %q; want 1 naming --data and the file", code, errOut)
	}
}

// TestCalibrateOverwritesClusterFile: an existing cluster file is ours and
// is replaced without --force.
func TestCalibrateOverwritesClusterFile(t *testing.T) {
	needVulkan(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(strings.Repeat("Once upon a time there was a little girl named Lily. She liked to play in the park with her dog. ", 60)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "clusters.json")
	args := []string{"calibrate", "--data", data, "--out", out, "--length", "128", "--block", "32", "--prompts", "1", "--holdout", "1",
		"--representation", "pooled", "--grid", "4", "--target-clusters", "3"}
	for i := 0; i < 2; i++ {
		if code, _, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("round %d: exit %d: %s", i, code, errOut)
		}
		if !isClusterFile(out) {
			t.Fatalf("round %d: %s is not a cluster file", i, out)
		}
	}
}

// TestBenchChecksFirst: every bench subcommand checks its flag values and
// output paths before it opens a device or loads the model (whose weights
// are missing here), with exit status 2.
func TestBenchChecksFirst(t *testing.T) {
	noWeights := modelDir(t, []string{"model.safetensors"}, nil)
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	notes := filepath.Join(dir, "notes.md")
	file := filepath.Join(dir, "file")
	docs := filepath.Join(dir, "docs")
	for p, s := range map[string]string{corpus: "Once upon a time.", notes: "# my notes\n", file: "x", filepath.Join(docs, "a.txt"): "keep"} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prefill := []string{"bench", "prefill", "--model", noWeights, "--lens", "64", "--methods", "dense"}
	accuracy := []string{"bench", "accuracy", "--model", noWeights, "--lens", "64", "--methods", "dense"}
	kernels := []string{"bench", "kernels", "--lens", "256", "--hq", "4", "--hkv", "2", "--d", "64", "--block", "32", "--matmul-m", "none"}
	tests := []struct {
		args []string
		want []string
	}{
		{append(prefill, "--reps", "0"), []string{"--reps 0", "≥ 1"}},
		{append(prefill, "--quantize", "int8"), []string{"--quantize", `"int8"`, "supported: q8_0, none"}},
		{[]string{"bench", "decode", "--model", noWeights, "--lens", "64", "--quantize", "q4"}, []string{"--quantize", `"q4"`, "supported: q8_0, none"}},
		{append(accuracy, "--tasks", "passkey", "--quantize", "q4_k"), []string{"--quantize", `"q4_k"`, "supported: q8_0, none"}},
		{append(prefill, "--warmup", "-1"), []string{"--warmup -1"}},
		{append(prefill, "--preset", "bogus"), []string{"--preset", "paper or release"}},
		{append(prefill, "--preset", "paper:gamma=2"), []string{"--preset", "outside (0, 1]"}},
		{append(prefill, "--corpus", corpus, "--json", corpus), []string{"--json", "--corpus"}},
		{append(prefill, "--md", notes), []string{"--md", "not benchmark Markdown", "--force"}},
		{append(prefill, "--plots", file), []string{"--plots", "not a directory"}},
		{append(prefill, "--plots", docs), []string{"--plots", "not a directory of PNG plots", "--force"}},
		{append(prefill, "--json", filepath.Join(noWeights, "r.json")), []string{"--json", "--model directory"}},
		{append(prefill, "--json", filepath.Join(dir, "r.json"), "--md", filepath.Join(dir, "r.json")), []string{"--json", "--md"}},
		{append(accuracy, "--corpus", corpus, "--ppl-windows", "-1"), []string{"--ppl-windows -1", "≥ 0"}},
		{append(accuracy, "--ppl-tail", "-1", "--corpus", corpus), []string{"--ppl-tail -1"}},
		{append(accuracy, "--tasks", "bogus"), []string{"--tasks", "bogus"}},
		{append(accuracy, "--tasks", "passkey", "--trials", "0"), []string{"--trials 0"}},
		{append(accuracy, "--tasks", "secret"), []string{"--heldout", "held-out text"}},
		{append(accuracy, "--tasks", "passkey", "--budget", "-1s"), []string{"--budget -1s"}},
		{append(accuracy, "--kv-tokens", "0", "--tasks", "kv"), []string{"--kv-tokens 0"}},
		{append(accuracy, "--tasks", "none"), []string{"nothing to do"}},
		{append(kernels, "--hq", "3"), []string{"--hq 3", "--hkv 2"}},
		{append(kernels, "--flush-mib", "-1"), []string{"--flush-mib -1"}},
		{append(kernels, "--block", "12"), []string{"--block 12", "power of two"}},
		{append(kernels, "--reps", "0"), []string{"--reps 0"}},
		{append(kernels, "--masks", docs), []string{"--masks", "not a directory of exported masks", "--force"}},
		{[]string{"bench", "compare", "--md", corpus, corpus, notes}, []string{"--md", "a report argument"}},
		{[]string{"bench", "compare", "--md", notes, corpus, corpus}, []string{"--md", "--force"}},
		{[]string{"bench", "gen-model", "--shape", "bogus", "--out", filepath.Join(dir, "g")}, []string{"--shape", "bogus"}},
		{[]string{"bench", "gen-model", "--layers", "-1", "--out", filepath.Join(dir, "g")}, []string{"--layers -1"}},
		{[]string{"bench", "gen-model", "--vocab", "100", "--out", filepath.Join(dir, "g")}, []string{"--vocab 100"}},
		{[]string{"inspect", "--context", "-1"}, []string{"--context -1"}},
		{[]string{"inspect", "--quantize", "q4_k"}, []string{"--quantize", `"q4_k"`, "supported: q8_0, none"}},
	}
	for _, tc := range tests {
		wantUsage(t, tc.want, tc.args...)
	}
	for p, want := range map[string]string{corpus: "Once upon a time.", notes: "# my notes\n", file: "x", filepath.Join(docs, "a.txt"): "keep"} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s changed", p)
		}
	}
}

// TestCPUWarning: the warning gives the size of the run and a quick
// alternative; the defaults take days on lavapipe.
func TestCPUWarning(t *testing.T) {
	p := harness.DefaultKernelParams()
	w := cpuWarning("llvmpipe", p.Plan())
	for _, part := range []string{"llvmpipe is a CPU device", "timed configurations", "days", "--lens 512"} {
		if !strings.Contains(w, part) {
			t.Errorf("warning %q lacks %q", w, part)
		}
	}
	if strings.Contains(w, "\n") {
		t.Errorf("warning %q is not one line", w)
	}
}
