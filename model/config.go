package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"path"
	"path/filepath"
	"strings"

	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// Supported Hugging Face architectures.
const (
	ArchLlama   = "LlamaForCausalLM"
	ArchQwen2   = "Qwen2ForCausalLM"
	ArchMistral = "MistralForCausalLM"
)

// SupportedArchitectures lists the architectures ParseConfig accepts.
var SupportedArchitectures = []string{ArchLlama, ArchQwen2, ArchMistral}

// Upper bounds on config sizes. They are far above any real model and make
// every size product in this package fit in an int64.
const (
	maxHidden       = 1 << 17
	maxIntermediate = 1 << 20
	maxLayers       = 1 << 12
	maxHeads        = 1 << 12
	maxHeadDim      = 1 << 12
	maxVocab        = 1 << 24
	maxPositions    = 1 << 30
)

// RopeScaling is the "llama3" rope_scaling block of a config (the only
// scaling type supported).
type RopeScaling struct {
	// Type is always "llama3".
	Type                          string
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings int
}

// Config is the validated subset of a Hugging Face config.json needed to run
// a Llama, Qwen2 or Mistral decoder.
type Config struct {
	// Architecture is one of SupportedArchitectures.
	Architecture string
	// ModelType is config.json's model_type (informational; defaults to
	// llama, qwen2 or mistral by architecture).
	ModelType string

	HiddenSize       int
	NumLayers        int // num_hidden_layers
	NumHeads         int // num_attention_heads
	NumKVHeads       int // num_key_value_heads (defaults to NumHeads)
	HeadDim          int // head_dim (defaults to HiddenSize/NumHeads)
	IntermediateSize int
	VocabSize        int
	// MaxPositionEmbeddings is the trained context length.
	MaxPositionEmbeddings int

	RMSNormEps float64
	RopeTheta  float64
	// RopeScaling is nil for plain RoPE.
	RopeScaling *RopeScaling

	// TieWordEmbeddings makes lm_head share model.embed_tokens.weight.
	TieWordEmbeddings bool
	// QKVBias: q_proj, k_proj and v_proj have biases (always for Qwen2;
	// attention_bias for Llama).
	QKVBias bool
	// OBias: o_proj has a bias (Llama with attention_bias only).
	OBias bool

	// BOSTokenID is -1 when the config has none.
	BOSTokenID int
	// EOSTokenIDs holds eos_token_id (an int or a list in config.json).
	EOSTokenIDs []int
	// TorchDType is torch_dtype (or dtype), e.g. "bfloat16"; may be empty.
	TorchDType string
}

// rawConfig mirrors config.json; pointers distinguish absent from zero.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            *int            `json:"hidden_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	IntermediateSize      *int            `json:"intermediate_size"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	// RopeParameters is transformers 5's form: rope_theta and the scaling
	// fields in one object ({"rope_type": "llama3", "rope_theta": ..., ...}).
	RopeParameters      json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings   *bool           `json:"tie_word_embeddings"`
	AttentionBias       *bool           `json:"attention_bias"`
	MLPBias             *bool           `json:"mlp_bias"`
	HiddenAct           *string         `json:"hidden_act"`
	SlidingWindow       *int            `json:"sliding_window"`
	UseSlidingWindow    *bool           `json:"use_sliding_window"`
	BOSTokenID          *int            `json:"bos_token_id"`
	EOSTokenID          json.RawMessage `json:"eos_token_id"`
	TorchDType          *string         `json:"torch_dtype"`
	DType               *string         `json:"dtype"`
	PartialRotaryFactor *float64        `json:"partial_rotary_factor"`
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, ConfigFileName)
	data, err := ReadRegularFile(p)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// LoadConfigFS reads and validates config.json in directory dir of fsys.
func LoadConfigFS(fsys fs.FS, dir string) (*Config, error) {
	p := path.Join(dir, ConfigFileName)
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// ParseConfig parses and validates the contents of a Hugging Face
// config.json for LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM.
func ParseConfig(data []byte) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(r.Architectures) != 1 {
		return nil, fmt.Errorf("config: architectures must list exactly one of %s, got %q", strings.Join(SupportedArchitectures, ", "), r.Architectures)
	}
	c := &Config{Architecture: r.Architectures[0], ModelType: r.ModelType, BOSTokenID: -1}
	switch c.Architecture {
	case ArchLlama, ArchQwen2, ArchMistral:
	default:
		return nil, fmt.Errorf("config: unsupported architecture %q (supported: %s)", c.Architecture, strings.Join(SupportedArchitectures, ", "))
	}
	c.ModelType = c.modelType()

	required := []struct {
		name string
		src  *int
		dst  *int
	}{
		{"hidden_size", r.HiddenSize, &c.HiddenSize},
		{"num_hidden_layers", r.NumHiddenLayers, &c.NumLayers},
		{"num_attention_heads", r.NumAttentionHeads, &c.NumHeads},
		{"intermediate_size", r.IntermediateSize, &c.IntermediateSize},
		{"vocab_size", r.VocabSize, &c.VocabSize},
		{"max_position_embeddings", r.MaxPositionEmbeddings, &c.MaxPositionEmbeddings},
	}
	for _, f := range required {
		if f.src == nil {
			return nil, fmt.Errorf("config: %s: missing %s", c.Architecture, f.name)
		}
		*f.dst = *f.src
	}
	c.NumKVHeads = c.NumHeads
	if r.NumKeyValueHeads != nil {
		c.NumKVHeads = *r.NumKeyValueHeads
	}
	if r.HeadDim != nil {
		c.HeadDim = *r.HeadDim
	} else if c.NumHeads > 0 {
		if c.HiddenSize%c.NumHeads != 0 {
			return nil, fmt.Errorf("config: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim is given)", c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.RMSNormEps = 1e-6
	if r.RMSNormEps != nil {
		c.RMSNormEps = *r.RMSNormEps
	}
	c.RopeTheta = 10000
	if r.RopeTheta != nil {
		c.RopeTheta = *r.RopeTheta
	} else if len(bytes.TrimSpace(r.RopeParameters)) > 0 && string(bytes.TrimSpace(r.RopeParameters)) != "null" {
		var rp struct {
			RopeTheta *float64 `json:"rope_theta"`
		}
		if err := json.Unmarshal(r.RopeParameters, &rp); err != nil {
			return nil, fmt.Errorf("config: rope_parameters: %w", err)
		}
		if rp.RopeTheta != nil {
			c.RopeTheta = *rp.RopeTheta
		}
	}
	if r.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *r.TieWordEmbeddings
	}
	if r.BOSTokenID != nil {
		c.BOSTokenID = *r.BOSTokenID
	}
	eos, err := parseEOS(r.EOSTokenID)
	if err != nil {
		return nil, err
	}
	c.EOSTokenIDs = eos
	if r.TorchDType != nil {
		c.TorchDType = *r.TorchDType
	} else if r.DType != nil {
		c.TorchDType = *r.DType
	}
	if r.HiddenAct != nil && *r.HiddenAct != "silu" {
		return nil, fmt.Errorf("config: hidden_act %q is not supported (only silu)", *r.HiddenAct)
	}
	if r.PartialRotaryFactor != nil && *r.PartialRotaryFactor != 1 {
		return nil, fmt.Errorf("config: partial_rotary_factor %v is not supported (only 1)", *r.PartialRotaryFactor)
	}

	switch c.Architecture {
	case ArchLlama:
		if r.AttentionBias != nil && *r.AttentionBias {
			c.QKVBias, c.OBias = true, true
		}
		if r.MLPBias != nil && *r.MLPBias {
			return nil, fmt.Errorf("config: %s: mlp_bias true is not supported", c.Architecture)
		}
	case ArchQwen2:
		c.QKVBias = true
		if r.UseSlidingWindow != nil && *r.UseSlidingWindow && r.SlidingWindow != nil {
			if err := checkSlidingWindow(*r.SlidingWindow, c.MaxPositionEmbeddings); err != nil {
				return nil, err
			}
		}
	case ArchMistral:
		if r.SlidingWindow != nil {
			if err := checkSlidingWindow(*r.SlidingWindow, c.MaxPositionEmbeddings); err != nil {
				return nil, err
			}
		}
	}

	// transformers < 5 writes rope_scaling; transformers 5 writes
	// rope_parameters (the same fields plus rope_theta). rope_scaling wins
	// when both are present.
	scaling := r.RopeScaling
	if t := bytes.TrimSpace(scaling); len(t) == 0 || string(t) == "null" {
		scaling = r.RopeParameters
	}
	rs, err := parseRopeScaling(scaling)
	if err != nil {
		return nil, err
	}
	c.RopeScaling = rs
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func checkSlidingWindow(sw, maxPos int) error {
	if sw < maxPos {
		return fmt.Errorf("config: sliding_window %d < max_position_embeddings %d is not supported", sw, maxPos)
	}
	return nil
}

// parseEOS accepts null, an int or a list of ints.
func parseEOS(raw json.RawMessage) ([]int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("config: eos_token_id must be an int or a list of ints: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

// parseRopeScaling accepts null, {"rope_type"|"type": "default"} (no
// scaling) and the llama3 block; anything else is rejected by name.
func parseRopeScaling(raw json.RawMessage) (*RopeScaling, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r struct {
		RopeType                      *string  `json:"rope_type"`
		Type                          *string  `json:"type"`
		Factor                        *float64 `json:"factor"`
		LowFreqFactor                 *float64 `json:"low_freq_factor"`
		HighFreqFactor                *float64 `json:"high_freq_factor"`
		OriginalMaxPositionEmbeddings *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("config: rope_scaling: %w", err)
	}
	typ := ""
	switch {
	case r.RopeType != nil:
		typ = *r.RopeType
	case r.Type != nil:
		typ = *r.Type
	default:
		return nil, fmt.Errorf("config: rope_scaling has neither rope_type nor type")
	}
	switch typ {
	case "default":
		return nil, nil
	case "llama3":
	default:
		return nil, fmt.Errorf("config: rope_scaling type %q is not supported (supported: llama3, default)", typ)
	}
	missing := func(f string) error {
		return fmt.Errorf("config: rope_scaling llama3: missing %s", f)
	}
	switch {
	case r.Factor == nil:
		return nil, missing("factor")
	case r.LowFreqFactor == nil:
		return nil, missing("low_freq_factor")
	case r.HighFreqFactor == nil:
		return nil, missing("high_freq_factor")
	case r.OriginalMaxPositionEmbeddings == nil:
		return nil, missing("original_max_position_embeddings")
	}
	return &RopeScaling{
		Type:                          "llama3",
		Factor:                        *r.Factor,
		LowFreqFactor:                 *r.LowFreqFactor,
		HighFreqFactor:                *r.HighFreqFactor,
		OriginalMaxPositionEmbeddings: *r.OriginalMaxPositionEmbeddings,
	}, nil
}

// Validate checks the internal consistency of c. ParseConfig calls it; call
// it yourself on hand-built configs.
func (c *Config) Validate() error {
	switch c.Architecture {
	case ArchLlama, ArchQwen2, ArchMistral:
	default:
		return fmt.Errorf("config: unsupported architecture %q (supported: %s)", c.Architecture, strings.Join(SupportedArchitectures, ", "))
	}
	bounds := []struct {
		name string
		v    int
		max  int
	}{
		{"hidden_size", c.HiddenSize, maxHidden},
		{"num_hidden_layers", c.NumLayers, maxLayers},
		{"num_attention_heads", c.NumHeads, maxHeads},
		{"num_key_value_heads", c.NumKVHeads, maxHeads},
		{"head_dim", c.HeadDim, maxHeadDim},
		{"intermediate_size", c.IntermediateSize, maxIntermediate},
		{"vocab_size", c.VocabSize, maxVocab},
		{"max_position_embeddings", c.MaxPositionEmbeddings, maxPositions},
	}
	for _, b := range bounds {
		if b.v <= 0 {
			return fmt.Errorf("config: %s must be positive, got %d", b.name, b.v)
		}
		if b.v > b.max {
			return fmt.Errorf("config: %s %d exceeds the supported maximum %d", b.name, b.v, b.max)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("config: num_attention_heads %d is not divisible by num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("config: head_dim %d must be even for RoPE", c.HeadDim)
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		return fmt.Errorf("config: rms_norm_eps must be positive and finite, got %v", c.RMSNormEps)
	}
	if !(c.RopeTheta > 1) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("config: rope_theta must be finite and > 1, got %v", c.RopeTheta)
	}
	if c.BOSTokenID < -1 {
		return fmt.Errorf("config: bos_token_id must be non-negative, got %d", c.BOSTokenID)
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 {
			return fmt.Errorf("config: eos_token_id must be non-negative, got %d", id)
		}
	}
	if c.BOSTokenID >= c.VocabSize {
		return fmt.Errorf("config: bos_token_id %d is outside vocab_size %d", c.BOSTokenID, c.VocabSize)
	}
	if s := c.RopeScaling; s != nil {
		if s.Type != "llama3" {
			return fmt.Errorf("config: rope_scaling type %q is not supported (supported: llama3, default)", s.Type)
		}
		finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
		switch {
		case !finite(s.Factor) || s.Factor < 1:
			return fmt.Errorf("config: rope_scaling llama3: factor must be finite and >= 1, got %v", s.Factor)
		case !finite(s.LowFreqFactor) || s.LowFreqFactor <= 0:
			return fmt.Errorf("config: rope_scaling llama3: low_freq_factor must be positive and finite, got %v", s.LowFreqFactor)
		case !finite(s.HighFreqFactor) || s.HighFreqFactor <= s.LowFreqFactor:
			return fmt.Errorf("config: rope_scaling llama3: high_freq_factor %v must be finite and greater than low_freq_factor %v", s.HighFreqFactor, s.LowFreqFactor)
		case s.OriginalMaxPositionEmbeddings <= 0:
			return fmt.Errorf("config: rope_scaling llama3: original_max_position_embeddings must be positive, got %d", s.OriginalMaxPositionEmbeddings)
		}
	}
	if _, ok := c.paramCount(); !ok {
		return fmt.Errorf("config: parameter count overflows int64")
	}
	return nil
}

// QDim is NumHeads*HeadDim, the width of the query projection.
func (c *Config) QDim() int { return c.NumHeads * c.HeadDim }

// KVDim is NumKVHeads*HeadDim, the width of the key and value projections.
func (c *Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// GQAGroup is NumHeads/NumKVHeads: query head h reads kv head h/GQAGroup.
func (c *Config) GQAGroup() int { return c.NumHeads / c.NumKVHeads }

// NumParams returns the number of model parameters, counting a tied
// lm_head once. It is valid for validated configs.
func (c *Config) NumParams() int64 {
	n, _ := c.paramCount()
	return n
}

// ParamBytes returns the bytes needed to store all parameters as dt.
func (c *Config) ParamBytes(dt DType) int64 { return c.NumParams() * int64(dt.Size()) }

// KVCacheBytesPerToken returns the bytes of K and V cache one token needs
// over all layers when stored as dt.
func (c *Config) KVCacheBytesPerToken(dt DType) int64 {
	return 2 * int64(c.NumLayers) * int64(c.KVDim()) * int64(dt.Size())
}

// paramCount counts the elements of ExpectedTensors. The sizes are
// bounded by Validate's limits (the largest possible count is below 2^57),
// but every step is still overflow-checked.
func (c *Config) paramCount() (int64, bool) {
	ok := true
	mul := func(a, b int64) int64 {
		hi, lo := bits.Mul64(uint64(a), uint64(b))
		if a < 0 || b < 0 || hi != 0 || lo > math.MaxInt64 {
			ok = false
			return 0
		}
		return int64(lo)
	}
	add := func(a, b int64) int64 {
		s := a + b
		if s < a {
			ok = false
		}
		return s
	}
	h, q, kv := int64(c.HiddenSize), int64(c.QDim()), int64(c.KVDim())
	layer := add(add(mul(h, q), mul(2, mul(h, kv))), mul(q, h)) // q, k, v, o
	layer = add(layer, mul(3, mul(h, int64(c.IntermediateSize))))
	layer = add(layer, mul(2, h)) // two norms
	if c.QKVBias {
		layer = add(layer, add(q, mul(2, kv)))
	}
	if c.OBias {
		layer = add(layer, h)
	}
	embed := mul(int64(c.VocabSize), h)
	total := add(add(embed, h), mul(int64(c.NumLayers), layer))
	if !c.TieWordEmbeddings {
		total = add(total, embed)
	}
	return total, ok && total >= 0
}

// MarshalHF renders c as a Hugging Face config.json that ParseConfig reads
// back to an equal Config.
func (c *Config) MarshalHF() ([]byte, error) {
	m := map[string]any{
		"architectures":           []string{c.Architecture},
		"model_type":              c.modelType(),
		"hidden_size":             c.HiddenSize,
		"num_hidden_layers":       c.NumLayers,
		"num_attention_heads":     c.NumHeads,
		"num_key_value_heads":     c.NumKVHeads,
		"head_dim":                c.HeadDim,
		"intermediate_size":       c.IntermediateSize,
		"vocab_size":              c.VocabSize,
		"max_position_embeddings": c.MaxPositionEmbeddings,
		"rms_norm_eps":            c.RMSNormEps,
		"rope_theta":              c.RopeTheta,
		"rope_scaling":            nil,
		"hidden_act":              "silu",
		"tie_word_embeddings":     c.TieWordEmbeddings,
	}
	if c.Architecture == ArchLlama {
		if c.QKVBias != c.OBias {
			return nil, fmt.Errorf("config: Llama attention_bias covers q, k, v and o together")
		}
		m["attention_bias"] = c.QKVBias
		m["mlp_bias"] = false
	} else if c.OBias || (c.Architecture == ArchQwen2) != c.QKVBias {
		return nil, fmt.Errorf("config: %s cannot express QKVBias=%v OBias=%v", c.Architecture, c.QKVBias, c.OBias)
	}
	if c.Architecture == ArchMistral {
		m["sliding_window"] = nil
	}
	if c.Architecture == ArchQwen2 {
		m["use_sliding_window"] = false
	}
	if s := c.RopeScaling; s != nil {
		m["rope_scaling"] = map[string]any{
			"rope_type":                        s.Type,
			"factor":                           s.Factor,
			"low_freq_factor":                  s.LowFreqFactor,
			"high_freq_factor":                 s.HighFreqFactor,
			"original_max_position_embeddings": s.OriginalMaxPositionEmbeddings,
		}
	}
	if c.BOSTokenID >= 0 {
		m["bos_token_id"] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	if c.TorchDType != "" {
		m["torch_dtype"] = c.TorchDType
	}
	return json.MarshalIndent(m, "", "  ")
}

func (c *Config) modelType() string {
	if c.ModelType != "" {
		return c.ModelType
	}
	switch c.Architecture {
	case ArchQwen2:
		return "qwen2"
	case ArchMistral:
		return "mistral"
	}
	return "llama"
}

// RopeInvFreq returns the HeadDim/2 RoPE inverse frequencies of cfg, as
// Hugging Face computes them: the default rope
//
//	inv_freq[i] = 1 / rope_theta^(2i/head_dim)
//
// and, for rope_scaling type llama3, exactly the adjustment of
// transformers' _compute_llama3_parameters. The values are computed in
// float64; transformers computes them in float32, so they agree to about
// 1e-7 relative.
func RopeInvFreq(cfg *Config) []float64 {
	var sc *kernels.Llama3Scaling
	if s := cfg.RopeScaling; s != nil && s.Type == "llama3" {
		sc = &kernels.Llama3Scaling{Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
			HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings}
	}
	return kernels.RopeInvFreq(cfg.RopeTheta, cfg.HeadDim, sc)
}
