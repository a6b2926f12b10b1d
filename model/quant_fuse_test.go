package model_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestDecodeFusedQuantMix: a random 2-layer llama with Q4_K_M's mix (Q4_K
// q, k, o, gate and up, Q6_K v, down and LM head), its second layer's up
// in Q8_0 (a gate and an up of two types), decodes with the fused quantized
// mat-vecs a GPU takes (forced on lavapipe) to the logits of the general
// kernels within 5e-3 relative and to the same greedy tokens, in fewer
// dispatches: per layer RMSNorm with q and k (Q4_K) and, behind the same
// barrier, with v (Q6_K); RoPE with the KV append; attention; the
// o-projection with the residual add; RMSNorm with gate, up and SwiGLU (the
// second layer: RMSNorm with gate, RMSNorm with up, SwiGLU); the
// down-projection with the residual add.
func TestDecodeFusedQuantMix(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cfg, w := randomMixSource(t, rng)
	mix := map[string]gguf.Type{"token_embd.weight": gguf.Q4_K, "output.weight": gguf.Q6_K}
	for l := range cfg.NumLayers {
		for s, typ := range map[string]gguf.Type{"attn_q": gguf.Q4_K, "attn_k": gguf.Q4_K, "attn_v": gguf.Q6_K,
			"attn_output": gguf.Q4_K, "ffn_gate": gguf.Q4_K, "ffn_up": gguf.Q4_K, "ffn_down": gguf.Q6_K} {
			mix[fmt.Sprintf("blk.%d.%s.weight", l, s)] = typ
		}
	}
	mix["blk.1.ffn_up.weight"] = gguf.Q8_0
	shapes := map[string][]int{}
	for _, s := range cfg.ExpectedTensors() {
		shapes[s.Name] = s.Shape
	}
	for name, typ := range mix {
		hf, _ := model.HFTensorName(name)
		rows, k := shapes[hf][0], shapes[hf][1]
		w.Remove(name)
		w.AddTensor(name, typ, []uint64{uint64(k), uint64(rows)}, randomBlocks(rng, typ, rows, k))
	}
	gcfg, ck := openGGUF(t, writeGGUF(t, w))
	// The fused path keeps gate and up in f32 up to SwiGLU and normalises x
	// with its own sum: f16 roundings apart, as for f16 weights
	// (TestDecodeGeneralKernels).
	const tol = 5e-3
	opts := model.EngineOptions{Context: 64, FreshDecode: true}
	engines := [2]*model.Engine{} // fused, general
	for i := range engines {
		e, err := model.NewEngine(d, gcfg, ck, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		model.SetDecodeFusion(e, i == 0)
		engines[i] = e
	}
	if typ := engines[0].WeightTypes()["model.layers.0.self_attn.v_proj.weight"]; typ != gguf.Q6_K {
		t.Fatalf("v projection stored as %s, want Q6_K (%v)", typ, engines[0].WeightTypes())
	}
	ctx := context.Background()
	prompt := []int{1, 40, 7, 250, 33}
	for _, e := range engines {
		if _, err := e.Prefill(ctx, prompt); err != nil {
			t.Fatal(err)
		}
	}
	// Per layer: 2 + 1 + attention + 1 + (1, or 3 for mixed gate/up) + 1;
	// around them the embedding and the LM head with the final RMSNorm.
	// The general kernels: RMSNorm, q, k, v, RoPE with the KV append,
	// attention, o, add, RMSNorm, gate, up, SwiGLU, down, add.
	attn := uint64(1) // 6 cached tokens: the KV range is not split
	wantFused := 1 + (2 + 1 + attn + 1 + 1 + 1) + (2 + 1 + attn + 1 + 3 + 1) + 1
	wantGeneral := 1 + 2*(13+attn) + 2
	// Greedy decoding, both engines fed the general kernels' argmax: the
	// argmaxes agree wherever the top two logits are further apart than
	// the logits' tolerance.
	worst, tok := 0.0, 5
	for i := range 6 {
		var logits [2][]float32
		var got [2]uint64
		for j, e := range engines {
			before := d.Counters()
			l, err := e.Decode(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			logits[j], got[j] = l, d.Counters().Sub(before).Dispatches
		}
		if got[0] != wantFused || got[1] != wantGeneral {
			t.Errorf("step %d: %d dispatches fused, %d general; want %d, %d", i, got[0], got[1], wantFused, wantGeneral)
		}
		worst = math.Max(worst, relMax(logits[0], logits[1]))
		a, b := argmax(logits[0]), argmax(logits[1])
		if a != b && margin(logits[1]) > 2*tol*maxAbs(logits[1]) {
			t.Errorf("step %d: greedy token %d fused, %d general (top-2 margin %.3g)", i, a, b, margin(logits[1]))
		}
		tok = b
	}
	t.Logf("fused vs general quantized decode: logits max relative error %.2e; dispatches per step %d vs %d", worst, wantFused, wantGeneral)
	if worst > tol {
		t.Errorf("logits max relative error %.2e > %.g", worst, tol)
	}
}

// margin is the largest of v less the second largest.
func margin(v []float32) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range v {
		switch y := float64(x); {
		case y > a:
			a, b = y, a
		case y > b:
			b = y
		}
	}
	return a - b
}

// maxAbs is max|v|.
func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}
