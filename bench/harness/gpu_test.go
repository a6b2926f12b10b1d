package harness

import (
	"context"
	"encoding/json"
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
	if len(res.Estimation) != 2*4 || len(res.MatMul) != 2 {
		t.Fatalf("%d estimation rows (want 8), %d matmul rows (want 2)", len(res.Estimation), len(res.MatMul))
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
	files, err := DrawAll(filepath.Join(dir, "plots"), KernelPlots(res))
	if err != nil || len(files) != 3 {
		t.Fatalf("plots %v %v", files, err)
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
		if files, err := DrawAll(t.TempDir(), PrefillPlots(res)); err != nil || len(files) != 2 {
			t.Fatalf("%v %v", files, err)
		}
	}
}

func TestRunAccuracyTiny(t *testing.T) {
	gputest.Device(t)
	dir, corpus := tinyModel(t)
	p := AccuracyParams{ModelParams: ModelParams{Model: dir}, Lens: []int{384, 512}, Methods: []string{"dense", "vs"},
		Corpus: corpus, PPLWindows: 2, Tasks: []string{"secret", "kv", "passkey"}, Depths: []float64{0, 1}, Trials: 1, Seed: 2,
		MaxNew: map[string]int{"passkey": 3, "secret": 3, "kv": 4}}
	// passkey needs more byte tokens: it runs separately.
	p.Tasks = []string{"secret", "kv"}
	rep, err := RunAccuracy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*AccuracyResults)
	methods := 2 - len(res.Skipped)
	if len(res.Perplexity) != 2*methods {
		t.Fatalf("%d perplexity rows for %d methods: %+v", len(res.Perplexity), methods, res)
	}
	for _, r := range res.Perplexity {
		if r.Windows != 2 || r.Scored != 2*(r.N/2) || !(r.NLL > 0) || r.DeltaNLL == nil {
			t.Fatalf("perplexity %+v", r)
		}
		if r.Method == "dense" && *r.DeltaNLL != 0 {
			t.Fatalf("dense ΔNLL %v", *r.DeltaNLL)
		}
	}
	if len(res.Samples) != methods*2*2*2 || len(res.Summary) != methods*2*2 {
		t.Fatalf("%d samples, %d summaries", len(res.Samples), len(res.Summary))
	}
	for _, s := range res.Samples {
		if s.Tokens > s.N || s.Tokens < s.N/2 || s.Answer == "" {
			t.Fatalf("sample %+v", s)
		}
	}
	// The same prompts for every method.
	if methods == 2 && res.Samples[0].Answer != res.Samples[len(res.Samples)/2].Answer {
		t.Fatal("methods saw different samples")
	}
	md := Markdown(rep, AccuracyTables(res))
	if !strings.Contains(md, "Perplexity") || !strings.Contains(md, "| secret | 384 |") {
		t.Fatalf("markdown:\n%s", md)
	}
	if files, err := DrawAll(t.TempDir(), AccuracyPlots(res)); err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	// passkey at 512 with the byte tokenizer.
	p.Lens, p.Tasks, p.Corpus, p.Methods = []int{512}, []string{"passkey"}, "", []string{"dense"}
	rep, err = RunAccuracy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if res := rep.Results.(*AccuracyResults); len(res.Samples) != 2 || len(res.Perplexity) != 0 {
		t.Fatalf("%+v", res)
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
