package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestBenchAccuracySuiteCI runs the small version of the accuracy suite
// (`--suite ci`: trained-format retrieval at 384 and 512 tokens, perplexity,
// the ablations) on a tiny random model with a plain-text held-out file,
// and checks that the JSON and Markdown parse and that every interval and
// paired test was computed. It is the CI form of `--suite bench-lm-8k`.
func TestBenchAccuracySuiteCI(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	mdir := filepath.Join(dir, "model")
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "gen-model", "--shape", "tiny", "--context", "1024", "--out", mdir}, &out, &errb); code != 0 {
		t.Fatalf("gen-model exit %d: %s", code, errb.String())
	}
	var text strings.Builder
	words := strings.Fields("garden silver window marble orange castle forest bridge candle hunter pepper rocket winter summer")
	for i := 0; text.Len() < 3000; i++ {
		text.WriteString(words[(i*5+i/3)%len(words)] + " ")
	}
	ho := filepath.Join(dir, "heldout.txt")
	if err := os.WriteFile(ho, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	js, md := filepath.Join(dir, "acc.json"), filepath.Join(dir, "acc.md")
	began := time.Now()
	if code := run([]string{"bench", "accuracy", "--suite", "ci", "--model", mdir, "--heldout", ho,
		"--json", js, "--md", md, "--quiet"}, &out, &errb); code != 0 {
		t.Fatalf("accuracy exit %d: %s", code, errb.String())
	}
	t.Logf("suite ci: %.1f s", time.Since(began).Seconds())
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Params  harness.AccuracyParams  `json:"params"`
		Results harness.AccuracyResults `json:"results"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	res := rep.Results
	if rep.Params.Suite != "ci" || len(res.Skipped) != 0 {
		t.Fatalf("suite %q, skipped %+v", rep.Params.Suite, res.Skipped)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	tasks := map[string]bool{}
	for _, s := range res.Summary {
		tasks[s.Task] = true
		if s.Total == 0 || !(s.CI.Lo <= s.Accuracy && s.Accuracy <= s.CI.Hi) || s.CI.Lo < 0 || s.CI.Hi > 1 || s.CI.Hi-s.CI.Lo < 0.3 {
			t.Fatalf("accuracy interval not computed: %+v", s)
		}
		if s.P == nil || !(*s.P >= 0 && *s.P <= 1) || s.Gains == nil {
			t.Fatalf("McNemar vs dense not computed: %+v", s)
		}
	}
	if len(tasks) != 3 {
		t.Fatalf("tasks %v, want the three trained-format ones", tasks)
	}
	if len(res.Perplexity) != 3 {
		t.Fatalf("%d perplexity rows", len(res.Perplexity))
	}
	for _, r := range res.Perplexity {
		if r.Windows != 3 || !finite(r.NLL) || !finite(r.CI.Lo) || !finite(r.CI.Hi) || r.CI.Lo > r.NLL || r.CI.Hi < r.NLL || r.DeltaCI == nil || !finite(r.DeltaCI.Lo) {
			t.Fatalf("perplexity interval not computed: %+v", r)
		}
	}
	if len(res.Ablations) != 3+2 {
		t.Fatalf("%d ablation rows, want dense, flex, share and the two ablations", len(res.Ablations))
	}
	for _, a := range res.Ablations[3:] {
		if a.P == nil || a.PVsShare == nil || a.What == "" {
			t.Fatalf("ablation row %+v", a)
		}
	}
	mdb, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### Retrieval in bench-lm-8k's trained format", "### Perplexity", "### Ablations", "| share-no-exclusion |", "[95 % CI]"} {
		if !strings.Contains(string(mdb), want) {
			t.Fatalf("%s lacks %q", md, want)
		}
	}
	// Usage errors.
	for _, args := range [][]string{
		{"bench", "accuracy", "--suite", "nope", "--model", mdir},
		{"bench", "accuracy", "--model", mdir, "--tasks", "none"},
		{"bench", "accuracy", "--model", mdir, "--task-samples", "secret"},
		{"bench", "accuracy", "--model", mdir, "--variant", "x=share/paper:gamma=7"},
		{"bench", "accuracy", "--write-heldout", filepath.Join(dir, "h.json")},
	} {
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
