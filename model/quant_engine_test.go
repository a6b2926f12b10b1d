package model

import (
	"context"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// Engines with quantized weights on the device, against the f16 path.

// quantPrompt is "Once upon a time" and more: longer than
// kernels.GEMVMaxM, so that prefill dequantizes into the scratch.
var quantPrompt = []int{1, 403, 407, 261, 378, 256, 289, 301, 420, 65, 410}

// newEngine opens cfg/ck on d with opts, closed at the end of the test.
func newEngine(t *testing.T, d *runtime.Device, cfg *Config, ck *Checkpoint, opts EngineOptions) *Engine {
	t.Helper()
	e, err := NewEngine(d, cfg, ck, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// maxRelErr is max|a−b| / max|b|.
func maxRelErr(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		num = math.Max(num, math.Abs(float64(a[i])-float64(b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	if len(a) != len(b) || math.IsNaN(num) {
		return math.Inf(1)
	}
	return num / den
}

// compareEngines runs the same calls on q and f: the logits of a prefill
// longer than GEMVMaxM (dequantized scratch), of a prompt of GEMVMaxM tokens
// (the quantized matrix-vector kernel), and of decode steps, and a greedy
// generation. It returns the largest relative error of the logits
// (max|q−f| / max|f|) and fails when the greedy tokens differ.
func compareEngines(t *testing.T, q, f *Engine) float64 {
	t.Helper()
	ctx := context.Background()
	var worst float64
	for _, prompt := range [][]int{quantPrompt, quantPrompt[:4]} {
		for _, e := range []*Engine{q, f} {
			if err := e.Reset(); err != nil {
				t.Fatal(err)
			}
		}
		lq, err := q.Prefill(ctx, prompt)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := f.Prefill(ctx, prompt)
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, maxRelErr(lq, lf))
		for _, tok := range []int{300, 17, 442} {
			if lq, err = q.Decode(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if lf, err = f.Decode(ctx, tok); err != nil {
				t.Fatal(err)
			}
			worst = math.Max(worst, maxRelErr(lq, lf))
		}
	}
	var gen [2][]int
	for i, e := range []*Engine{q, f} {
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		_, err := e.Generate(ctx, quantPrompt[:5], SampleOptions{MaxTokens: 32}, func(id int) error {
			gen[i] = append(gen[i], id)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(gen[0]) != len(gen[1]) {
		t.Errorf("greedy tokens: quantized %v, f16 %v", gen[0], gen[1])
	}
	for i := range min(len(gen[0]), len(gen[1])) {
		if gen[0][i] != gen[1][i] {
			t.Errorf("greedy token %d: quantized %d, f16 %d (quantized %v, f16 %v)", i, gen[0][i], gen[1][i], gen[0], gen[1])
			break
		}
	}
	return worst
}

// countTypes counts the matrices of each type among wt.
func countTypes(wt WeightTypes) map[gguf.Type]int {
	n := map[gguf.Type]int{}
	for _, t := range wt {
		n[t]++
	}
	return n
}

// TestEngineGGUFQuantized: the Q8_0 GGUF stories260K with its Q8_0
// matrices on the device (raw blocks; q/k/v/o/gate/up of 5 layers) gives
// the logits of the f16-dequantized-at-load path within 1e-2 relative and
// the same greedy tokens.
func TestEngineGGUFQuantized(t *testing.T) {
	d := gputest.Device(t)
	cfg, ck := openStoriesQ8(t)
	q := newEngine(t, d, cfg, ck, EngineOptions{Context: 64})
	f := newEngine(t, d, cfg, ck, EngineOptions{Context: 64, F16Weights: true})
	if n := countTypes(q.WeightTypes())[gguf.Q8_0]; n != 6*cfg.NumLayers {
		t.Fatalf("%d Q8_0 matrices on the device, want %d (%v)", n, 6*cfg.NumLayers, q.WeightTypes())
	}
	if n := countTypes(f.WeightTypes())[gguf.Q8_0]; n != 0 {
		t.Fatalf("F16Weights: %d Q8_0 matrices on the device", n)
	}
	if q.deq == nil || f.deq != nil {
		t.Errorf("dequantization scratch: quantized %v, f16 %v; want one only for the quantized engine", q.deq, f.deq)
	}
	worst := compareEngines(t, q, f)
	t.Logf("Q8_0 on the device vs dequantized at load: logits max relative error %.2e", worst)
	if worst > 1e-2 {
		t.Errorf("logits max relative error %.2e > 1e-2", worst)
	}
}

// TestEngineQuantizeQ8_0: the safetensors stories260K quantized to Q8_0 at
// load (EngineOptions.Quantize) against the f16 model. Q8_0 rounds each
// weight by up to half a step (amax/254 of its block), so the logits move
// by far more than in TestEngineGGUFQuantized; the bound is loose and the
// error is logged.
func TestEngineQuantizeQ8_0(t *testing.T) {
	d := gputest.Device(t)
	dir := storiesDir(t)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	q := newEngine(t, d, cfg, ck, EngineOptions{Context: 64, Quantize: QuantQ8_0})
	f := newEngine(t, d, cfg, ck, EngineOptions{Context: 64})
	if n := countTypes(q.WeightTypes())[gguf.Q8_0]; n != 6*cfg.NumLayers {
		t.Fatalf("%d Q8_0 matrices on the device, want %d", n, 6*cfg.NumLayers)
	}
	worst := compareEngines(t, q, f)
	t.Logf("--quantize q8_0 vs f16: logits max relative error %.2e", worst)
	if worst > 5e-2 {
		t.Errorf("logits max relative error %.2e > 5e-2", worst)
	}
}

// TestPlanMatchesAllocation: NewEngine allocates what PlanMemory planned,
// for f16 weights, Q8_0 GGUF blocks and Q8_0 quantized at load. The device
// gives every tensor its own memory block (BlockSize 16), so that its
// memory in use is the sum of the tensors (each rounded up to 16 bytes).
// The plan is an upper bound (it counts the decode attention's largest
// split-KV scratch, which the device may not need), and the slack is the
// same whatever the weights' types: the weights and the dequantization
// scratch are planned to the byte.
func TestPlanMatchesAllocation(t *testing.T) {
	d := gputest.Open(t, runtime.Options{BlockSize: 16})
	gcfg, gck := openStoriesQ8(t)
	scfg, sck := storiesParts(t)
	// Rounding: at most 16 bytes for each of about 20 tensors per layer
	// and 30 others.
	margin := int64(16 * (20*scfg.NumLayers + 30))
	slack := int64(-1)
	for _, tc := range []struct {
		name string
		cfg  *Config
		ck   *Checkpoint
		opts EngineOptions
	}{
		{"f16", scfg, sck, EngineOptions{Context: 128}},
		{"gguf q8_0", gcfg, gck, EngineOptions{Context: 128}},
		{"gguf f16", gcfg, gck, EngineOptions{Context: 128, F16Weights: true}},
		{"quantize q8_0", scfg, sck, EngineOptions{Context: 128, Quantize: QuantQ8_0}},
	} {
		before := d.MemoryInUse()
		e, err := NewEngine(d, tc.cfg, tc.ck, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := int64(d.MemoryInUse() - before)
		e.Close()
		plan := e.MemoryPlan()
		t.Logf("%s: planned %d B (%s), allocated %d B", tc.name, plan.Total, plan, got)
		s := int64(plan.Total) - got
		if s < -margin {
			t.Errorf("%s: allocated %d B, %d B more than planned", tc.name, got, -s)
		}
		if slack < 0 {
			slack = s
		} else if s-slack > margin || slack-s > margin {
			t.Errorf("%s: planned %d B more than allocated; the f16 model's plan, %d B (margin %d B)", tc.name, s, slack, margin)
		}
	}
}

// TestDecodeStepStructureQuantized: as TestDecodeStepStructure, with Q8_0
// weights on the device: a generated token is one submission, one host
// wait and no allocation.
func TestDecodeStepStructureQuantized(t *testing.T) {
	d := gputest.Device(t)
	cfg, ck := openStoriesQ8(t)
	e := newEngine(t, d, cfg, ck, EngineOptions{Context: 64})
	if countTypes(e.WeightTypes())[gguf.Q8_0] == 0 {
		t.Fatal("no Q8_0 matrix on the device")
	}
	const n = 12
	st, err := e.Generate(context.Background(), quantPrompt, SampleOptions{MaxTokens: n, Temperature: 0.8, TopP: 0.9, Seed: 3}, func(int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Counters; st.GeneratedTokens != n || c.Submits != n || c.Waits != n || c.Allocs != 0 {
		t.Errorf("%d tokens with %d submits, %d host waits, %d allocations; want %d, %d, %d, 0",
			st.GeneratedTokens, c.Submits, c.Waits, c.Allocs, n, n, n)
	}
}
