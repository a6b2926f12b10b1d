package gpu

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/share"
)

// TestLongPrefillTiming times whole prefills of a random 4-layer model
// (16 query heads, 4 KV heads, head dim 128) with each planner, with GPU
// profiling. It runs only when SHAREPREFILL_GPU_BENCH is set to the prompt
// length (e.g. 16384); it is meant for a real GPU.
func TestLongPrefillTiming(t *testing.T) {
	env := os.Getenv("SHAREPREFILL_GPU_BENCH")
	if env == "" {
		t.Skip("set SHAREPREFILL_GPU_BENCH=<tokens> to run")
	}
	n, err := strconv.Atoi(env)
	if err != nil || n < 256 {
		t.Fatalf("SHAREPREFILL_GPU_BENCH=%q: want a length ≥ 256", env)
	}
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cfg := model.Config{
		Architecture: model.ArchLlama, HiddenSize: 2048, NumLayers: 4, NumHeads: 16, NumKVHeads: 4, HeadDim: 128,
		IntermediateSize: 2048, VocabSize: 256, MaxPositionEmbeddings: n, RMSNormEps: 1e-5, RopeTheta: 500000,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "float16",
	}
	dir := t.TempDir()
	if err := model.WriteRandomCheckpoint(dir, cfg, 1); err != nil {
		t.Fatal(err)
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := model.NewEngine(d, &cfg, ck, model.EngineOptions{Context: n})
	ck.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens := randomTokens(rng, n, cfg.VocabSize)
	release, _ := share.Preset("release")
	paper := share.DefaultConfig()
	type run struct {
		name string
		mk   func() (share.Planner, error)
	}
	runs := []run{
		{"engine-dense", nil},
		{"dense-planner", func() (share.Planner, error) { return share.NewDense(128) }},
		{"flexprefill-release", func() (share.Planner, error) { return share.NewFlexPrefill(release) }},
		{"shareprefill-paper-noclusters", func() (share.Planner, error) { return share.NewSharePrefill(paper, nil) }},
	}
	ctx := context.Background()
	for _, r := range runs {
		var a *Attention
		if r.mk != nil {
			p, err := r.mk()
			if err != nil {
				t.Fatal(err)
			}
			if a, err = New(p, Options{}); err != nil {
				t.Fatal(err)
			}
			e.SetAttention(a)
		} else {
			e.SetAttention(nil)
		}
		var best time.Duration
		for rep := 0; rep < 3; rep++ {
			e.Reset()
			start := time.Now()
			if _, err := e.Prefill(ctx, tokens); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); rep == 0 || el < best {
				best = el
			}
		}
		if a == nil {
			t.Logf("%-30s n=%d prefill %v", r.name, n, best)
			continue
		}
		sum := a.Stats().Summarize()
		t.Logf("%-30s n=%d prefill %v | plan recording (host) %v | mean density %.3f %v",
			r.name, n, best, sum.PlanCPU, sum.MeanDensity, sum.HeadsPerMethod)
	}
}
