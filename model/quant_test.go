package model

import (
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
)

// storiesQ8Path is gguf-py's stories260K with Q8_0 matrices (ffn_down,
// whose rows of 172 are no multiple of 32, is F16).
var storiesQ8Path = filepath.Join("testdata", "stories260k-q8_0.gguf")

func openStoriesQ8(t testing.TB) (*Config, *Checkpoint) {
	t.Helper()
	cfg, ck, err := OpenGGUF(storiesQ8Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return cfg, ck
}

func TestParseQuantization(t *testing.T) {
	for in, want := range map[string]Quantization{"": QuantNone, "none": QuantNone, "q8_0": QuantQ8_0, "Q8_0": QuantQ8_0} {
		if got, err := ParseQuantization(in); err != nil || got != want {
			t.Errorf("ParseQuantization(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"q4_k", "int8", "q8"} {
		_, err := ParseQuantization(in)
		if err == nil || !strings.Contains(err.Error(), `"`+in+`"`) || !strings.Contains(err.Error(), "supported: q8_0, none") {
			t.Errorf("ParseQuantization(%q) = %v; want an error naming it and listing q8_0, none", in, err)
		}
	}
	cfg, _ := embedded(t)
	if _, err := PlanMemory(cfg, nil, EngineOptions{Quantize: "q4"}); err == nil || !strings.Contains(err.Error(), "supported: q8_0, none") {
		t.Errorf("PlanMemory with Quantize q4: %v; want the supported values", err)
	}
}

// embedded returns the embedded stories260K: its config and checkpoint.
func embedded(t testing.TB) (*Config, *Checkpoint) {
	t.Helper()
	return storiesParts(t)
}

// layerMatrices are the quantizable matrices of a layer, by suffix.
var layerMatrices = []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
	"self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}

// TestPlanWeights: what PlanWeights keeps quantized for the Q8_0 GGUF file
// and for the safetensors model with Quantize q8_0, on a device with and
// without Q8_0 kernels, and with F16Weights.
func TestPlanWeights(t *testing.T) {
	gcfg, gck := openStoriesQ8(t)
	scfg, sck := embedded(t)
	q8 := []gguf.Type{gguf.Q8_0, gguf.Q4_K}
	for _, tc := range []struct {
		name     string
		cfg      *Config
		ck       *Checkpoint
		opts     EngineOptions
		quant    []gguf.Type
		q8       bool // q…up are Q8_0 (down, the embedding and the norms never are)
		fallback []gguf.Type
	}{
		{"gguf", gcfg, gck, EngineOptions{}, q8, true, nil},
		{"gguf quantize", gcfg, gck, EngineOptions{Quantize: QuantQ8_0}, q8, true, nil},
		{"gguf f16", gcfg, gck, EngineOptions{F16Weights: true}, q8, false, nil},
		{"gguf no kernel", gcfg, gck, EngineOptions{}, []gguf.Type{gguf.Q4_K}, false, []gguf.Type{gguf.Q8_0}},
		{"safetensors", scfg, sck, EngineOptions{}, q8, false, nil},
		{"safetensors q8_0", scfg, sck, EngineOptions{Quantize: QuantQ8_0}, q8, true, nil},
		{"safetensors q8_0 f16", scfg, sck, EngineOptions{Quantize: QuantQ8_0, F16Weights: true}, q8, false, nil},
		{"safetensors q8_0 no kernel", scfg, sck, EngineOptions{Quantize: QuantQ8_0}, nil, false, []gguf.Type{gguf.Q8_0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wt, fb, err := PlanWeights(tc.cfg, tc.ck, tc.opts, tc.quant)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fb, tc.fallback) {
				t.Errorf("fallback %v, want %v", fb, tc.fallback)
			}
			specs := tc.cfg.ExpectedTensors()
			if len(wt) != len(specs) {
				t.Errorf("%d types for %d tensors", len(wt), len(specs))
			}
			for _, s := range specs {
				want := gguf.F16
				switch {
				case len(s.Shape) == 1:
					want = gguf.F32
				case tc.q8 && strings.HasPrefix(s.Name, "model.layers.") && !strings.HasSuffix(s.Name, "down_proj.weight"):
					want = gguf.Q8_0
				}
				if wt[s.Name] != want {
					t.Errorf("%s: %s, want %s", s.Name, wt[s.Name], want)
				}
			}
		})
	}
	if _, _, err := PlanWeights(scfg, sck, EngineOptions{Quantize: "q5"}, q8); err == nil || !strings.Contains(err.Error(), `"q5"`) {
		t.Errorf("Quantize q5: %v; want an error naming it", err)
	}
}

// TestPlanMemoryByType: the weights of the plan, split by type, are the
// sizes of the tensors in those types (counted here by hand from the
// shapes), the f16 plan is the sum of the f16 matrices and f32 vectors,
// and the dequantization scratch holds the largest quantized layer matrix.
func TestPlanMemoryByType(t *testing.T) {
	cfg, ck := openStoriesQ8(t)
	wt, _, err := PlanWeights(cfg, ck, EngineOptions{}, []gguf.Type{gguf.Q8_0})
	if err != nil {
		t.Fatal(err)
	}
	f16, err := PlanMemory(cfg, nil, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := PlanMemory(cfg, wt, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, qd, kv, f, v, L := uint64(64), uint64(64), uint64(32), uint64(172), uint64(512), uint64(5)
	// Per layer: q [64,64], k and v [32,64], o [64,64], gate and up
	// [172,64] in Q8_0 (68 bytes per row of 64); down [64,172] f16.
	q8Rows := qd + 2*kv + h + 2*f
	vectors := L*2*h + h + uint64(cfg.HeadDim/2) // norms, final norm, RoPE table
	want := map[gguf.Type]TypeBytes{
		gguf.Q8_0: {gguf.Q8_0, L * q8Rows * 64, L * q8Rows * 68},
		gguf.F16:  {gguf.F16, v*h + L*h*f, 2 * (v*h + L*h*f)},
		gguf.F32:  {gguf.F32, vectors, 4 * vectors},
	}
	if len(q.WeightTypes) != len(want) {
		t.Errorf("weight types %v, want %v", q.WeightTypes, want)
	}
	var sum uint64
	for i, tb := range q.WeightTypes {
		if tb != want[tb.Type] {
			t.Errorf("%s: %+v, want %+v", tb.Type, tb, want[tb.Type])
		}
		if i > 0 && tb.Bytes > q.WeightTypes[i-1].Bytes {
			t.Errorf("types not sorted by size: %v", q.WeightTypes)
		}
		sum += tb.Bytes
	}
	if sum != q.Weights {
		t.Errorf("types sum to %d, weights %d", sum, q.Weights)
	}
	allF16 := 2*(v*h+L*(2*qd*h+2*kv*h+3*h*f)) + 4*vectors
	if f16.Weights != allF16 || f16.Dequant != 0 {
		t.Errorf("f16 plan: weights %d, dequant %d; want %d, 0", f16.Weights, f16.Dequant, allF16)
	}
	if q.Dequant != 2*f*h {
		t.Errorf("dequant scratch %d B, want the largest quantized matrix (gate/up) in f16, %d", q.Dequant, 2*f*h)
	}
	if q.Activations != f16.Activations+q.Dequant || q.KVCache != f16.KVCache || q.Total != q.Weights+q.KVCache+q.Activations {
		t.Errorf("quantized plan %+v against f16 plan %+v", q, f16)
	}
	for _, s := range []string{"Q8_0 ", "F16 ", "F32 ", "KV cache"} {
		if !strings.Contains(q.String(), s) {
			t.Errorf("plan %q lacks %q", q, s)
		}
	}
}

// useMoreBits is llama.cpp's rule for the layers whose attn_v and ffn_down
// Q4_K_M stores in Q6_K.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// TestPlanMemoryLlama8BQ4KM plans Llama-3.1-8B with llama.cpp's Q4_K_M
// mix (Q4_K; Q6_K for the LM head and the attn_v and ffn_down of
// useMoreBits layers) at 8K context: the matrices are the bytes of their
// blocks, the embedding table is f16 on the device, and the total is what
// the "fits 8 GB" target is checked against.
func TestPlanMemoryLlama8BQ4KM(t *testing.T) {
	cfg := &Config{Architecture: ArchLlama, ModelType: "llama", HiddenSize: 4096, NumLayers: 32, NumHeads: 32, NumKVHeads: 8,
		HeadDim: 128, IntermediateSize: 14336, VocabSize: 128256, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5, RopeTheta: 500000}
	wt := WeightTypes{LMHeadName: gguf.Q6_K}
	var q4, q6 uint64 // elements
	q6 += 128256 * 4096
	for l := range cfg.NumLayers {
		for _, s := range layerMatrices {
			typ := gguf.Q4_K
			if (s == "self_attn.v_proj.weight" || s == "mlp.down_proj.weight") && useMoreBits(l, cfg.NumLayers) {
				typ = gguf.Q6_K
			}
			wt[LayerTensorName(l, s)] = typ
			n := map[string]uint64{"self_attn.q_proj.weight": 4096 * 4096, "self_attn.o_proj.weight": 4096 * 4096,
				"self_attn.k_proj.weight": 1024 * 4096, "self_attn.v_proj.weight": 1024 * 4096}[s]
			if n == 0 {
				n = 14336 * 4096
			}
			if typ == gguf.Q4_K {
				q4 += n
			} else {
				q6 += n
			}
		}
	}
	p, err := PlanMemory(cfg, wt, EngineOptions{Context: 8192})
	if err != nil {
		t.Fatal(err)
	}
	vectors := uint64(32*2*4096 + 4096 + 64)
	if want := q4/256*144 + q6/256*210 + 2*128256*4096 + 4*vectors; p.Weights != want {
		t.Errorf("weights %d B, want %d", p.Weights, want)
	}
	if p.Dequant != 2*14336*4096 {
		t.Errorf("dequant scratch %d B, want %d", p.Dequant, 2*14336*4096)
	}
	t.Logf("Llama-3.1-8B Q4_K_M at 8K: %s", p)
}

// TestQuantizedMatrixGGUF: the raw Q8_0 blocks of the GGUF file, with the
// Q/K rows unpermuted as whole rows of blocks, decode to the Hugging Face
// weights the file was made from (the embedded stories260K) within Q8_0's
// error, row for row, and to what the dequantize-at-load path gives.
func TestQuantizedMatrixGGUF(t *testing.T) {
	cfg, ck := openStoriesQ8(t)
	_, hf := embedded(t)
	for _, s := range []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.up_proj.weight"} {
		name := LayerTensorName(1, s)
		shape := []int{cfg.QDim(), cfg.HiddenSize}
		switch s {
		case "self_attn.k_proj.weight", "self_attn.v_proj.weight":
			shape[0] = cfg.KVDim()
		case "mlp.up_proj.weight":
			shape[0] = cfg.IntermediateSize
		}
		raw, err := ck.quantizedMatrix(name, shape, gguf.Q8_0, false)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, shape[0]*shape[1])
		if err := gguf.Dequantize(got, raw, gguf.Q8_0); err != nil {
			t.Fatal(err)
		}
		loaded, err := ck.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := hf.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		k := shape[1]
		for i := range got {
			// Q8_0 is within half a step, amax/254, of the original, plus
			// the rounding of the scale to f16 (127·d·2⁻¹¹ = amax/2048);
			// the load path rounds q·d to f16 (11 bits).
			var amax float64
			for _, x := range orig[i/32*32 : i/32*32+32] {
				amax = math.Max(amax, math.Abs(float64(x)))
			}
			if d := math.Abs(float64(got[i] - orig[i])); d > amax/254+amax/2048 {
				t.Fatalf("%s element %d (row %d): raw blocks give %v, the safetensors weight is %v", name, i, i/k, got[i], orig[i])
			}
			if d := math.Abs(float64(got[i] - loaded[i])); d > math.Abs(float64(got[i]))/1024 {
				t.Fatalf("%s element %d (row %d): raw blocks give %v, the f16 load path %v", name, i, i/k, got[i], loaded[i])
			}
		}
	}
	if _, err := ck.quantizedMatrix(LayerTensorName(0, "mlp.down_proj.weight"), []int{64, 172}, gguf.Q8_0, false); err == nil {
		t.Error("an F16 ffn_down of 172-element rows quantized to Q8_0 without an error")
	}
}

// TestQuantizedMatrixSafetensors: a safetensors matrix quantized at load is
// gguf.Quantize of its values, byte for byte.
func TestQuantizedMatrixSafetensors(t *testing.T) {
	_, ck := embedded(t)
	name := LayerTensorName(2, "mlp.gate_proj.weight")
	raw, err := ck.quantizedMatrix(name, []int{172, 64}, gguf.Q8_0, false)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ck.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 172*68)
	if err := gguf.Quantize(want, v, gguf.Q8_0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(raw, want) {
		t.Error("the quantized matrix differs from gguf.Quantize of its values")
	}
}

// TestCheckFiniteBlocks: a block whose scale is infinite, or whose values
// overflow f16, is an error naming the tensor and the element.
func TestCheckFiniteBlocks(t *testing.T) {
	block := func(scale uint16, q int8) []byte {
		b := make([]byte, 34)
		binary.LittleEndian.PutUint16(b, scale)
		for i := range 32 {
			b[2+i] = byte(q)
		}
		return b
	}
	ok := append(block(0x3c00, 3), block(0x3c00, -7)...) // d = 1
	if err := checkFiniteBlocks("f", "w", ok, gguf.Q8_0, 64); err != nil {
		t.Fatal(err)
	}
	// A Q4_K block whose d allows huge values but whose scales are 0 is
	// decoded (the scale bound alone would refuse it) and passes.
	q4k := make([]byte, 144)
	binary.LittleEndian.PutUint16(q4k, 0x7bff) // d = 65504
	for i := 16; i < 144; i++ {
		q4k[i] = 0xff
	}
	if err := checkFiniteBlocks("f", "w", q4k, gguf.Q4_K, 256); err != nil {
		t.Errorf("Q4_K block of zero scales: %v", err)
	}
	q6k := make([]byte, 2*210)
	binary.LittleEndian.PutUint16(q6k[210+208:], 0x7e00) // NaN d in the second block
	if err := checkFiniteBlocks("f", "w", q6k, gguf.Q6_K, 512); err == nil || !strings.Contains(err.Error(), "element 256 = NaN is not finite") {
		t.Errorf("Q6_K block with a NaN scale: %v", err)
	}
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{append(block(0x3c00, 1), block(0x7c00, 1)...), `f: tensor "w": element 32 = +Inf is not finite`},
		{append(block(0x3c00, 1), block(0x7bff, 2)...), `element 32 = 131008 overflows f16`},
		{block(0x3c00, 1)[:33], "not whole rows"},
	} {
		if err := checkFiniteBlocks("f", "w", tc.data, gguf.Q8_0, 64); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestMemoryPlanCheckFits(t *testing.T) {
	p := MemoryPlan{Weights: 6 << 30, KVCache: 1 << 30, Activations: 1 << 30, Total: 8 << 30,
		WeightTypes: []TypeBytes{{gguf.F16, 3 << 29, 6 << 30}}}
	if err := p.CheckFits(0, "gpu", 8192); err != nil {
		t.Errorf("unknown budget: %v", err)
	}
	if err := p.CheckFits(8<<30, "gpu", 8192); err != nil {
		t.Errorf("exact fit: %v", err)
	}
	err := p.CheckFits(4<<30, "gpu", 8192)
	if !errors.Is(err, runtime.ErrOutOfDeviceMemory) {
		t.Fatalf("8 GiB plan on 4 GiB: %v, want ErrOutOfDeviceMemory", err)
	}
	for _, s := range []string{"8.00 GiB", "4.00 GiB", `"gpu"`, "F16 6.00 GiB", "8192 tokens", "quantized weights"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	p.WeightTypes = []TypeBytes{{gguf.Q4_K, 3 << 29, 6 << 30}}
	if err := p.CheckFits(4<<30, "gpu", 8192); err == nil || strings.Contains(err.Error(), "quantized weights") {
		t.Errorf("quantized plan: %v; want an error without the quantization hint", err)
	}
}
