package ggufwrite

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
)

// FromCheckpoint returns a Writer holding the model in ck (described by
// cfg) as llama.cpp's convert_hf_to_gguf.py writes it: general.architecture
// "llama" (Llama, Mistral) or "qwen2", the hyperparameters under that
// prefix, the llama tensor names, and for "llama" the rows of attn_q and
// attn_k permuted for ggml's RoPE (Permute). Matrices are stored as
// matrixType (F32 or F16), norms and biases as F32. Add the tokenizer with
// AddTokenizer.
func FromCheckpoint(ck *model.Checkpoint, cfg *model.Config, matrixType gguf.Type) (*Writer, error) {
	if matrixType != gguf.F32 && matrixType != gguf.F16 {
		return nil, fmt.Errorf("ggufwrite: matrix type %s (want F32 or F16)", matrixType)
	}
	arch := "llama"
	if cfg.Architecture == model.ArchQwen2 {
		arch = "qwen2"
	}
	w := &Writer{}
	w.Add("general.architecture", arch)
	w.Add("general.name", "test")
	k := func(s string) string { return arch + "." + s }
	for _, kv := range []struct {
		key string
		v   int
	}{
		{"vocab_size", cfg.VocabSize}, {"context_length", cfg.MaxPositionEmbeddings}, {"embedding_length", cfg.HiddenSize},
		{"block_count", cfg.NumLayers}, {"feed_forward_length", cfg.IntermediateSize}, {"attention.head_count", cfg.NumHeads},
		{"attention.head_count_kv", cfg.NumKVHeads}, {"attention.key_length", cfg.HeadDim},
		{"attention.value_length", cfg.HeadDim}, {"rope.dimension_count", cfg.HeadDim},
	} {
		w.Add(k(kv.key), uint32(kv.v))
	}
	w.Add(k("rope.freq_base"), float32(cfg.RopeTheta))
	w.Add(k("attention.layer_norm_rms_epsilon"), float32(cfg.RMSNormEps))
	if rs := cfg.RopeScaling; rs != nil {
		// As LlamaModel.generate_extra_tensors: the divisors of the
		// inverse frequencies, and no scaling metadata.
		scaled := *cfg
		plain := *cfg
		plain.RopeScaling = nil
		base, inv := model.RopeInvFreq(&plain), model.RopeInvFreq(&scaled)
		div := make([]float32, len(base))
		for i := range div {
			div[i] = float32(base[i] / inv[i])
		}
		data, err := model.Float32Bytes(div, model.F32)
		if err != nil {
			return nil, err
		}
		w.AddTensor("rope_freqs.weight", gguf.F32, []uint64{uint64(len(div))}, data)
	}
	names := ggufNames(cfg.NumLayers)
	for _, spec := range cfg.ExpectedTensors() {
		name, ok := names[spec.Name]
		if !ok {
			return nil, fmt.Errorf("ggufwrite: no GGUF name for %s", spec.Name)
		}
		v, err := ck.Float32s(spec.Name)
		if err != nil {
			return nil, err
		}
		typ := gguf.F32
		if len(spec.Shape) == 2 {
			typ = matrixType
		}
		data, err := model.Float32Bytes(v, map[gguf.Type]model.DType{gguf.F32: model.F32, gguf.F16: model.F16}[typ])
		if err != nil {
			return nil, err
		}
		if arch == "llama" {
			switch {
			case strings.Contains(name, ".attn_q."):
				data = Permute(data, spec.Shape[0], cfg.NumHeads)
			case strings.Contains(name, ".attn_k."):
				data = Permute(data, spec.Shape[0], cfg.NumKVHeads)
			}
		}
		dims := make([]uint64, len(spec.Shape))
		for i, d := range spec.Shape {
			dims[len(dims)-1-i] = uint64(d)
		}
		w.AddTensor(name, typ, dims, data)
	}
	return w, nil
}

// FromFS converts the Hugging Face model at the root of fsys (config.json,
// the safetensors weights, tokenizer.json and tokenizer_config.json) with
// FromCheckpoint and AddTokenizer (pre-tokenizer "llama-bpe" for a byte-level
// vocabulary).
func FromFS(fsys fs.FS, matrixType gguf.Type) (*Writer, error) {
	cfg, err := model.LoadConfigFS(fsys, ".")
	if err != nil {
		return nil, err
	}
	ck, err := model.OpenCheckpointFS(fsys, ".")
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	w, err := FromCheckpoint(ck, cfg, matrixType)
	if err != nil {
		return nil, err
	}
	tj, err := fs.ReadFile(fsys, "tokenizer.json")
	if err != nil {
		return nil, err
	}
	tc, _ := fs.ReadFile(fsys, "tokenizer_config.json")
	if err := w.AddTokenizer(tj, tc, cfg.VocabSize, "llama-bpe"); err != nil {
		return nil, err
	}
	return w, nil
}

// ggufNames maps the Hugging Face names of a model of layers layers to
// the GGUF ones (the inverse of model.HFTensorName).
func ggufNames(layers int) map[string]string {
	var cands []string
	cands = append(cands, "token_embd.weight", "output_norm.weight", "output.weight")
	for l := range layers {
		for _, s := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"} {
			cands = append(cands, fmt.Sprintf("blk.%d.%s.weight", l, s), fmt.Sprintf("blk.%d.%s.bias", l, s))
		}
	}
	out := map[string]string{}
	for _, g := range cands {
		if hf, ok := model.HFTensorName(g); ok {
			out[hf] = g
		}
	}
	return out
}

// Permute reorders the rows of a Q or K weight (or bias) of rows rows and
// heads heads as llama.cpp's LlamaModel.permute does:
//
//	w.reshape(heads, 2, rows/heads/2, ...).swapaxes(1, 2).reshape(w.shape)
//
// so that row h·d + 2i + s of the result is row h·d + s·d/2 + i of data
// (d = rows/heads).
func Permute(data []byte, rows, heads int) []byte {
	d, rb := rows/heads, len(data)/rows
	out := make([]byte, len(data))
	for h := range heads {
		for i := range d / 2 {
			for s := range 2 {
				copy(out[(h*d+2*i+s)*rb:][:rb], data[(h*d+s*d/2+i)*rb:][:rb])
			}
		}
	}
	return out
}
