package model

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
)

// WriteRandomCheckpoint writes config.json and model.safetensors for cfg with
// deterministic random weights into dir (created if needed). The weight
// element type follows cfg.TorchDType: "float16" gives F16, "bfloat16" BF16,
// anything else F32.
//
// Linear weights are N(0, 1/in_features), so activations stay O(1) and the
// logits are far from uniform; norm weights are 1 + N(0, 0.1²) and biases
// N(0, 0.1²). The same (cfg, seed) always gives the same bytes.
func WriteRandomCheckpoint(dir string, cfg Config, seed int64) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	dt := F32
	switch strings.ToLower(cfg.TorchDType) {
	case "float16", "f16", "half":
		dt = F16
	case "bfloat16", "bf16":
		dt = BF16
	}
	cj, err := cfg.MarshalHF()
	if err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	rng := rand.New(rand.NewSource(seed))
	specs := cfg.ExpectedTensors()
	tensors := make([]TensorInfo, 0, len(specs))
	for _, s := range specs {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		vals := make([]float32, n)
		switch {
		case strings.HasSuffix(s.Name, "norm.weight"):
			for i := range vals {
				vals[i] = float32(1 + 0.1*rng.NormFloat64())
			}
		case strings.HasSuffix(s.Name, ".bias"):
			for i := range vals {
				vals[i] = float32(0.1 * rng.NormFloat64())
			}
		default: // [out, in] matrices and the embedding
			std := 1 / math.Sqrt(float64(s.Shape[len(s.Shape)-1]))
			if s.Name == EmbedTokensName {
				std = 1
			}
			for i := range vals {
				vals[i] = float32(std * rng.NormFloat64())
			}
		}
		data, err := Float32Bytes(vals, dt)
		if err != nil {
			return fmt.Errorf("random checkpoint: tensor %q: %w", s.Name, err)
		}
		tensors = append(tensors, TensorInfo{Name: s.Name, DType: dt, Shape: s.Shape, Data: data})
	}
	var buf bytes.Buffer
	meta := map[string]string{"format": "pt", "source": fmt.Sprintf("shareprefill WriteRandomCheckpoint seed %d", seed)}
	if err := WriteSafetensors(&buf, tensors, meta); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), cj, 0o644); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SafetensorsFileName), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	return nil
}

// TinyConfigs returns small valid configurations covering the supported
// architectures and features, for tests and benchmarks: Llama with llama3
// rope scaling and no GQA (ratio 1), Qwen2 with q/k/v biases and GQA ratio
// 4, Mistral with GQA ratio 8, and a tied-embedding Llama with head_dim
// different from hidden/heads.
func TinyConfigs() map[string]Config {
	return map[string]Config{
		"llama3-mha": {
			Architecture: ArchLlama, HiddenSize: 64, NumLayers: 2, NumHeads: 4, NumKVHeads: 4, HeadDim: 16,
			IntermediateSize: 96, VocabSize: 97, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 500000,
			RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64},
			BOSTokenID:  1, EOSTokenIDs: []int{2}, TorchDType: "float32",
		},
		"qwen2-gqa4": {
			Architecture: ArchQwen2, HiddenSize: 64, NumLayers: 2, NumHeads: 8, NumKVHeads: 2, HeadDim: 8,
			IntermediateSize: 128, VocabSize: 101, MaxPositionEmbeddings: 512, RMSNormEps: 1e-6, RopeTheta: 1000000,
			QKVBias: true, TieWordEmbeddings: true, BOSTokenID: -1, EOSTokenIDs: []int{3, 4}, TorchDType: "bfloat16",
		},
		"mistral-gqa8": {
			Architecture: ArchMistral, HiddenSize: 128, NumLayers: 2, NumHeads: 16, NumKVHeads: 2, HeadDim: 8,
			IntermediateSize: 160, VocabSize: 89, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
			BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDType: "float16",
		},
		"llama-tied-headdim": {
			Architecture: ArchLlama, HiddenSize: 48, NumLayers: 3, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
			IntermediateSize: 64, VocabSize: 64, MaxPositionEmbeddings: 128, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, QKVBias: true, OBias: true, BOSTokenID: 0, TorchDType: "float32",
		},
	}
}
