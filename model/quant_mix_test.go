package model_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ggufwrite"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/x448/float16"
)

// randomBlocks returns rows·k/BlockElems random blocks of typ whose f16
// scales are set to small values, so that the weights stay within about
// ±0.1 (random scale bytes with random d would give huge ones).
func randomBlocks(rng *rand.Rand, typ gguf.Type, rows, k int) []byte {
	bb := typ.BlockBytes()
	n := rows * k / typ.BlockElems()
	out := make([]byte, n*bb)
	for i := range out {
		out[i] = byte(rng.Uint32())
	}
	put := func(b []byte, off int, v float64) {
		binary.LittleEndian.PutUint16(b[off:], float16.Fromfloat32(float32(v*(0.5+rng.Float64()))).Bits())
	}
	for i := range n {
		b := out[i*bb : (i+1)*bb]
		switch typ {
		case gguf.Q8_0:
			put(b, 0, 6e-4)
		case gguf.Q4_0, gguf.Q5_0:
			put(b, 0, 4e-3)
		case gguf.Q4_K:
			put(b, 0, 1e-4)
			put(b, 2, 1e-4)
		case gguf.Q5_K:
			put(b, 0, 5e-5)
			put(b, 2, 1e-4)
		case gguf.Q6_K:
			put(b, 208, 2e-5)
		}
	}
	return out
}

// f16ExactQ4K sets the scales d and dmin of every Q4_K block of b to 2^-13,
// so that each value d·sc·q − dmin·m is 2^-13 times an integer of at most
// 10 bits: exact in f16 (and at most about 0.12 in magnitude).
func f16ExactQ4K(b []byte) {
	h := float16.Fromfloat32(1.0 / (1 << 13)).Bits()
	for off := 0; off+4 <= len(b); off += gguf.Q4_K.BlockBytes() {
		binary.LittleEndian.PutUint16(b[off:], h)
		binary.LittleEndian.PutUint16(b[off+2:], h)
	}
}

// TestEngineQuantMix: a random llama with a llama.cpp-like mix of every
// quantized type the engine keeps on the device (Q4_K, Q5_K, Q6_K, Q4_0,
// Q5_0, Q8_0; the untied LM head in Q6_K, the embedding table in Q4_K)
// gives the logits of the dequantize-at-load path (F16Weights) within 1e-2
// relative: a prefill (embedding rows gathered and dequantized in
// registers, matrices dequantized into the scratch), the logits of every
// position (the quantized LM head for many rows), and decode steps
// (matrix-vector kernels in registers). The embedding table's block scales
// are powers of two (f16ExactQ4K), so that its values are the same in f32 (the
// quantized gather) and in f16 (the reference): else the reference's f16
// rounding of the table alone moves these random logits by up to about
// 7e-3, near the bound, while both paths stay as close to the float64
// reference (ref.Llama) as each other.
func TestEngineQuantMix(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	cfg, w := randomMixSource(t, rng)
	mix := map[string]gguf.Type{"token_embd.weight": gguf.Q4_K, "output.weight": gguf.Q6_K}
	for l := range cfg.NumLayers {
		for s, typ := range map[string]gguf.Type{"attn_q": gguf.Q4_K, "attn_k": gguf.Q5_K, "attn_v": gguf.Q6_K,
			"attn_output": gguf.Q4_0, "ffn_gate": gguf.Q4_K, "ffn_up": gguf.Q5_0, "ffn_down": gguf.Q8_0} {
			mix[fmt.Sprintf("blk.%d.%s.weight", l, s)] = typ
		}
	}
	shapes := map[string][]int{}
	for _, s := range cfg.ExpectedTensors() {
		shapes[s.Name] = s.Shape
	}
	for name, typ := range mix {
		hf, _ := model.HFTensorName(name)
		rows, k := shapes[hf][0], shapes[hf][1]
		b := randomBlocks(rng, typ, rows, k)
		if name == "token_embd.weight" { // Q4_K
			f16ExactQ4K(b)
		}
		w.Remove(name)
		w.AddTensor(name, typ, []uint64{uint64(k), uint64(rows)}, b)
	}
	path := writeGGUF(t, w)
	gcfg, ck := openGGUF(t, path)
	qe, err := model.NewEngine(d, gcfg, ck, model.EngineOptions{Context: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer qe.Close()
	fe, err := model.NewEngine(d, gcfg, ck, model.EngineOptions{Context: 64, F16Weights: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	kept := map[gguf.Type]int{}
	for _, typ := range qe.WeightTypes() {
		kept[typ]++
	}
	for _, typ := range []gguf.Type{gguf.Q4_K, gguf.Q5_K, gguf.Q6_K, gguf.Q4_0, gguf.Q5_0, gguf.Q8_0} {
		if kept[typ] == 0 {
			t.Errorf("no %s matrix on the device: %v", typ, kept)
		}
	}
	if qe.WeightTypes()[model.EmbedTokensName] != gguf.Q4_K {
		t.Errorf("embedding stored as %s, want Q4_K", qe.WeightTypes()[model.EmbedTokensName])
	}
	ctx := context.Background()
	toks := make([]int, 10)
	for i := range toks {
		toks[i] = rng.IntN(cfg.VocabSize)
	}
	var all [2][][]float32
	for i, e := range []*model.Engine{qe, fe} {
		err := e.PrefillAll(ctx, toks, func(_ int, l []float32) { all[i] = append(all[i], append([]float32(nil), l...)) })
		if err != nil {
			t.Fatal(err)
		}
	}
	worst := 0.0
	for p := range toks {
		worst = math.Max(worst, relMax(all[0][p], all[1][p]))
	}
	for _, tok := range []int{5, 77, 123} {
		lq, err := qe.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := fe.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, relMax(lq, lf))
	}
	t.Logf("quantized on the device vs dequantized at load: logits max relative error %.2e", worst)
	if worst > 1e-2 {
		t.Errorf("logits max relative error %.2e > 1e-2", worst)
	}
}

// relMax is max|a−b| / max|b| (+Inf for NaN or a length mismatch).
func relMax(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range b {
		num = math.Max(num, math.Abs(float64(a[i])-float64(b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	if math.IsNaN(num) {
		return math.Inf(1)
	}
	return num / den
}

// randomMixSource writes a random 2-layer GQA Llama checkpoint (hidden 256,
// 4 heads over 2 KV heads of 64, vocabulary 300) and returns its config as
// loaded back and an f16 GGUF writer of it, whose tensors the mixed-type
// tests re-type.
func randomMixSource(t *testing.T, rng *rand.Rand) (*model.Config, *ggufwrite.Writer) {
	t.Helper()
	cfg := model.Config{Architecture: model.ArchLlama, HiddenSize: 256, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 512, VocabSize: 300, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "float32"}
	dir := t.TempDir()
	if err := model.WriteRandomCheckpoint(dir, cfg, int64(rng.Uint32())); err != nil {
		t.Fatal(err)
	}
	src, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mcfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ggufwrite.FromCheckpoint(src, mcfg, gguf.F16)
	if err != nil {
		t.Fatal(err)
	}
	return mcfg, w
}
