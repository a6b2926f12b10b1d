package model

import (
	"fmt"
	"io/fs"
	"slices"
)

// Hugging Face tensor names.
const (
	EmbedTokensName = "model.embed_tokens.weight"
	FinalNormName   = "model.norm.weight"
	LMHeadName      = "lm_head.weight"
)

// LayerTensorName returns "model.layers.{layer}.{suffix}", e.g.
// LayerTensorName(3, "self_attn.q_proj.weight").
func LayerTensorName(layer int, suffix string) string {
	return fmt.Sprintf("model.layers.%d.%s", layer, suffix)
}

// TensorSpec is a tensor the model needs, with its expected shape
// (PyTorch layout: Linear weights are [out_features, in_features]).
type TensorSpec struct {
	Name  string
	Shape []int
}

// ExpectedTensors lists every tensor cfg needs, in a stable order: the
// embedding, then per layer the attention norm, q/k/v (weight then bias when
// present), o, the MLP norm, gate, up and down, then the final norm and, when
// embeddings are not tied, lm_head.
func (c *Config) ExpectedTensors() []TensorSpec {
	h, q, kv, in := c.HiddenSize, c.QDim(), c.KVDim(), c.IntermediateSize
	specs := []TensorSpec{{EmbedTokensName, []int{c.VocabSize, h}}}
	for l := 0; l < c.NumLayers; l++ {
		add := func(suffix string, shape ...int) {
			specs = append(specs, TensorSpec{LayerTensorName(l, suffix), shape})
		}
		add("input_layernorm.weight", h)
		add("self_attn.q_proj.weight", q, h)
		if c.QKVBias {
			add("self_attn.q_proj.bias", q)
		}
		add("self_attn.k_proj.weight", kv, h)
		if c.QKVBias {
			add("self_attn.k_proj.bias", kv)
		}
		add("self_attn.v_proj.weight", kv, h)
		if c.QKVBias {
			add("self_attn.v_proj.bias", kv)
		}
		add("self_attn.o_proj.weight", h, q)
		if c.OBias {
			add("self_attn.o_proj.bias", h)
		}
		add("post_attention_layernorm.weight", h)
		add("mlp.gate_proj.weight", in, h)
		add("mlp.up_proj.weight", in, h)
		add("mlp.down_proj.weight", h, in)
	}
	specs = append(specs, TensorSpec{FinalNormName, []int{h}})
	if !c.TieWordEmbeddings {
		specs = append(specs, TensorSpec{LMHeadName, []int{c.VocabSize, h}})
	}
	return specs
}

// LayerWeights holds one decoder layer as row-major float32 matrices in
// PyTorch layout ([out, in]). Bias slices are nil when the model has none.
type LayerWeights struct {
	AttnNorm []float32 // input_layernorm.weight [hidden]
	Q        []float32 // q_proj.weight [heads*head_dim, hidden]
	K        []float32 // k_proj.weight [kv_heads*head_dim, hidden]
	V        []float32 // v_proj.weight [kv_heads*head_dim, hidden]
	QBias    []float32 // q_proj.bias [heads*head_dim] or nil
	KBias    []float32 // k_proj.bias [kv_heads*head_dim] or nil
	VBias    []float32 // v_proj.bias [kv_heads*head_dim] or nil
	O        []float32 // o_proj.weight [hidden, heads*head_dim]
	OBias    []float32 // o_proj.bias [hidden] or nil
	MLPNorm  []float32 // post_attention_layernorm.weight [hidden]
	Gate     []float32 // mlp.gate_proj.weight [intermediate, hidden]
	Up       []float32 // mlp.up_proj.weight [intermediate, hidden]
	Down     []float32 // mlp.down_proj.weight [hidden, intermediate]
}

// Weights holds all model parameters as float32 host slices.
type Weights struct {
	Embed  []float32 // model.embed_tokens.weight [vocab, hidden]
	Layers []LayerWeights
	Norm   []float32 // model.norm.weight [hidden]
	// LMHead is lm_head.weight [vocab, hidden]; it is the same slice as Embed
	// when TiedEmbeddings is set.
	LMHead         []float32
	TiedEmbeddings bool
}

// LoadWeights converts the tensors of ck that cfg needs to float32, checking
// each shape against cfg. Extra tensors in the checkpoint are ignored. With
// tie_word_embeddings, lm_head is model.embed_tokens.weight (as in
// transformers, an lm_head.weight in the file is then ignored).
func LoadWeights(ck *Checkpoint, cfg *Config) (*Weights, error) {
	get := func(spec TensorSpec) ([]float32, error) {
		t, err := ck.Tensor(spec.Name)
		if err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		if !slices.Equal(t.Shape, spec.Shape) {
			return nil, fmt.Errorf("weights: %s: tensor %q has shape %v, expected %v", t.File, spec.Name, t.Shape, spec.Shape)
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		return v, nil
	}
	byName := make(map[string][]float32)
	for _, spec := range cfg.ExpectedTensors() {
		v, err := get(spec)
		if err != nil {
			return nil, err
		}
		byName[spec.Name] = v
	}
	w := &Weights{
		Embed:          byName[EmbedTokensName],
		Norm:           byName[FinalNormName],
		Layers:         make([]LayerWeights, cfg.NumLayers),
		TiedEmbeddings: cfg.TieWordEmbeddings,
	}
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
	} else {
		w.LMHead = byName[LMHeadName]
	}
	for l := range w.Layers {
		g := func(suffix string) []float32 { return byName[LayerTensorName(l, suffix)] }
		w.Layers[l] = LayerWeights{
			AttnNorm: g("input_layernorm.weight"),
			Q:        g("self_attn.q_proj.weight"),
			K:        g("self_attn.k_proj.weight"),
			V:        g("self_attn.v_proj.weight"),
			QBias:    g("self_attn.q_proj.bias"),
			KBias:    g("self_attn.k_proj.bias"),
			VBias:    g("self_attn.v_proj.bias"),
			O:        g("self_attn.o_proj.weight"),
			OBias:    g("self_attn.o_proj.bias"),
			MLPNorm:  g("post_attention_layernorm.weight"),
			Gate:     g("mlp.gate_proj.weight"),
			Up:       g("mlp.up_proj.weight"),
			Down:     g("mlp.down_proj.weight"),
		}
	}
	return w, nil
}

// Load reads the configuration and weights of dir into host memory as
// float32 (for CPU computations such as bench density; the GPU engine
// streams a Checkpoint instead). dir is a safetensors model directory
// (config.json and its shards) or a GGUF file (see OpenGGUF).
func Load(dir string) (*Config, *Weights, error) {
	cfg, ck, err := openModel(dir)
	if err != nil {
		return nil, nil, err
	}
	return loadWeightsOf(cfg, ck, nil)
}

// LoadFS is Load on a file system such as an embed.FS; dir is a
// slash-separated directory inside fsys ("." for its root).
func LoadFS(fsys fs.FS, dir string) (*Config, *Weights, error) {
	cfg, err := LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, nil, err
	}
	ck, err := OpenCheckpointFS(fsys, dir)
	return loadWeightsOf(cfg, ck, err)
}

// loadWeightsOf reads the weights of cfg from ck (opened with error err)
// and closes ck.
func loadWeightsOf(cfg *Config, ck *Checkpoint, err error) (*Config, *Weights, error) {
	if err != nil {
		return nil, nil, err
	}
	defer ck.Close()
	w, err := LoadWeights(ck, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, w, nil
}
