package model_test

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ggufwrite"
	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// gguf-py's stories260K (llama.cpp's Q/K permutation and Q8_0 quantizer;
// ffn_down, whose rows of 172 are no multiple of 32, stays F16).
var storiesQ8 = filepath.Join("testdata", "stories260k-q8_0.gguf")

// embedded returns the embedded stories260K: its config and checkpoint.
func embedded(t testing.TB) (*model.Config, *model.Checkpoint) {
	t.Helper()
	cfg, err := model.LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := model.OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return cfg, ck
}

// storiesWriter converts the embedded stories260K to GGUF as llama.cpp's
// converter does (matrices as typ, Q/K permuted, SentencePiece vocabulary).
func storiesWriter(t testing.TB, typ gguf.Type) *ggufwrite.Writer {
	t.Helper()
	w, err := ggufwrite.FromFS(stories260k.FS(), typ)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func writeGGUF(t testing.TB, w *ggufwrite.Writer) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func openGGUF(t testing.TB, path string) (*model.Config, *model.Checkpoint) {
	t.Helper()
	cfg, ck, err := model.OpenGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return cfg, ck
}

// sameConfig compares the fields a GGUF carries.
func sameConfig(t *testing.T, got, want *model.Config) {
	t.Helper()
	g, w := *got, *want
	g.TorchDType, w.TorchDType = "", ""
	g.RMSNormEps = float64(float32(g.RMSNormEps)) // stored as float32
	w.RMSNormEps = float64(float32(w.RMSNormEps))
	if !slices.Equal(g.EOSTokenIDs, w.EOSTokenIDs) {
		t.Errorf("EOS ids %v, want %v", g.EOSTokenIDs, w.EOSTokenIDs)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("config from GGUF:\n %+v\nwant\n %+v", g, w)
	}
}

// TestGGUFRoundTrip converts the safetensors model to GGUF (F32, Q/K rows
// permuted as llama.cpp does) and loads it back: the same config and every
// tensor bit for bit, so the Q/K permutation is undone exactly.
func TestGGUFRoundTrip(t *testing.T) {
	wantCfg, want := embedded(t)
	path := writeGGUF(t, storiesWriter(t, gguf.F32))
	if !model.IsGGUF(path) || model.IsGGUF(filepath.Dir(path)) {
		t.Errorf("IsGGUF: %v for the file, %v for its directory", model.IsGGUF(path), model.IsGGUF(filepath.Dir(path)))
	}
	cfg, ck := openGGUF(t, path)
	sameConfig(t, cfg, wantCfg)
	if ck.GGUF() == nil || want.GGUF() != nil {
		t.Error("GGUF(): want the file for a GGUF checkpoint and nil for safetensors")
	}
	if got, w := ck.Names(), want.Names(); !slices.Equal(got, w) {
		t.Fatalf("names %v\nwant %v", got, w)
	}
	for _, name := range want.Names() {
		g, err := ck.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := want.Tensor(name)
		if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || string(g.Data) != string(w.Data) {
			t.Errorf("%s: %s %v differs from the safetensors %s %v", name, g.DType, g.Shape, w.DType, w.Shape)
		}
	}
	if _, err := ck.Tensor("model.layers.9.mlp.up_proj.weight"); err == nil || !strings.Contains(err.Error(), "missing tensor") {
		t.Errorf("missing tensor: %v", err)
	}
}

// TestGGUFPyQ8 loads the file gguf-py wrote: the config of the safetensors
// model and weights within Q8_0's error of it (a Q/K permutation undone the
// wrong way round would differ by the weights' own size).
func TestGGUFPyQ8(t *testing.T) {
	wantCfg, want := embedded(t)
	cfg, ck := openGGUF(t, storiesQ8)
	sameConfig(t, cfg, wantCfg)
	worst, worstName := 0.0, ""
	for _, spec := range cfg.ExpectedTensors() {
		ti, err := ck.Tensor(spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		wantType := model.F32
		if len(spec.Shape) == 2 {
			wantType = model.F16 // Q8_0 dequantized to F16, or F16
		}
		if ti.DType != wantType || !slices.Equal(ti.Shape, spec.Shape) {
			t.Errorf("%s: %s %v, want %s %v", spec.Name, ti.DType, ti.Shape, wantType, spec.Shape)
		}
		g, err := ti.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		w, err := want.Float32s(spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i := range w {
			d := float64(g[i]) - float64(w[i])
			num += d * d
			den += float64(w[i]) * float64(w[i])
		}
		if rel := math.Sqrt(num / den); rel > worst {
			worst, worstName = rel, spec.Name
		}
	}
	t.Logf("Q8_0 weights: worst relative RMS error %.3g (%s)", worst, worstName)
	if worst > 0.01 {
		t.Errorf("weights differ from the safetensors model by %.3g (%s), more than Q8_0's error", worst, worstName)
	}
}

// TestGGUFReference runs the float64 reference on model.Load of a .gguf:
// the F32 file gives the logits of the safetensors model exactly.
func TestGGUFReference(t *testing.T) {
	wantCfg, wantW, err := model.LoadFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	gotCfg, gotW, err := model.Load(writeGGUF(t, storiesWriter(t, gguf.F32)))
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int{1, 403, 407, 261, 378}
	logits := func(cfg *model.Config, w *model.Weights) [][]float32 {
		r, err := ref.NewLlama(cfg, w)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Forward(tokens)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	g, w := logits(gotCfg, gotW), logits(wantCfg, wantW)
	for p := range w {
		if !slices.Equal(g[p], w[p]) {
			t.Fatalf("position %d: logits differ", p)
		}
	}
}

// TestGGUFEngine runs the GPU engine on GGUF files of stories260K: the F16
// file gives the safetensors model's logits (the engine stores f16 weights
// either way), the Q8_0 file of gguf-py logits within Q8_0's error and the
// same greedy tokens.
func TestGGUFEngine(t *testing.T) {
	d := gputest.Device(t)
	ctx := context.Background()
	tokens := []int{1, 403, 407, 261, 378, 259, 266, 261, 378, 304, 318, 400}
	run := func(cfg *model.Config, ck *model.Checkpoint) ([]float32, []int) {
		e, err := model.NewEngine(d, cfg, ck, model.EngineOptions{Context: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		logits, err := e.Prefill(ctx, tokens)
		if err != nil {
			t.Fatal(err)
		}
		last := slices.Clone(logits)
		var greedy []int
		for range 20 {
			tok := argmax(logits)
			greedy = append(greedy, tok)
			if logits, err = e.Decode(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		return last, greedy
	}
	wantLogits, wantGreedy := run(embedded(t))
	f16Logits, f16Greedy := run(openGGUF(t, writeGGUF(t, storiesWriter(t, gguf.F16))))
	if !slices.Equal(f16Logits, wantLogits) || !slices.Equal(f16Greedy, wantGreedy) {
		t.Errorf("F16 GGUF: logits differ by %.3g relative (greedy %v, want %v); want equality", relErr(f16Logits, wantLogits), f16Greedy, wantGreedy)
	}
	q8Logits, q8Greedy := run(openGGUF(t, storiesQ8))
	rel := relErr(q8Logits, wantLogits)
	t.Logf("Q8_0 GGUF (gguf-py): last-position logits relative error %.3g; greedy %v (safetensors %v)", rel, q8Greedy, wantGreedy)
	if rel > 0.02 || q8Greedy[0] != wantGreedy[0] {
		t.Errorf("Q8_0 GGUF: logits relative error %.3g (> 0.02) or first greedy token %d ≠ %d", rel, q8Greedy[0], wantGreedy[0])
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// relErr is ‖got − want‖ / ‖want‖.
func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func TestGGUFConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(w *ggufwrite.Writer)
		want string
	}{
		{"arch", func(w *ggufwrite.Writer) { w.Add("general.architecture", "gemma") }, `general.architecture "gemma" is not supported (supported: llama, qwen2)`},
		{"no arch", func(w *ggufwrite.Writer) { w.Remove("general.architecture") }, "missing metadata key general.architecture"},
		{"layers", func(w *ggufwrite.Writer) { w.Remove("llama.block_count") }, "missing metadata key llama.block_count"},
		{"layers type", func(w *ggufwrite.Writer) { w.Add("llama.block_count", "five") }, "llama.block_count has type string, want an integer"},
		{"negative", func(w *ggufwrite.Writer) { w.Add("llama.embedding_length", int32(-64)) }, "llama.embedding_length is -64, want 0 …"},
		{"eps", func(w *ggufwrite.Writer) { w.Remove("llama.attention.layer_norm_rms_epsilon") }, "missing metadata key llama.attention.layer_norm_rms_epsilon"},
		{"rope dims", func(w *ggufwrite.Writer) { w.Add("llama.rope.dimension_count", uint32(4)) }, "llama.rope.dimension_count 4 differs from the head dimension 8"},
		{"rope scaling", func(w *ggufwrite.Writer) { w.Add("llama.rope.scaling.type", "yarn") }, `llama.rope.scaling.type "yarn" is not supported`},
		{"vocab", func(w *ggufwrite.Writer) { w.Add("llama.vocab_size", uint32(500)) }, "llama.vocab_size 500 differs from the 512 rows of token_embd.weight"},
		{"embeddings", func(w *ggufwrite.Writer) { w.Remove("token_embd.weight") }, "no 2-dimensional tensor token_embd.weight"},
		{"heads", func(w *ggufwrite.Writer) { w.Add("llama.attention.head_count_kv", uint32(3)) }, "num_attention_heads 8 is not divisible by num_key_value_heads 3"},
		{"bos", func(w *ggufwrite.Writer) { w.Add("tokenizer.ggml.bos_token_id", uint32(600)) }, "bos_token_id 600 is outside vocab_size 512"},
		{"rope_freqs", func(w *ggufwrite.Writer) {
			w.AddTensor("rope_freqs.weight", gguf.F32, []uint64{4}, make([]byte, 16))
		}, "tensor rope_freqs.weight: divisor 0 is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := storiesWriter(t, gguf.F16)
			tc.edit(w)
			_, _, err := model.OpenGGUF(writeGGUF(t, w))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "model.gguf") {
				t.Fatalf("OpenGGUF: %v, want an error naming the file and containing %q", err, tc.want)
			}
		})
	}
}

// TestGGUFTinyConfigs converts each tiny configuration's random model to
// GGUF and back: Qwen2 (q/k/v biases, no permutation), Mistral (stored as
// llama), Llama with q/k/v/o biases (the q/k biases permuted too) and Llama
// 3 RoPE scaling (stored as rope_freqs.weight divisors only).
func TestGGUFTinyConfigs(t *testing.T) {
	for name, cfg := range model.TinyConfigs() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := model.WriteRandomCheckpoint(dir, cfg, 7); err != nil {
				t.Fatal(err)
			}
			want, err := model.OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			w, err := ggufwrite.FromCheckpoint(want, &cfg, gguf.F32)
			if err != nil {
				t.Fatal(err)
			}
			got, ck := openGGUF(t, writeGGUF(t, w))
			exp := cfg
			if exp.Architecture == model.ArchMistral {
				exp.Architecture = model.ArchLlama // llama.cpp converts Mistral to llama
			}
			exp.ModelType = got.ModelType
			exp.BOSTokenID, exp.EOSTokenIDs, exp.TorchDType = -1, nil, "" // no tokenizer metadata
			exp.RMSNormEps, exp.RopeTheta = float64(float32(exp.RMSNormEps)), float64(float32(exp.RopeTheta))
			if !reflect.DeepEqual(got, &exp) {
				t.Errorf("config\n %+v\nwant\n %+v", got, &exp)
			}
			if rs := got.RopeScaling; rs != nil {
				t.Logf("rope scaling from rope_freqs.weight: %+v", *rs)
			}
			for _, spec := range cfg.ExpectedTensors() {
				g, err := ck.Float32s(spec.Name)
				if err != nil {
					t.Fatal(err)
				}
				v, err := want.Float32s(spec.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(g, v) {
					t.Errorf("%s differs", spec.Name)
				}
			}
		})
	}
}

// TestGGUFRopeFreqs: Llama 3.1's divisors (factor 8, original context
// 8192) are recognised without metadata, and a metadata original context
// is used. (Llama 3's theta 500000 puts the lowest frequency past the
// scaled band, so the largest divisor is the factor.)
func TestGGUFRopeFreqs(t *testing.T) {
	cfg, _ := embedded(t)
	cfg.RopeTheta = 500000
	for _, tc := range []struct {
		orig int
		key  bool
	}{{8192, false}, {64, true}} {
		rs := &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: tc.orig}
		scaled := *cfg
		scaled.RopeScaling = rs
		base, inv := model.RopeInvFreq(cfg), model.RopeInvFreq(&scaled)
		div := make([]float32, len(base))
		for i := range div {
			div[i] = float32(base[i] / inv[i])
		}
		data, err := model.Float32Bytes(div, model.F32)
		if err != nil {
			t.Fatal(err)
		}
		w := storiesWriter(t, gguf.F16)
		w.AddTensor("rope_freqs.weight", gguf.F32, []uint64{uint64(len(div))}, data)
		w.Add("llama.rope.freq_base", float32(cfg.RopeTheta))
		if tc.key {
			w.Add("llama.rope.scaling.original_context_length", uint32(tc.orig))
		}
		got, _ := openGGUF(t, writeGGUF(t, w))
		if got.RopeScaling == nil || *got.RopeScaling != *rs {
			t.Errorf("divisors %v: rope scaling %+v, want %+v", div, got.RopeScaling, rs)
		}
	}
}

// TestGGUFUnsupportedType: a tensor of a type without a dequantizer is an
// error naming it when it is loaded.
func TestGGUFUnsupportedType(t *testing.T) {
	w := storiesWriter(t, gguf.F16)
	w.Remove("blk.2.ffn_up.weight")
	w.AddTensor("blk.2.ffn_up.weight", gguf.Q2_K, []uint64{256, 1}, make([]byte, 84))
	_, ck := openGGUF(t, writeGGUF(t, w))
	_, err := ck.Tensor("model.layers.2.mlp.up_proj.weight")
	if err == nil || !strings.Contains(err.Error(), `tensor "blk.2.ffn_up.weight" (model.layers.2.mlp.up_proj.weight): type Q2_K is not supported`) {
		t.Fatalf("Tensor: %v", err)
	}
}

// TestGGUFDequantizeF16: a quantized tensor loads as F16, converted a few
// rows at a time (3000 rows of 32: two steps, the second partial), equal to
// dequantizing it whole; one holding a value beyond f16's range loads as F32
// and the engine refuses it, naming the tensor.
func TestGGUFDequantizeF16(t *testing.T) {
	const rows = 3000
	q8 := make([]byte, rows*34)
	for i := range q8 {
		q8[i] = byte(i*131 + i/7)
	}
	for r := range rows {
		q8[r*34], q8[r*34+1] = byte(r), 0x20 // d: a small normal f16
	}
	huge := slices.Clone(q8[:34*2*172]) // blk.1.ffn_up: [172, 64]
	huge[0], huge[1] = 0xff, 0x7b       // d = 65504
	w := storiesWriter(t, gguf.F16)
	w.Remove("blk.0.ffn_up.weight")
	w.AddTensor("blk.0.ffn_up.weight", gguf.Q8_0, []uint64{32, rows}, q8)
	w.Remove("blk.1.ffn_up.weight")
	w.AddTensor("blk.1.ffn_up.weight", gguf.Q8_0, []uint64{64, 172}, huge)
	_, ck := openGGUF(t, writeGGUF(t, w))

	ti, err := ck.Tensor("model.layers.0.mlp.up_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	all := make([]float32, rows*32)
	if err := gguf.Dequantize(all, q8, gguf.Q8_0); err != nil {
		t.Fatal(err)
	}
	want, err := model.Float32Bytes(all, model.F16)
	if err != nil {
		t.Fatal(err)
	}
	if ti.DType != model.F16 || !slices.Equal(ti.Shape, []int{rows, 32}) || string(ti.Data) != string(want) {
		t.Errorf("Q8_0 tensor: %s %v, data equal: %v", ti.DType, ti.Shape, string(ti.Data) == string(want))
	}

	ti, err = ck.Tensor("model.layers.1.mlp.up_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	if ti.DType != model.F32 {
		t.Errorf("tensor with values beyond f16: %s, want F32", ti.DType)
	}
	w.Remove("blk.0.ffn_up.weight") // back to a loadable shape
	w.AddTensor("blk.0.ffn_up.weight", gguf.F16, []uint64{64, 172}, make([]byte, 2*64*172))
	cfg, ck := openGGUF(t, writeGGUF(t, w))
	_, err = model.NewEngine(gputest.Device(t), cfg, ck, model.EngineOptions{Context: 64})
	if err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight") {
		t.Errorf("NewEngine: %v, want an error naming the tensor beyond f16", err)
	}
}
