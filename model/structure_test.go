package model

import (
	"context"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// Structure tests: what a speed claim rests on, checked without a GPU by
// counting submissions, host waits and device allocations.

// TestDecodeStepStructure: every generated token costs one submission and
// one host wait (the forward pass, the sampler and the read-back of the
// sampled token are one batch), and no device allocation.
func TestDecodeStepStructure(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{Context: 256})
	prompt := []int{1, 403, 407, 261, 378}
	for _, temp := range []float64{0, 0.8} {
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		const n = 12
		st, err := e.Generate(context.Background(), prompt, SampleOptions{MaxTokens: n, Temperature: temp, TopP: 0.9, Seed: 3}, func(int) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		c := st.Counters
		if st.GeneratedTokens != n || c.Submits != n || c.Waits != n || c.Allocs != 0 {
			t.Errorf("temperature %v: %d tokens with %d submits, %d host waits, %d allocations; want %d, %d, %d, 0",
				temp, st.GeneratedTokens, c.Submits, c.Waits, c.Allocs, n, n, n)
		}
	}
}

// TestPrefillWaitsIndependentOfLayers: a long prefill flushes a batch per
// layer without waiting and waits once at the end, whatever the number of
// layers; a repeated call allocates nothing.
func TestPrefillWaitsIndependentOfLayers(t *testing.T) {
	d := gputest.Device(t)
	for _, layers := range []int{2, 5} {
		cfg := &Config{
			Architecture: ArchLlama, HiddenSize: 32, NumLayers: layers, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
			IntermediateSize: 64, VocabSize: 300, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, BOSTokenID: 1,
		}
		ck := checkpointOf(t, randomTensors(t, cfg, F16))
		e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 600})
		if err != nil {
			t.Fatal(err)
		}
		tokens := make([]int, 300) // ≥ submitEvery: a batch per layer
		for i := range tokens {
			tokens[i] = (i*7 + 3) % cfg.VocabSize
		}
		var c runtime.Counters
		for call := 0; call < 2; call++ {
			if err := e.Reset(); err != nil {
				t.Fatal(err)
			}
			before := d.Counters()
			if _, err := e.Prefill(context.Background(), tokens); err != nil {
				t.Fatal(err)
			}
			c = d.Counters().Sub(before)
		}
		// One batch per layer, one more for the first layer's attention
		// input (the GPU starts early) and one for the logits; one wait
		// at the end.
		if c.Submits != uint64(layers+2) || c.Waits != 1 || c.Allocs != 0 {
			t.Errorf("%d layers: %d submits, %d host waits, %d allocations; want %d, 1, 0", layers, c.Submits, c.Waits, c.Allocs, layers+2)
		}
		// The repeated call's host recording: every descriptor set comes
		// from the recorder's cache; a dispatch is one call into the
		// driver (barrier included), a copy one, and every barrier outside
		// a dispatch one, as is beginning (2) and ending (1) a batch; a
		// dispatch makes at most 4 Vulkan calls besides its barrier (the
		// pipeline when it changes, the set, the push constants, the
		// dispatch).
		if c.SetWrites != 0 || c.RecordCalls > c.Dispatches+c.Copies+c.Barriers+3*c.Submits ||
			c.VulkanCalls > 4*c.Dispatches+c.Copies+c.Barriers+3*c.Submits {
			t.Errorf("%d layers: the repeated call wrote %d descriptor sets, made %d calls into the driver and %d Vulkan calls for %d dispatches, %d copies, %d barriers, %d batches",
				layers, c.SetWrites, c.RecordCalls, c.VulkanCalls, c.Dispatches, c.Copies, c.Barriers, c.Submits)
		}
		e.Close()
	}
}

// TestDefaultChunk: by default a prefill's norms and matmuls take as many
// tokens at once as the longest prefill has, up to 256 MiB of chunk
// activations — a small model gets one chunk per layer (its matmuls then
// have enough workgroups to fill a GPU), a large one stays bounded.
func TestDefaultChunk(t *testing.T) {
	small := &Config{HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64, IntermediateSize: 1408, MaxPositionEmbeddings: 16384}
	big := &Config{HiddenSize: 4096, NumHeads: 32, NumKVHeads: 8, HeadDim: 128, IntermediateSize: 14336, MaxPositionEmbeddings: 131072}
	for _, c := range []struct {
		cfg  *Config
		opts EngineOptions
		want int
	}{
		{small, EngineOptions{Context: 16384}, 16384},
		{small, EngineOptions{Context: 300}, 384},
		{big, EngineOptions{Context: 131072}, 2304},
		{big, EngineOptions{Context: 65536, ChunkTokens: 512}, 512},
	} {
		o := c.opts
		if err := o.defaults(c.cfg); err != nil {
			t.Fatal(err)
		}
		if o.ChunkTokens != c.want {
			t.Errorf("hidden %d, context %d, ChunkTokens %d: chunk %d, want %d", c.cfg.HiddenSize, c.opts.Context, c.opts.ChunkTokens, o.ChunkTokens, c.want)
		}
		if c.opts.ChunkTokens == 0 && uint64(o.ChunkTokens)*chunkBytesPerToken(c.cfg) > chunkBudget {
			t.Errorf("chunk %d uses %d bytes, over the %d budget", o.ChunkTokens, uint64(o.ChunkTokens)*chunkBytesPerToken(c.cfg), chunkBudget)
		}
	}
}
