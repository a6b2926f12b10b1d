package model

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRandomCheckpoints writes a random checkpoint per tiny config and
// loads it back: the bytes are deterministic, the config survives the round
// trip, and the tensors, dtypes and biases are as configured.
func TestRandomCheckpoints(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(TinyConfigs())) {
		cfg := TinyConfigs()[name]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteRandomCheckpoint(dir, cfg, 42); err != nil {
				t.Fatal(err)
			}
			// Deterministic bytes.
			dir2 := t.TempDir()
			if err := WriteRandomCheckpoint(dir2, cfg, 42); err != nil {
				t.Fatal(err)
			}
			b1, _ := os.ReadFile(filepath.Join(dir, SafetensorsFileName))
			b2, _ := os.ReadFile(filepath.Join(dir2, SafetensorsFileName))
			if !bytes.Equal(b1, b2) {
				t.Error("WriteRandomCheckpoint is not deterministic")
			}

			cfg2, w, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := *cfg2
			got.ModelType = ""
			if got.Architecture != cfg.Architecture || got.NumKVHeads != cfg.NumKVHeads || got.QKVBias != cfg.QKVBias ||
				(got.RopeScaling == nil) != (cfg.RopeScaling == nil) {
				t.Errorf("config changed on disk: %+v", got)
			}
			ck, err := OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			emb, _ := ck.Tensor(EmbedTokensName)
			wantDT := map[string]DType{"float32": F32, "float16": F16, "bfloat16": BF16}[cfg.TorchDType]
			if emb.DType != wantDT {
				t.Errorf("dtype %s, want %s", emb.DType, wantDT)
			}
			if n := len(ck.Names()); n != len(cfg.ExpectedTensors()) {
				t.Errorf("%d tensors, want %d", n, len(cfg.ExpectedTensors()))
			}
			ck.Close()
			if cfg.QKVBias != (w.Layers[0].QBias != nil) || cfg.OBias != (w.Layers[0].OBias != nil) {
				t.Errorf("biases not loaded as configured")
			}
		})
	}
}

func TestLoadWeightsErrors(t *testing.T) {
	cfg := TinyConfigs()["mistral-gqa8"]
	dir := t.TempDir()
	if err := WriteRandomCheckpoint(dir, cfg, 1); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"intermediate", func(c *Config) { c.IntermediateSize = 96 }, []string{`"model.layers.0.mlp.gate_proj.weight"`, "shape [160 128]", "expected [96 128]"}},
		{"kv heads", func(c *Config) { c.NumKVHeads = 4 }, []string{`"model.layers.0.self_attn.k_proj.weight"`, "shape [16 128]", "expected [32 128]"}},
		{"vocab", func(c *Config) { c.VocabSize = 90 }, []string{`"model.embed_tokens.weight"`, "expected [90 128]"}},
		{"missing bias", func(c *Config) { c.Architecture, c.QKVBias = ArchQwen2, true }, []string{`missing tensor "model.layers.0.self_attn.q_proj.bias"`}},
		{"extra layer", func(c *Config) { c.NumLayers = 3 }, []string{`missing tensor "model.layers.2.input_layernorm.weight"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.mutate(&c)
			_, err := LoadWeights(ck, &c)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Untied config on a tied checkpoint: lm_head is missing.
	tied := TinyConfigs()["qwen2-gqa4"]
	dir = t.TempDir()
	if err := WriteRandomCheckpoint(dir, tied, 1); err != nil {
		t.Fatal(err)
	}
	ck2, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck2.Close()
	tied.TieWordEmbeddings = false
	if _, err := LoadWeights(ck2, &tied); err == nil || !strings.Contains(err.Error(), `missing tensor "lm_head.weight"`) {
		t.Errorf("untied load of tied checkpoint: %v", err)
	}
}
