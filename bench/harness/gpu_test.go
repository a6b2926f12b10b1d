package harness

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

func TestRunKernelsTiny(t *testing.T) {
	dev := gputest.Device(t)
	dir := t.TempDir()
	p := KernelParams{Lens: []int{100, 256}, Densities: []float64{1, 0.3}, Hq: 4, Hkv: 2, D: 32, Block: 32,
		Warmup: 1, Reps: 2, Seed: 5, FlushMiB: 1, MatMulM: []int{3, 17}, MatMulShapes: []MatShape{{"proj", 40, 64}},
		Estimation: true, MaskDir: filepath.Join(dir, "masks")}
	rep, err := RunKernels(dev, p)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*KernelResults)
	if len(res.Attention) != 2*3 {
		t.Fatalf("%d attention rows, want 6: %+v", len(res.Attention), res.Attention)
	}
	for _, r := range res.Attention {
		if !(r.Median > 0) || r.N == 0 || r.Timer == "" || !(r.SpeedupVsDense > 0) {
			t.Fatalf("bad row %+v", r)
		}
		if r.Kind == "sparse" && r.Density == 1 && r.ComputedDensity != 1 {
			t.Fatalf("density-1 mask computed density %v", r.ComputedDensity)
		}
	}
	if len(res.Estimation) != 2*5 || len(res.MatMul) != 2 {
		t.Fatalf("%d estimation rows (want 10), %d matmul rows (want 2)", len(res.Estimation), len(res.MatMul))
	}
	// The rows of ops with several kernels name the one that ran.
	for _, r := range res.Estimation {
		ep := kernels.EstParams{Hq: p.Hq, Hkv: p.Hkv, D: p.D, S: r.N, B: p.Block}
		want := ""
		switch {
		case strings.HasPrefix(r.Name, "last-block"):
			want = kernels.EstimateKernel(dev, ep)
		case strings.HasPrefix(r.Name, "block map"):
			want = kernels.BlockMapKernel(dev, ep)
		}
		if r.Variant != want {
			t.Errorf("%s n=%d: variant %q, want %q", r.Name, r.N, r.Variant, want)
		}
	}
	for _, r := range res.MatMul {
		if want := kernels.MatMulKernel(dev, r.M, r.N, r.K, runtime.F16); r.Variant != want || want == "" {
			t.Errorf("matmul %s M=%d: variant %q, want %q", r.Name, r.M, r.Variant, want)
		}
	}
	// The exported masks are the ones timed, and they read back.
	man, err := ReadManifest(p.MaskDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Masks) != 4 || man.Hq != 4 || man.Block != 32 || man.Format == "" {
		t.Fatalf("manifest %+v", man)
	}
	for _, e := range man.Masks {
		m, err := LoadMask(p.MaskDir, man, e)
		if err != nil {
			t.Fatal(err)
		}
		want := RandomMask(p.Seed, e.N, p.Block, p.Hq, e.Density)
		if !slices.Equal(m.Cols, want.Cols) || !slices.Equal(m.RowPtr, want.RowPtr) {
			t.Fatalf("mask %s differs from the timed one", MaskName(e.N, e.Density))
		}
		i := slices.IndexFunc(res.Attention, func(r AttnRow) bool { return r.Mask == MaskName(e.N, e.Density) })
		if i < 0 || res.Attention[i].Blocks != e.Blocks {
			t.Fatalf("mask %v has no matching row", e)
		}
	}
	js := filepath.Join(dir, "k.json")
	if err := rep.WriteJSON(js); err != nil {
		t.Fatal(err)
	}
	raw, err := ReadReport(js)
	if err != nil || raw.Bench != "kernels" || raw.Device.Name == "" || raw.Commit == "" || raw.Date == "" {
		t.Fatalf("%+v %v", raw, err)
	}
	md := Markdown(rep, KernelTables(res))
	if !strings.Contains(md, "| 256 | sparse | 0.30 |") || !strings.Contains(md, "proj") {
		t.Fatalf("markdown:\n%s", md)
	}
	if n := drawable(KernelPlots(res)); n != 3 {
		t.Fatalf("%d plots with points, want 3", n)
	}
}

func TestRunKernelsSkipsOversize(t *testing.T) {
	dev := gputest.Device(t)
	lim := dev.Info().MaxStorageBufferRange
	if lim == 0 || lim > 1<<31 {
		t.Skipf("maxStorageBufferRange %d: no cheap oversize length", lim)
	}
	// Q of n·4·256·2 bytes > the binding limit.
	n := int(lim/(4*256*2)) + 128
	rep, err := RunKernels(dev, KernelParams{Lens: []int{n}, Densities: []float64{0.5}, Hq: 4, Hkv: 4, D: 256, Block: 128, Warmup: 0, Reps: 1})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*KernelResults)
	if len(res.Attention) != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "maxStorageBufferRange") {
		t.Fatalf("%+v", res)
	}
}

// tinyModel writes the tiny random model and a small corpus.
func tinyModel(t *testing.T) (dir, corpus string) {
	dir = t.TempDir()
	if _, err := GenModel(dir, GenModelParams{Shape: "tiny", Context: 1024, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	corpus = filepath.Join(dir, "corpus.txt")
	text := strings.Repeat("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.\n", 12)
	if err := os.WriteFile(corpus, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, corpus
}

func TestRunPrefillTiny(t *testing.T) {
	gputest.Device(t) // skip without Vulkan
	dir, corpus := tinyModel(t)
	for _, c := range []string{"", corpus} {
		rep, err := RunPrefill(context.Background(), PrefillParams{ModelParams: ModelParams{Model: dir},
			Lens: []int{64, 300}, Methods: []string{"dense", "flex"}, Warmup: 1, Reps: 2, Seed: 1, Corpus: c})
		if err != nil {
			t.Fatal(err)
		}
		res := rep.Results.(*PrefillResults)
		if res.Layers != 2 || res.Heads != 4 {
			t.Fatalf("%+v", res)
		}
		// flex runs when sparse attention is wired, else it is skipped with the reason.
		want := 4
		if len(res.Skipped) == 1 {
			want = 2
		}
		if len(res.Rows) != want {
			t.Fatalf("%d rows, %d skipped: %+v", len(res.Rows), len(res.Skipped), res)
		}
		for _, r := range res.Rows {
			if !(r.Median > 0) || !(r.TokensPerS > 0) || r.Density <= 0 || r.Density > 1 || !(r.SpeedupVsDense > 0) {
				t.Fatalf("row %+v", r)
			}
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatal(err)
		}
		if n := drawable(PrefillPlots(res)); n != 2 {
			t.Fatalf("%d plots with points, want 2", n)
		}
	}
}

// tinyHeldOut writes a plain-text held-out file of about n bytes of varied
// words (the byte tokenizer makes one token per byte).
func tinyHeldOut(t *testing.T, dir string, n int) string {
	t.Helper()
	words := strings.Fields("garden silver window marble orange castle forest bridge candle hunter pepper rocket winter summer spring planet harbor meadow valley thunder island shadow copper falcon")
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(words[(i*7+i/5)%len(words)])
		if i%9 == 8 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	path := filepath.Join(dir, "heldout.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunAccuracyTiny(t *testing.T) {
	gputest.Device(t)
	dir, _ := tinyModel(t)
	ho := tinyHeldOut(t, dir, 6000)
	small := "paper:block=32,min_budget=64"
	var checkpoints int
	p := AccuracyParams{ModelParams: ModelParams{Model: dir, Preset: small}, Lens: []int{384}, Methods: []string{"dense", "flex", "share"},
		FlexPreset: "flex:block=32,min_budget=64", HeldOut: ho, PPLLens: []int{256}, PPLWindows: 4, Tasks: []string{"secret", "secret-multi", "kv"},
		Samples: 3, TaskSamples: map[string]int{"secret-multi": 2}, Depths: []float64{0.5}, Trials: 1, Seed: 2, MaxNew: map[string]int{"kv": 4},
		Ablations:  []Variant{{Label: "no-excl", Attention: "share", Preset: small + ",exclusion=none", What: "no exclusion"}},
		Checkpoint: func(*Report) error { checkpoints++; return nil }}
	p.Logf = t.Logf
	rep, err := RunAccuracy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*AccuracyResults)
	if len(res.Skipped) != 0 {
		t.Fatalf("skipped: %+v", res.Skipped)
	}
	// Jobs: perplexity and secret for 3 methods, the ablation, then
	// secret-multi and kv for 3 methods.
	if checkpoints != 3*2+1+3 || len(res.Done) != checkpoints {
		t.Fatalf("%d checkpoints, done %v", checkpoints, res.Done)
	}
	if len(res.Perplexity) != 3 {
		t.Fatalf("%d perplexity rows: %+v", len(res.Perplexity), res.Perplexity)
	}
	for _, r := range res.Perplexity {
		// 4 of the 23 windows of 256 in 6000 bytes; every prediction scored.
		if r.Windows != 4 || r.Scored != 4*255 || !(r.NLL > 0) || !(r.CI.Lo < r.NLL && r.NLL < r.CI.Hi) || r.DeltaNLL == nil || r.DeltaCI == nil {
			t.Fatalf("perplexity %+v", r)
		}
		if r.Method == "dense" && (*r.DeltaNLL != 0 || r.DeltaCI.Lo != 0 || r.DeltaCI.Hi != 0) {
			t.Fatalf("dense ΔNLL %v %v", *r.DeltaNLL, *r.DeltaCI)
		}
	}
	// 3 secret + 2 secret-multi + 1 kv samples per method, 3 secret for the ablation.
	if len(res.Samples) != 3*(3+2+1)+3 {
		t.Fatalf("%d samples", len(res.Samples))
	}
	ids := map[string]int{}
	for _, s := range res.Samples {
		ids[s.ID]++
		if s.Tokens > s.N || s.Tokens < s.N/2 || s.Answer == "" || s.Output == "" {
			t.Fatalf("sample %+v", s)
		}
		if s.Task == "secret-multi" && len(s.Hits) != 3 {
			t.Fatalf("secret-multi sample with %d query hits", len(s.Hits))
		}
	}
	// Each sample carries the statistics of its own prefill: the sparse
	// methods compute fewer blocks than dense.
	for _, m := range []string{"flex", "share"} {
		if !slices.ContainsFunc(res.Samples, func(s Sample) bool { return s.Method == m && s.Density < 1 }) {
			t.Errorf("no %s sample with a density below 1: the statistics are not the prefill's", m)
		}
	}
	for id, c := range ids {
		if want := 3 + map[bool]int{true: 1}[strings.HasPrefix(id, "secret/")]; c != want {
			t.Fatalf("sample %s seen by %d variants, want %d (the same samples for every variant)", id, c, want)
		}
	}
	var overall int
	for _, s := range res.Summary {
		if !(s.CI.Lo <= s.Accuracy && s.Accuracy <= s.CI.Hi) || s.CI.Lo < 0 || s.CI.Hi > 1 || s.P == nil || *s.P < 0 || *s.P > 1 {
			t.Fatalf("summary %+v", s)
		}
		if s.Method == "dense" && (*s.Gains != 0 || *s.Losses != 0 || *s.P != 1) {
			t.Fatalf("dense vs dense %+v", s)
		}
		if s.N == 0 {
			overall++
		}
		if s.Task == "secret-multi" && len(s.QueryAccuracy) != 3 {
			t.Fatalf("secret-multi summary %+v", s)
		}
	}
	if overall != 0 { // one length: no pooled rows
		t.Fatalf("%d pooled summaries", overall)
	}
	// dense, flex and share as reference rows, then the ablation.
	if len(res.Ablations) != 4 || res.Ablations[2].Label != "share" || res.Ablations[3].Label != "no-excl" || res.Ablations[3].Total != 3 || res.Ablations[3].PVsShare == nil {
		t.Fatalf("ablations %+v", res.Ablations)
	}
	md := Markdown(rep, AccuracyTables(res))
	for _, want := range []string{"Perplexity", "trained format", "| secret | 384 | share |", "Ablations", "| no-excl |", "InfiniteBench", "McNemar"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
	if n := drawable(AccuracyPlots(res)); n != 2 {
		t.Fatalf("%d plots with points, want 2", n)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	// A spent budget skips every job after the first.
	p.Budget, p.Checkpoint = time.Nanosecond, nil
	p.Ablations, p.Tasks, p.PPLLens = nil, []string{"secret"}, nil
	rep, err = RunAccuracy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if res := rep.Results.(*AccuracyResults); len(res.Done) != 1 || len(res.Skipped) != 2 || !strings.Contains(res.Skipped[0].Reason, "budget") {
		t.Fatalf("budget: done %v, skipped %+v", res.Done, res.Skipped)
	}
}

// TestTimerWarmupFor: the warm-up runs go on until WarmupFor has passed
// (here with no warm-up count at all), and only Reps runs are returned.
func TestTimerWarmupFor(t *testing.T) {
	dev := gputest.Device(t)
	buf, err := dev.NewTensor(runtime.U32, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	for _, c := range []struct {
		warmup   int
		warmFor  time.Duration
		wantRuns int // at least
	}{
		{0, 0, 2},
		{2, 0, 4},
		{0, 60 * time.Millisecond, 3},
	} {
		runs := 0
		tm := &Timer{Dev: dev, Warmup: c.warmup, WarmupFor: c.warmFor, Reps: 2}
		began := time.Now()
		ms, err := tm.Samples(func(r *runtime.Recorder) error {
			runs++
			return kernels.Fill(r, buf, uint32(runs))
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || runs < c.wantRuns || time.Since(began) < c.warmFor {
			t.Errorf("warmup %d, for %v: %d samples after %d runs in %v", c.warmup, c.warmFor, len(ms), runs, time.Since(began))
		}
		if c.warmFor == 0 && runs != c.wantRuns {
			t.Errorf("warmup %d: %d runs, want exactly %d", c.warmup, runs, c.wantRuns)
		}
	}
}

// TestRunAccuracyEveryWindow: PPLWindows 0 scores every whole window of the
// held-out stream (it once meant one), and a length with a single window,
// whose interval is undefined, still writes its report as JSON (null bounds).
func TestRunAccuracyEveryWindow(t *testing.T) {
	gputest.Device(t)
	dir, _ := tinyModel(t)
	ho := tinyHeldOut(t, dir, 3000)
	p := AccuracyParams{ModelParams: ModelParams{Model: dir}, Lens: []int{256}, Methods: []string{"dense"},
		HeldOut: ho, PPLLens: []int{256, 2048}, Seed: 2}
	p.Logf = t.Logf
	rep, err := RunAccuracy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*AccuracyResults)
	got := map[int]PPLRow{}
	for _, r := range res.Perplexity {
		got[r.N] = r
	}
	if w := got[256].Windows; w < 8 {
		t.Errorf("n=256: %d windows of a 3000-byte stream; want every whole window (≥ 8)", w)
	}
	one := got[2048]
	if one.Windows != 1 || !math.IsNaN(one.CI.Lo) {
		t.Fatalf("n=2048: %d windows, interval %v; want 1 window and an undefined interval", one.Windows, one.CI)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("report with an undefined interval: %v", err)
	}
	if !strings.Contains(string(b), `"lo":null`) {
		t.Errorf("the undefined interval is not null in the JSON")
	}
}

// TestRunKernelsQuantTiny times the by-weight-type matmuls at a tiny shape
// (no attention) and checks that every row names the kernel that ran and
// has a positive time, bandwidth and µs figure.
func TestRunKernelsQuantTiny(t *testing.T) {
	dev := gputest.Device(t)
	p := KernelParams{Warmup: 0, Reps: 1, Seed: 3, MatMulTypes: []string{"f16", "q8_0", "q4_k", "q6_k"},
		QuantShapes: []MatShape{{"tiny", 40, 256}}, QuantM: []int{1, 5}}
	rep, err := RunKernels(dev, p)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*KernelResults)
	if len(res.QuantMatMul) != 4*2 || len(res.Attention) != 0 {
		t.Fatalf("%d by-type rows (want 8), %d attention rows (want 0)", len(res.QuantMatMul), len(res.Attention))
	}
	for _, r := range res.QuantMatMul {
		dt, err := weightType(r.Type)
		if err != nil {
			t.Fatal(err)
		}
		want := kernels.MatMulKernel(dev, r.M, r.N, r.K, runtime.F16)
		switch {
		case dt.IsQuantized() && r.M <= kernels.GEMVMaxM:
			want = kernels.QuantMatVecKernel(dev, dt, r.M, r.N, r.K)
		case dt.IsQuantized():
			want = "dequant + " + want
		}
		rb := int64(r.N * r.K * 2)
		if dt.IsQuantized() {
			b, _ := dt.RowBytes(r.K)
			rb = int64(r.N * b)
		}
		if r.Variant != want || !(r.Us > 0) || !(r.GBps > 0) || r.WeightBytes != rb {
			t.Errorf("row %+v: want variant %q, %d weight bytes, positive µs and GB/s", r, want, rb)
		}
	}
	md := Markdown(rep, KernelTables(res))
	if !strings.Contains(md, "| q4_k | 1×40×256 | "+kernels.QuantMatVecKernel(dev, runtime.Q4_K, 1, 40, 256)) || strings.Contains(md, "Attention") {
		t.Fatalf("markdown:\n%s", md)
	}
}
