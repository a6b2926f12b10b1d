package model

import (
	"context"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// benchLM8KStructure has the structure of bench-lm-8k (the small model of
// the speed suite: 8 layers, 8 query heads and 2 KV heads of head_dim 64,
// tied embeddings) at a quarter of its width and vocabulary (hidden 128,
// intermediate 352, vocabulary 2048), which records the same commands per
// token and runs faster on lavapipe.
func benchLM8KStructure() *Config {
	return &Config{
		Architecture: ArchLlama, HiddenSize: 128, NumLayers: 8, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 352, VocabSize: 2048, MaxPositionEmbeddings: 16384, RMSNormEps: 1e-5, RopeTheta: 500000,
		TieWordEmbeddings: true, BOSTokenID: 0,
	}
}

// stepCost is what one generated token cost: device counters and the host
// time of the traced recording, submission and wait.
type stepCost struct {
	c                    runtime.Counters
	record, submit, wait time.Duration
}

// generateSteps runs Generate for n tokens after prompt on a traced engine and
// returns the cost of each decode step (tokens 2..n: the first comes from the
// prompt's prefill).
func generateSteps(t *testing.T, e *Engine, prompt []int, n int, opts SampleOptions) []stepCost {
	t.Helper()
	tr := runtime.NewTrace()
	if err := e.SetTrace(tr); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.SetTrace(nil); err != nil {
			t.Fatal(err)
		}
	}()
	var snaps []runtime.Counters
	var evs []int
	opts.MaxTokens = n
	_, err := e.Generate(context.Background(), prompt, opts, func(int) error {
		snaps = append(snaps, e.Device().Counters())
		evs = append(evs, len(tr.Host()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	host := tr.Host()
	var out []stepCost
	for i := 1; i < len(snaps); i++ {
		s := stepCost{c: snaps[i].Sub(snaps[i-1])}
		for _, ev := range host[evs[i-1]:evs[i]] {
			d := ev.End - ev.Start
			switch ev.Kind {
			case "record":
				s.record += d
			case "submit":
				s.submit += d
			case "wait":
				s.wait += d
			}
		}
		out = append(out, s)
	}
	return out
}

// TestDecodeStepCounts counts what one greedy decode step of a model of
// bench-lm-8k's structure records and submits: the per-token command count
// is the decode path's latency budget on a GPU, where every dispatch behind
// a barrier costs a few microseconds. It logs the host time spent recording
// and waiting.
func TestDecodeStepCounts(t *testing.T) {
	d := gputest.Device(t)
	cfg := benchLM8KStructure()
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// A prompt long enough that decode attention splits the KV range over
	// several workgroups (as at the benchmark's 4K and 32K contexts).
	prompt := make([]int, 150)
	for i := range prompt {
		prompt[i] = (i*37 + 5) % cfg.VocabSize
	}
	steps := generateSteps(t, e, prompt, 4, SampleOptions{})
	L := uint64(cfg.NumLayers)
	// Per layer: RMSNorm, q/k/v mat-vecs, RoPE on q and on k, split-KV
	// attention and its reduction, the o-projection, the residual add,
	// RMSNorm, gate, up, SwiGLU, down, the residual add (16 dispatches) and
	// the K and V appends (2 copies). Around the layers: the token-id upload
	// (a copy) and the embedding; the final row copy, RMSNorm, LM head,
	// argmax and the token read-back (a copy). Barriers: 13 per layer (only
	// the q/k/v mat-vecs, RoPE on q and k, the K and V appends, and gate
	// and up share one), 8 around them.
	want := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 16*L + 3, Copies: 1 + 2*L + 2, Barriers: 13*L + 8}
	for i, s := range steps {
		c := s.c
		t.Logf("step %d: %d dispatches, %d copies, %d barriers, %d submits, %d waits, %d allocations; host: record %v, submit %v, wait %v",
			i+1, c.Dispatches, c.Copies, c.Barriers, c.Submits, c.Waits, c.Allocs, s.record, s.submit, s.wait)
		if c.Dispatches != want.Dispatches || c.Copies != want.Copies || c.Barriers != want.Barriers ||
			c.Submits != want.Submits || c.Waits != want.Waits || c.Allocs != 0 {
			t.Errorf("step %d: %d dispatches, %d copies, %d barriers, %d submits, %d waits, %d allocations; want %d, %d, %d, %d, %d, 0",
				i+1, c.Dispatches, c.Copies, c.Barriers, c.Submits, c.Waits, c.Allocs,
				want.Dispatches, want.Copies, want.Barriers, want.Submits, want.Waits)
		}
	}
}
