package model

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func storiesEngine(t *testing.T, d *runtime.Device, opts EngineOptions) *Engine {
	t.Helper()
	cfg, err := LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	e, err := NewEngine(d, cfg, ck, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func argmax32(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func TestEngineStoriesGreedyFromBOS(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{})
	want := embeddedGreedyPrefix
	if dir, _ := findStoriesDir(); dir != "" {
		var ref struct {
			GeneratedIDs []int `json:"generated_ids"`
		}
		readJSON(t, filepath.Join(dir, "reference", "greedy_from_bos.json"), &ref)
		want = ref.GeneratedIDs
	} else {
		t.Logf("shared data absent: checking the first %d tokens only", len(want))
	}
	ctx := context.Background()
	logits, err := e.Prefill(ctx, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for len(got) < len(want) {
		tok := argmax32(logits)
		got = append(got, tok)
		if tok == 1 {
			break
		}
		if logits, err = e.Decode(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("greedy token %d: got %v, want %v", i, got[:min(i+1, len(got))], want[:i+1])
		}
	}
}

func TestEngineStoriesLogitsAndNLL(t *testing.T) {
	dir := storiesDir(t)
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{})
	var ref struct {
		InputIDs   []int     `json:"input_ids"`
		LastLogits []float64 `json:"last_logits"`
	}
	readJSON(t, filepath.Join(dir, "reference", "logits_once_upon_a_time.json"), &ref)
	ctx := context.Background()
	logits, err := e.Prefill(ctx, ref.InputIDs)
	if err != nil {
		t.Fatal(err)
	}
	rel := gputest.RelErr(logits, ref.LastLogits)
	var maxAbs float64
	for i, w := range ref.LastLogits {
		maxAbs = math.Max(maxAbs, math.Abs(float64(logits[i])-w))
	}
	t.Logf("\"Once upon a time\" last logits: relative error %.3g, max |Δ| %.3g", rel, maxAbs)
	if rel > 5e-3 || maxAbs > 0.05 {
		t.Errorf("logits differ from the float64 reference: relative error %.3g, max |Δ| %.3g (f16 tolerance 5e-3, 0.05)", rel, maxAbs)
	}

	var nref struct {
		MeanNLL  float64 `json:"mean_nll"`
		InputIDs [][]int `json:"input_ids"`
	}
	readJSON(t, filepath.Join(dir, "reference", "tinystories_sample_nll.json"), &nref)
	if len(nref.InputIDs) == 0 {
		t.Skip("tinystories_sample_nll.json has no input_ids")
	}
	var sum float64
	n := 0
	for _, ids := range nref.InputIDs {
		mean, err := e.NLL(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		sum += mean * float64(len(ids)-1)
		n += len(ids) - 1
	}
	mean := sum / float64(n)
	t.Logf("TinyStories sample mean NLL %.5f over %d tokens (reference %.5f)", mean, n, nref.MeanNLL)
	if math.Abs(mean-1.2664) > 0.01 {
		t.Errorf("mean NLL %.5f, want 1.2664 ± 0.01", mean)
	}
}

func TestEngineErrors(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{Context: 128, ChunkTokens: 128})
	ctx := context.Background()
	long := make([]int, 129)
	for i := range long {
		long[i] = 1
	}
	if _, err := e.Prefill(ctx, long); !errors.Is(err, ErrContextFull) || !strings.Contains(err.Error(), "128") {
		t.Errorf("prompt longer than the context: %v, want ErrContextFull naming the limit", err)
	}
	if _, err := e.Prefill(ctx, []int{1, 5000}); err == nil || !strings.Contains(err.Error(), "5000") {
		t.Errorf("token id out of the vocabulary: %v, want an error naming it", err)
	}
	if e.Pos() != 0 {
		t.Errorf("failed prefills moved the cache to %d", e.Pos())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Prefill(cctx, []int{1, 2, 3}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled prefill: %v, want context.Canceled", err)
	}
	cfg, _ := LoadConfigFS(stories260k.FS(), ".")
	big := *cfg
	// Far larger than any device (about 2 TB of weights), so that the memory
	// plan refuses it before anything is read.
	big.HiddenSize, big.IntermediateSize, big.NumHeads, big.NumKVHeads, big.NumLayers = 8192, 28672, 64, 8, 1000
	big.HeadDim = 128
	ck, _ := OpenCheckpointFS(stories260k.FS(), ".")
	defer ck.Close()
	if _, err := NewEngine(d, &big, ck, EngineOptions{Context: 4096}); !errors.Is(err, runtime.ErrOutOfDeviceMemory) || !strings.Contains(err.Error(), "GiB") {
		t.Errorf("a 900B-sized model: %v, want an out-of-memory error with the numbers", err)
	}
}

func TestEngineGenerate(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{})
	ctx := context.Background()
	var got []int
	st, err := e.Generate(ctx, []int{1}, SampleOptions{MaxTokens: len(embeddedGreedyPrefix)}, func(id int) error {
		got = append(got, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, embeddedGreedyPrefix) {
		t.Fatalf("greedy Generate = %v, want %v", got, embeddedGreedyPrefix)
	}
	if st.PromptTokens != 1 || st.GeneratedTokens != len(got) || st.FirstToken <= 0 {
		t.Errorf("stats %+v", st)
	}
	// Sampling: the same seed gives the same tokens; tokens are in range.
	run := func(seed uint64) []int {
		e.Reset()
		var out []int
		if _, err := e.Generate(ctx, []int{1, 403}, SampleOptions{MaxTokens: 20, Temperature: 0.9, TopP: 0.9, Seed: seed}, func(id int) error {
			out = append(out, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different samples: %v vs %v", a, b)
	}
	for _, id := range a {
		if id < 0 || id >= 512 {
			t.Fatalf("sampled id %d out of range", id)
		}
	}
}
