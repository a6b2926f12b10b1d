package ref

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/internal/shareddata"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
)

// storiesDir is stories260K in the shared root, with the outputs of
// transformers under reference/.
const storiesDir = "data/stories260K-hf"

// loadStories loads stories260K from the shared root into a Llama, or
// skips (see internal/shareddata).
func loadStories(t *testing.T) *Llama {
	t.Helper()
	dir := filepath.Dir(shareddata.Path(t, storiesDir+"/config.json"))
	cfg, w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewLlama(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readReference decodes the JSON file name of stories260K's reference
// outputs into v, or skips.
func readReference(t *testing.T, name string, v any) {
	t.Helper()
	p := shareddata.Path(t, storiesDir+"/reference/"+name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

func TestStoriesGreedyFromBOS(t *testing.T) {
	r := loadStories(t)
	var ref struct {
		StartIDs     []int `json:"start_ids"`
		GeneratedIDs []int `json:"generated_ids"`
	}
	readReference(t, "greedy_from_bos.json", &ref)
	got, err := r.Greedy(ref.StartIDs, 256, func(tok int) bool { return tok == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ref.GeneratedIDs) {
		for i := range min(len(got), len(ref.GeneratedIDs)) {
			if got[i] != ref.GeneratedIDs[i] {
				t.Fatalf("first difference at %d: got %d, want %d (got %d tokens, want %d)", i, got[i], ref.GeneratedIDs[i], len(got), len(ref.GeneratedIDs))
			}
		}
		t.Fatalf("got %d tokens, want %d", len(got), len(ref.GeneratedIDs))
	}
}

func TestStoriesLogitsOnceUponATime(t *testing.T) {
	r := loadStories(t)
	var ref struct {
		InputIDs    []int     `json:"input_ids"`
		LastLogits  []float64 `json:"last_logits"`
		PerPosition []struct {
			Pos        int       `json:"pos"`
			Top5IDs    []int     `json:"top5_ids"`
			Top5Logits []float64 `json:"top5_logits"`
		} `json:"per_position"`
	}
	readReference(t, "logits_once_upon_a_time.json", &ref)
	if len(ref.LastLogits) != 512 || len(ref.PerPosition) != len(ref.InputIDs) {
		t.Fatalf("unexpected reference file layout")
	}
	close := func(got, want float64) bool { return math.Abs(got-want) <= 1e-4*math.Max(1, math.Abs(want)) }

	logits, err := r.ForwardF64(ref.InputIDs)
	if err != nil {
		t.Fatal(err)
	}
	// The same through the KV-cache path, rounded to float32.
	r.Reset()
	var stepLast []float32
	for _, tok := range ref.InputIDs {
		if stepLast, err = r.Step(tok); err != nil {
			t.Fatal(err)
		}
	}
	last := logits[len(logits)-1]
	var maxErr float64
	for i, want := range ref.LastLogits {
		if !close(last[i], want) || !close(float64(stepLast[i]), want) {
			t.Errorf("last logits[%d] = %v (Forward), %v (Step), want %v", i, last[i], stepLast[i], want)
		}
		maxErr = math.Max(maxErr, math.Abs(last[i]-want))
	}
	t.Logf("max |Δ| of last-position logits vs float64 reference: %.3g", maxErr)
	for _, p := range ref.PerPosition {
		for k, id := range p.Top5IDs {
			if got := logits[p.Pos][id]; !close(got, p.Top5Logits[k]) {
				t.Errorf("pos %d token %d: logit %v, want %v", p.Pos, id, got, p.Top5Logits[k])
			}
		}
		if got := argmax(logits[p.Pos]); got != p.Top5IDs[0] {
			t.Errorf("pos %d: argmax %d, want %d", p.Pos, got, p.Top5IDs[0])
		}
	}
}

func TestStoriesTinyStoriesNLL(t *testing.T) {
	r := loadStories(t)
	var ref struct {
		MeanNLL      float64   `json:"mean_nll"`
		PerSequence  []float64 `json:"per_sequence_mean_nll"`
		TokensScored int       `json:"tokens_scored"`
		InputIDs     [][]int   `json:"input_ids"`
	}
	readReference(t, "tinystories_sample_nll.json", &ref)
	if len(ref.InputIDs) == 0 {
		t.Skip("tinystories_sample_nll.json has no input_ids; this test would need the tokenizer")
	}
	var sum float64
	n := 0
	for i, ids := range ref.InputIDs {
		mean, per, err := r.NLL(ids)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(mean-ref.PerSequence[i]) > 1e-6 {
			t.Errorf("sequence %d: mean NLL %.9f, want %.9f", i, mean, ref.PerSequence[i])
		}
		for _, v := range per {
			sum += v
		}
		n += len(per)
	}
	mean := sum / float64(n)
	t.Logf("mean NLL %.6f over %d tokens (reference %.6f over %d)", mean, n, ref.MeanNLL, ref.TokensScored)
	if n != ref.TokensScored {
		t.Errorf("scored %d tokens, want %d", n, ref.TokensScored)
	}
	if math.Abs(mean-1.2664) > 0.01 || math.Abs(mean-ref.MeanNLL) > 1e-6 {
		t.Errorf("mean NLL %.6f, want %.6f", mean, ref.MeanNLL)
	}
}

// TestEmbeddedStoriesGreedy: the embedded stories260K gives the start of
// reference/greedy_from_bos.json ("Once upon a time, there was a little girl
// named Lily."), so that the reference is checked on a trained model even
// without the shared data.
func TestEmbeddedStoriesGreedy(t *testing.T) {
	want := []int{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337}
	cfg, w, err := model.LoadFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewLlama(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Greedy([]int{1}, len(want), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("greedy from BOS = %v, want %v", got, want)
	}
}
