package model

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

const llama31_8B = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
  "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
  "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "torch_dtype": "bfloat16"}`

const qwen2_05B = `{
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
  "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
  "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
  "max_position_embeddings": 32768, "max_window_layers": 24, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "use_sliding_window": false,
  "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 151643,
  "eos_token_id": 151643, "torch_dtype": "bfloat16"}`

const mistral7Bv03 = `{
  "architectures": ["MistralForCausalLM"], "model_type": "mistral",
  "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
  "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
  "sliding_window": null, "tie_word_embeddings": false, "hidden_act": "silu",
  "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}`

const stories260KConfig = `{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
  "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8, "vocab_size": 512,
  "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "rope_scaling": null, "hidden_act": "silu", "tie_word_embeddings": true,
  "attention_bias": false, "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2,
  "torch_dtype": "float32"}`

func TestParseConfigArchitectures(t *testing.T) {
	tests := []struct {
		name      string
		json      string
		want      Config
		numParams int64
	}{
		{"stories260K", stories260KConfig, Config{
			Architecture: ArchLlama, ModelType: "llama", HiddenSize: 64, NumLayers: 5, NumHeads: 8, NumKVHeads: 4,
			HeadDim: 8, IntermediateSize: 172, VocabSize: 512, MaxPositionEmbeddings: 512, RMSNormEps: 1e-5,
			RopeTheta: 10000, TieWordEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "float32",
		}, 260032},
		{"Llama-3.1-8B", llama31_8B, Config{
			Architecture: ArchLlama, ModelType: "llama", HiddenSize: 4096, NumLayers: 32, NumHeads: 32, NumKVHeads: 8,
			HeadDim: 128, IntermediateSize: 14336, VocabSize: 128256, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5,
			RopeTheta: 500000, RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
			BOSTokenID: 128000, EOSTokenIDs: []int{128001, 128008, 128009}, TorchDType: "bfloat16",
		}, 8030261248},
		{"Qwen2-0.5B", qwen2_05B, Config{
			Architecture: ArchQwen2, ModelType: "qwen2", HiddenSize: 896, NumLayers: 24, NumHeads: 14, NumKVHeads: 2,
			HeadDim: 64, IntermediateSize: 4864, VocabSize: 151936, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6,
			RopeTheta: 1e6, TieWordEmbeddings: true, QKVBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151643}, TorchDType: "bfloat16",
		}, 494032768},
		{"Mistral-7B-v0.3", mistral7Bv03, Config{
			Architecture: ArchMistral, ModelType: "mistral", HiddenSize: 4096, NumLayers: 32, NumHeads: 32, NumKVHeads: 8,
			HeadDim: 128, IntermediateSize: 14336, VocabSize: 32768, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-5,
			RopeTheta: 1e6, BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "bfloat16",
		}, 7248023552},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*c, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *c, tc.want)
			}
			if got := c.NumParams(); got != tc.numParams {
				t.Errorf("NumParams = %d, want %d", got, tc.numParams)
			}
			if got := c.ParamBytes(BF16); got != 2*tc.numParams {
				t.Errorf("ParamBytes(BF16) = %d, want %d", got, 2*tc.numParams)
			}
			// MarshalHF round trip.
			js, err := c.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseConfig(js)
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, js)
			}
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip: got %+v, want %+v", *c2, *c)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures": ["MistralForCausalLM"], "hidden_size": 64,
		"num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 8,
		"vocab_size": 10, "max_position_embeddings": 32, "rope_scaling": {"rope_type": "default"},
		"attention_bias": true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Architecture: ArchMistral, ModelType: "mistral", HiddenSize: 64, NumLayers: 1, NumHeads: 4, NumKVHeads: 4, HeadDim: 16,
		IntermediateSize: 8, VocabSize: 10, MaxPositionEmbeddings: 32, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
	// Llama attention_bias covers q, k, v and o.
	c, err = ParseConfig([]byte(strings.Replace(stories260KConfig, `"attention_bias": false`, `"attention_bias": true`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.QKVBias || !c.OBias {
		t.Errorf("Llama attention_bias: QKVBias=%v OBias=%v, want both true", c.QKVBias, c.OBias)
	}
}

func TestParseConfigErrors(t *testing.T) {
	sub := func(old, new string) string { return strings.Replace(stories260KConfig, old, new, 1) }
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "config:"},
		{"unknown arch", sub(`"LlamaForCausalLM"`, `"GPT2LMHeadModel"`), `unsupported architecture "GPT2LMHeadModel" (supported: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)`},
		{"no arch", sub(`"architectures": ["LlamaForCausalLM"],`, ``), "architectures must list exactly one of"},
		{"missing hidden", sub(`"hidden_size": 64,`, ``), "missing hidden_size"},
		{"missing vocab", sub(`"vocab_size": 512,`, ``), "missing vocab_size"},
		{"zero layers", sub(`"num_hidden_layers": 5`, `"num_hidden_layers": 0`), "num_hidden_layers must be positive"},
		{"negative intermediate", sub(`"intermediate_size": 172`, `"intermediate_size": -1`), "intermediate_size must be positive"},
		{"huge vocab", sub(`"vocab_size": 512`, `"vocab_size": 1000000000000`), "vocab_size 1000000000000 exceeds"},
		{"kv not divisor", sub(`"num_key_value_heads": 4`, `"num_key_value_heads": 3`), "num_attention_heads 8 is not divisible by num_key_value_heads 3"},
		{"hidden not divisible", strings.Replace(sub(`"head_dim": 8,`, ``), `"num_attention_heads": 8, "num_key_value_heads": 4`, `"num_attention_heads": 6, "num_key_value_heads": 3`, 1), "hidden_size 64 is not divisible by num_attention_heads 6"},
		{"odd head_dim", sub(`"head_dim": 8`, `"head_dim": 7`), "head_dim 7 must be even"},
		{"bad eps", sub(`"rms_norm_eps": 1e-05`, `"rms_norm_eps": 0`), "rms_norm_eps must be positive"},
		{"bad theta", sub(`"rope_theta": 10000.0`, `"rope_theta": -1`), "rope_theta must be finite and > 1"},
		{"rope linear", sub(`"rope_scaling": null`, `"rope_scaling": {"type": "linear", "factor": 2.0}`), `rope_scaling type "linear" is not supported`},
		{"rope yarn", sub(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4.0}`), `rope_scaling type "yarn" is not supported`},
		{"rope dynamic", sub(`"rope_scaling": null`, `"rope_scaling": {"type": "dynamic", "factor": 4.0}`), `rope_scaling type "dynamic" is not supported`},
		{"rope no type", sub(`"rope_scaling": null`, `"rope_scaling": {"factor": 4.0}`), "neither rope_type nor type"},
		{"llama3 missing factor", sub(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}`), "llama3: missing factor"},
		{"llama3 high<=low", sub(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4, "original_max_position_embeddings": 64}`), "high_freq_factor 4 must be finite and greater than low_freq_factor 4"},
		{"llama3 factor < 1", sub(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "llama3", "factor": 0.5, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}`), "factor must be finite and >= 1, got 0.5"},
		{"llama3 bad orig", sub(`"rope_scaling": null`, `"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 0}`), "original_max_position_embeddings must be positive"},
		{"mlp bias", sub(`"mlp_bias": false`, `"mlp_bias": true`), "mlp_bias true is not supported"},
		{"gelu", sub(`"hidden_act": "silu"`, `"hidden_act": "gelu"`), `hidden_act "gelu" is not supported`},
		{"bos outside vocab", sub(`"bos_token_id": 1`, `"bos_token_id": 512`), "bos_token_id 512 is outside vocab_size 512"},
		{"eos string", sub(`"eos_token_id": 2`, `"eos_token_id": "x"`), "eos_token_id must be an int or a list of ints"},
		{"float size", sub(`"hidden_size": 64`, `"hidden_size": 64.5`), "config:"},
		{"mistral sliding window", strings.Replace(mistral7Bv03, `"sliding_window": null`, `"sliding_window": 4096`, 1), "sliding_window 4096 < max_position_embeddings 32768 is not supported"},
		{"qwen2 sliding window", strings.Replace(qwen2_05B, `"sliding_window": 32768, "use_sliding_window": false`, `"sliding_window": 4096, "use_sliding_window": true`, 1), "sliding_window 4096 < max_position_embeddings 32768 is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	// Accepted sliding windows.
	for _, js := range []string{
		strings.Replace(mistral7Bv03, `"sliding_window": null`, `"sliding_window": 32768`, 1),
		strings.Replace(mistral7Bv03, `"sliding_window": null`, `"sliding_window": 100000`, 1),
		strings.Replace(qwen2_05B, `"sliding_window": 32768`, `"sliding_window": 4096`, 1), // use_sliding_window false
	} {
		if _, err := ParseConfig([]byte(js)); err != nil {
			t.Errorf("unexpected error: %v", err)
		}
	}
}

func TestRopeInvFreq(t *testing.T) {
	// Default RoPE: 1/theta^(2i/d).
	c, err := ParseConfig([]byte(stories260KConfig))
	if err != nil {
		t.Fatal(err)
	}
	inv := RopeInvFreq(c)
	want := []float64{1, 0.1, 0.01, 0.001}
	for i := range want {
		if math.Abs(inv[i]-want[i]) > 1e-15 {
			t.Errorf("default inv_freq[%d] = %v, want %v", i, inv[i], want[i])
		}
	}

	// llama3 scaling. Expected values computed in float64 with the code of
	// transformers' _compute_llama3_parameters (a Python transcription).
	c, err = ParseConfig([]byte(llama31_8B))
	if err != nil {
		t.Fatal(err)
	}
	inv = RopeInvFreq(c)
	if len(inv) != 64 {
		t.Fatalf("len = %d, want 64", len(inv))
	}
	cases := map[int]float64{
		0:  1.0,                    // high frequency: unchanged
		1:  0.8146172338565447,     // high frequency: unchanged
		20: 0.016560440080994446,   // high frequency: unchanged
		30: 0.0013718935677611381,  // medium: smoothed
		35: 9.556212353964683e-05,  // low: divided by factor
		40: 3.428102195952591e-05,  // low
		45: 1.2297638677963614e-05, // low
		50: 4.411534674558404e-06,  // low
		63: 3.068925988914511e-07,  // low
	}
	for i, w := range cases {
		if math.Abs(inv[i]-w) > 1e-12*w {
			t.Errorf("llama3 inv_freq[%d] = %.17g, want %.17g", i, inv[i], w)
		}
	}
	// The tiny test config (head_dim 16, original context 64).
	tiny := TinyConfigs()["llama3-mha"]
	inv = RopeInvFreq(&tiny)
	wantTiny := []float64{1.0, 0.0794030091792082, 0.004700753866357992, 0.0009115830921521386,
		0.00017677669529663688, 3.428102195952591e-05, 6.647869871181236e-06, 1.2891731721515574e-06}
	for i := range wantTiny {
		if math.Abs(inv[i]-wantTiny[i]) > 1e-12*wantTiny[i] {
			t.Errorf("tiny llama3 inv_freq[%d] = %.17g, want %.17g", i, inv[i], wantTiny[i])
		}
	}
}

func TestTinyConfigsValid(t *testing.T) {
	for name, c := range TinyConfigs() {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		var n int64
		for _, s := range c.ExpectedTensors() {
			p := int64(1)
			for _, d := range s.Shape {
				p *= int64(d)
			}
			n += p
		}
		if c.NumParams() != n {
			t.Errorf("%s: NumParams %d, ExpectedTensors hold %d", name, c.NumParams(), n)
		}
		js, err := c.MarshalHF()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c2, err := ParseConfig(js)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c2.ModelType = ""
		if !reflect.DeepEqual(c, *c2) {
			t.Errorf("%s: round trip got %+v, want %+v", name, *c2, c)
		}
	}
}

func FuzzConfig(f *testing.F) {
	for _, s := range []string{stories260KConfig, llama31_8B, qwen2_05B, mistral7Bv03, `{}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if c != nil {
				t.Fatal("non-nil config with error")
			}
			return
		}
		if n := c.NumParams(); n <= 0 {
			t.Fatalf("NumParams = %d", n)
		}
		for i, v := range RopeInvFreq(c) {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("inv_freq[%d] = %v", i, v)
			}
		}
		if len(c.ExpectedTensors()) == 0 {
			t.Fatal("no tensors")
		}
		js, err := c.MarshalHF()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(js)
		if err != nil {
			t.Fatalf("reparse: %v\n%s", err, js)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %+v != %+v", *c2, *c)
		}
	})
}

func TestParseConfigRopeParameters(t *testing.T) {
	// transformers 5 writes rope_theta and the llama3 scaling into rope_parameters.
	cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":1,
		"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,
		"max_position_embeddings":131072,"rms_norm_eps":1e-5,
		"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0,"low_freq_factor":1.0,
		"high_freq_factor":4.0,"original_max_position_embeddings":8192}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 500000 || cfg.RopeScaling == nil || cfg.RopeScaling.Factor != 8 || cfg.RopeScaling.OriginalMaxPositionEmbeddings != 8192 {
		t.Errorf("rope_parameters not read: theta %v scaling %+v", cfg.RopeTheta, cfg.RopeScaling)
	}
	cfg, err = ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":1,
		"num_attention_heads":4,"intermediate_size":96,"vocab_size":100,"max_position_embeddings":512,
		"rope_parameters":{"rope_type":"default","rope_theta":250000.0}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 250000 || cfg.RopeScaling != nil {
		t.Errorf("default rope_parameters: theta %v scaling %+v", cfg.RopeTheta, cfg.RopeScaling)
	}
	if _, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":1,
		"num_attention_heads":4,"intermediate_size":96,"vocab_size":100,"max_position_embeddings":512,
		"rope_parameters":{"rope_type":"yarn","rope_theta":10000.0,"factor":4.0}}`)); err == nil || !strings.Contains(err.Error(), "yarn") {
		t.Errorf("yarn rope_parameters: %v, want an error naming it", err)
	}
}
