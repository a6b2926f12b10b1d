package model

import (
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
)

// TestPlanMemory8BQ4KMTarget checks the target, Llama-3-8B in
// Q4_K_M planning at most 6.5 GiB at 8K context, against PlanMemory with
// the types NewEngine stores llama.cpp's Q4_K_M mix in (PlanWeights): the
// file's Q4_K and Q6_K matrices as they are, the embedding table, which
// the file holds in Q4_K, dequantized to f16 (row lookups take f16). The
// plan is above the target only by that embedding's f16 excess: stored as
// the file's Q4_K blocks it would plan within 6.5 GiB.
func TestPlanMemory8BQ4KMTarget(t *testing.T) {
	const (
		gib    = 1 << 30
		target = 6.5 * gib
		vocab  = 128256
		hidden = 4096
	)
	cfg := &Config{Architecture: ArchLlama, ModelType: "llama", HiddenSize: hidden, NumLayers: 32, NumHeads: 32, NumKVHeads: 8,
		HeadDim: 128, IntermediateSize: 14336, VocabSize: vocab, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5, RopeTheta: 500000}
	// llama.cpp's Q4_K_M: Q6_K for the LM head and the attn_v and ffn_down
	// of the useMoreBits layers, Q4_K for the rest and the embedding.
	wt := WeightTypes{LMHeadName: gguf.Q6_K}
	for l := range cfg.NumLayers {
		for _, s := range layerMatrices {
			typ := gguf.Q4_K
			if (s == "self_attn.v_proj.weight" || s == "mlp.down_proj.weight") && useMoreBits(l, cfg.NumLayers) {
				typ = gguf.Q6_K
			}
			wt[LayerTensorName(l, s)] = typ
		}
	}
	plan, err := PlanMemory(cfg, wt, EngineOptions{Context: 8192}) // the embedding: absent from wt, so f16
	if err != nil {
		t.Fatal(err)
	}
	var f16 uint64
	for _, tb := range plan.WeightTypes {
		if tb.Type == gguf.F16 {
			f16 = tb.Bytes
		}
	}
	embedF16, embedQ4K := uint64(vocab*hidden*2), uint64(vocab*hidden/256*144)
	if f16 != embedF16 {
		t.Errorf("f16 weights %d B, want the embedding table alone, %d", f16, embedF16)
	}
	if plan.KVCache != 32*2*8192*1024*2 {
		t.Errorf("KV cache %d B, want 1 GiB (f16 keys and values of 32 layers × 8 heads × 128 at 8192 tokens)", plan.KVCache)
	}
	if plan.Dequant != 2*14336*4096 {
		t.Errorf("dequantization scratch %d B, want the f16 of one 14336 × 4096 matrix", plan.Dequant)
	}
	t.Logf("Llama-3-8B Q4_K_M at 8K as planned: %s", plan)
	// The embedding kept as the file's Q4_K blocks (read by a row lookup
	// that dequantizes, so the scratch stays as it is).
	kept := plan.Total - embedF16 + embedQ4K
	t.Logf("with the embedding as Q4_K blocks: %.3f GiB", float64(kept)/gib)
	if kept > target {
		t.Errorf("even with a Q4_K embedding the plan is %.3f GiB, above the target of 6.5 GiB", float64(kept)/gib)
	}
	if plan.Total > target {
		t.Logf("above the 6.5 GiB target by %.0f MiB; the f16 embedding table is %.0f MiB more than its Q4_K blocks", float64(plan.Total-target)/(1<<20), float64(embedF16-embedQ4K)/(1<<20))
	}
}
