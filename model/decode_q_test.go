package model

import (
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestDecodeStepCountsQuantized counts what one greedy decode step of a
// model of bench-lm-8k's structure quantized to Q8_0 at load records (every
// projection, the embedding table and the tied LM head Q8_0): on a GPU
// (decodeFusion for a GPU) the fused quantized mat-vecs give the f16
// model's 7 dispatches per layer (TestDecodeStepCounts), where the general
// kernels took 15; and so the step is 1 + 7L + 2 dispatches, not
// 1 + 15L + 3.
func TestDecodeStepCountsQuantized(t *testing.T) {
	d := gputest.Device(t)
	cfg := benchLM8KStructure()
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 256, SyncDecode: true, FreshDecode: true, Quantize: QuantQ8_0})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n := countTypes(e.WeightTypes())[gguf.Q8_0]; n != 7*cfg.NumLayers+1 {
		t.Fatalf("%d Q8_0 matrices on the device, want %d (%v)", n, 7*cfg.NumLayers+1, e.WeightTypes())
	}
	// A prompt long enough that decode attention splits the KV range (the
	// splits are merged in the attention dispatch), as in
	// TestDecodeStepCounts.
	prompt := make([]int, 150)
	for i := range prompt {
		prompt[i] = (i*37 + 5) % cfg.VocabSize
	}
	L := uint64(cfg.NumLayers)
	// As TestDecodeStepCounts' fused and general steps.
	fused := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 6*L + 2, Copies: 2, Barriers: 1 + 1 + 6*L + 4}
	general := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 14*L + 3, Copies: 3, Barriers: 1 + 1 + 11*L + 6}
	for _, c := range []struct {
		name   string
		gpu    bool
		prompt []int
		want   runtime.Counters
	}{{"fused (a GPU's choice)", true, prompt, fused}, {"general kernels", false, []int{8}, general}} { // the second continues the cache
		if c.gpu {
			e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = e.decodeFusion(false)
		} else {
			e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = false, false, false
		}
		for i, s := range generateSteps(t, e, c.prompt, 3, SampleOptions{}) {
			got := s.c
			got.WaitTime = 0
			got.RecordCalls, got.VulkanCalls, got.SetWrites = 0, 0, 0
			t.Logf("%s, step %d: %d dispatches, %d copies, %d barriers", c.name, i+1, got.Dispatches, got.Copies, got.Barriers)
			if got != c.want {
				t.Errorf("%s, step %d: %d dispatches, %d copies, %d barriers, %d submits, %d waits, %d allocations; want %d, %d, %d, %d, %d, 0",
					c.name, i+1, got.Dispatches, got.Copies, got.Barriers, got.Submits, got.Waits, got.Allocs,
					c.want.Dispatches, c.want.Copies, c.want.Barriers, c.want.Submits, c.want.Waits)
			}
		}
	}
}
