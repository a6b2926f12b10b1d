package model_test

import (
	"context"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestEngineMatchesReference runs tiny random models of each architecture on
// the GPU and with the float64 reference ref.Llama: all-position logits of a
// prefill, then decode steps, and a prefill split in two calls.
func TestEngineMatchesReference(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for name, cfg := range model.TinyConfigs() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := model.WriteRandomCheckpoint(dir, cfg, int64(rng.Uint32())); err != nil {
				t.Fatal(err)
			}
			mcfg, w, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			llama, err := ref.NewLlama(mcfg, w)
			if err != nil {
				t.Fatal(err)
			}
			ck, err := model.OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			e, err := model.NewEngine(d, mcfg, ck, model.EngineOptions{Context: 200, ChunkTokens: 128})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			n := 150 // > one chunk, not a multiple of it
			toks := make([]int, n+3)
			for i := range toks {
				toks[i] = rng.IntN(cfg.VocabSize)
			}
			want, err := llama.ForwardF64(toks)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var worst float64
			err = e.PrefillAll(ctx, toks[:n], func(pos int, logits []float32) {
				worst = math.Max(worst, gputest.RelErr(logits, want[pos]))
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := n; i < n+3; i++ {
				logits, err := e.Decode(ctx, toks[i])
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, gputest.RelErr(logits, want[i]))
			}
			// Prefill in two calls (chunked prefill through the KV cache).
			e.Reset()
			if _, err := e.Prefill(ctx, toks[:70]); err != nil {
				t.Fatal(err)
			}
			last, err := e.Prefill(ctx, toks[70:n])
			if err != nil {
				t.Fatal(err)
			}
			worst = math.Max(worst, gputest.RelErr(last, want[n-1]))
			t.Logf("%s: worst relative logit error %.3g", name, worst)
			if worst > 1e-2 {
				t.Errorf("%s: GPU logits differ from the reference: relative error %.3g > 1e-2", name, worst)
			}
		})
	}
}
