package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/x448/float16"
)

// GGUF architectures (general.architecture) that OpenGGUF loads. llama.cpp
// converts Mistral checkpoints to "llama".
const (
	GGUFArchLlama = "llama"
	GGUFArchQwen2 = "qwen2"
)

// IsGGUF reports whether path is a regular file that starts with the GGUF
// magic.
func IsGGUF(path string) bool {
	if checkRegular(path) != nil {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == gguf.Magic
}

// OpenGGUF opens a GGUF model file of a llama (Llama, Mistral) or qwen2
// model: the Config comes from the metadata and the Checkpoint holds the
// tensors under their Hugging Face names, so that NewEngine, LoadWeights and
// the reference load a .gguf file as they load a safetensors directory.
//
// Tensors are read one at a time when asked for: F32, F16 and BF16 as they
// are; through Checkpoint.Tensor (and LoadWeights), quantized tensors (Q8_0,
// Q4_0, Q5_0, Q4_K, Q5_K, Q6_K) are dequantized to F16 on the host, while
// NewEngine uploads the raw blocks of the matrices it keeps quantized on the
// device (PlanWeights). llama.cpp's converter permutes the rows of the
// llama attn_q and attn_k weights for ggml's RoPE; they are permuted back to
// the Hugging Face order (whole rows of blocks for a quantized tensor). Checkpoint.GGUF returns the file for its other
// metadata (the tokenizer). Close the Checkpoint when done.
func OpenGGUF(path string) (*Config, *Checkpoint, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return cfg, newGGUFCheckpoint(f, cfg), nil
}

// openModel opens a GGUF file or a safetensors directory.
func openModel(path string) (*Config, *Checkpoint, error) {
	if IsGGUF(path) {
		return OpenGGUF(path)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	ck, err := OpenCheckpoint(path)
	if err != nil {
		return nil, nil, err
	}
	return cfg, ck, nil
}

// GGUF returns the GGUF file of a checkpoint opened by OpenGGUF, and nil for
// a safetensors checkpoint. It is valid until Close.
func (c *Checkpoint) GGUF() *gguf.File {
	if c.gguf == nil {
		return nil
	}
	return c.gguf.file
}

// ggufTensors are the tensors of a GGUF checkpoint by Hugging Face name.
type ggufTensors struct {
	file   *gguf.File
	byName map[string]ggufTensor
}

type ggufTensor struct {
	info gguf.TensorInfo
	// heads > 0 undoes llama.cpp's Q/K row permutation for that many heads.
	heads int
}

// ggufLayerNames maps the GGUF names of a layer's tensors (after
// "blk.N.") to the Hugging Face ones (after "model.layers.N.").
var ggufLayerNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_output.weight": "self_attn.o_proj.weight",
	"attn_output.bias":   "self_attn.o_proj.bias",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

// ggufGlobalNames maps the GGUF names of the tensors outside the layers.
var ggufGlobalNames = map[string]string{
	"token_embd.weight":  EmbedTokensName,
	"output_norm.weight": FinalNormName,
	"output.weight":      LMHeadName,
}

// HFTensorName returns the Hugging Face name of a GGUF tensor name of a
// llama or qwen2 model ("blk.3.attn_q.weight" → "model.layers.3.self_attn.q_proj.weight"),
// or false for a name with none (such as rope_freqs.weight).
func HFTensorName(ggufName string) (string, bool) {
	if n, ok := ggufGlobalNames[ggufName]; ok {
		return n, true
	}
	rest, ok := strings.CutPrefix(ggufName, "blk.")
	if !ok {
		return "", false
	}
	num, suffix, ok := strings.Cut(rest, ".")
	if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
		return "", false
	}
	layer, err := strconv.Atoi(num)
	if err != nil || layer < 0 {
		return "", false
	}
	hf, ok := ggufLayerNames[suffix]
	if !ok {
		return "", false
	}
	return LayerTensorName(layer, hf), true
}

func newGGUFCheckpoint(f *gguf.File, cfg *Config) *Checkpoint {
	arch, _ := f.String("general.architecture")
	src := &ggufTensors{file: f, byName: make(map[string]ggufTensor, len(f.Tensors))}
	c := &Checkpoint{Dir: f.Path, where: make(map[string]*SafetensorsFile, len(f.Tensors)), gguf: src}
	for _, t := range f.Tensors {
		hf, ok := HFTensorName(t.Name)
		if !ok {
			continue
		}
		gt := ggufTensor{info: t}
		if arch == GGUFArchLlama {
			switch {
			case strings.HasSuffix(t.Name, ".attn_q.weight"), strings.HasSuffix(t.Name, ".attn_q.bias"):
				gt.heads = cfg.NumHeads
			case strings.HasSuffix(t.Name, ".attn_k.weight"), strings.HasSuffix(t.Name, ".attn_k.bias"):
				gt.heads = cfg.NumKVHeads
			}
		}
		src.byName[hf] = gt
		c.where[hf] = nil
		c.names = append(c.names, hf)
	}
	slices.Sort(c.names)
	return c
}

// raw reads the named tensor as stored, with the Q/K rows put back in
// Hugging Face order (whole rows of blocks move, so this works for every
// type).
func (s *ggufTensors) raw(name string) ([]byte, gguf.TensorInfo, error) {
	gt, ok := s.byName[name]
	if !ok {
		return nil, gguf.TensorInfo{}, fmt.Errorf("gguf: %s: missing tensor %q", s.file.Path, name)
	}
	ti := gt.info
	fail := func(err error) ([]byte, gguf.TensorInfo, error) {
		return nil, ti, fmt.Errorf("gguf: %s: tensor %q (%s): %w", s.file.Path, ti.Name, name, err)
	}
	if len(ti.Dims) == 0 || len(ti.Dims) > 2 {
		return fail(fmt.Errorf("%d dimensions, want 1 or 2", len(ti.Dims)))
	}
	raw, err := s.file.TensorData(ti)
	if err != nil {
		return nil, ti, err
	}
	if gt.heads > 0 {
		if raw, err = unpermuteQK(raw, ti.Shape()[0], gt.heads); err != nil {
			return fail(err)
		}
	}
	return raw, ti, nil
}

// tensor reads the named tensor, undoing the Q/K permutation and
// dequantizing a quantized one to F16.
func (s *ggufTensors) tensor(name string) (TensorInfo, error) {
	raw, ti, err := s.raw(name)
	if err != nil {
		return TensorInfo{}, err
	}
	out := TensorInfo{Name: name, File: s.file.Path, Shape: ti.Shape(), Data: raw}
	switch ti.Type {
	case gguf.F32:
		out.DType = F32
	case gguf.F16:
		out.DType = F16
	case gguf.BF16:
		out.DType = BF16
	default:
		if !ti.Type.CanDequantize() {
			return TensorInfo{}, fmt.Errorf("gguf: %s: tensor %q (%s): type %s is not supported (supported: %v)",
				s.file.Path, ti.Name, name, ti.Type, gguf.SupportedDequantize())
		}
		if out.Data, out.DType, err = dequantizeF16(raw, ti); err != nil {
			return TensorInfo{}, fmt.Errorf("gguf: %s: tensor %q (%s): %w", s.file.Path, ti.Name, name, err)
		}
	}
	return out, nil
}

// dequantizeF16 dequantizes the data of ti to F16, a few rows at a time so
// that the host holds no float32 copy of a large tensor. A value beyond
// f16's range makes it return F32 instead, so that the finiteness check at
// upload names the value rather than an f16 infinity.
func dequantizeF16(raw []byte, ti gguf.TensorInfo) ([]byte, DType, error) {
	n := int(ti.NumElements())
	rowElems := int(ti.Dims[0])
	if n == 0 || rowElems == 0 {
		return nil, F16, nil
	}
	rowBytes := len(raw) / (n / rowElems)
	k := max(1, (1<<16)/rowElems) // rows per step
	buf := make([]float32, k*rowElems)
	out := make([]byte, 2*n)
	for r := 0; r*rowElems < n; r += k {
		m := min(k, n/rowElems-r)
		v := buf[:m*rowElems]
		if err := gguf.Dequantize(v, raw[r*rowBytes:(r+m)*rowBytes], ti.Type); err != nil {
			return nil, "", err
		}
		for i, x := range v {
			if !(math.Abs(float64(x)) < f16Overflow) {
				all := make([]float32, n)
				if err := gguf.Dequantize(all, raw, ti.Type); err != nil {
					return nil, "", err
				}
				b, err := Float32Bytes(all, F32)
				return b, F32, err
			}
			binary.LittleEndian.PutUint16(out[2*(r*rowElems+i):], float16.Fromfloat32(x).Bits())
		}
	}
	return out, F16, nil
}

// unpermuteQK undoes the row permutation llama.cpp's converter applies to
// the llama attention Q and K weights (and biases) of rows rows split into
// heads heads: it stores the Hugging Face rows of each head, whose two
// rotate_half halves are [0, d/2) and [d/2, d), interleaved for ggml's
// RoPE, GGUF row h·d + 2i + s holding Hugging Face row h·d + s·d/2 + i.
func unpermuteQK(data []byte, rows, heads int) ([]byte, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 || len(data)%rows != 0 {
		return nil, fmt.Errorf("cannot undo the Q/K permutation of %d rows for %d heads", rows, heads)
	}
	d, rb := rows/heads, len(data)/rows
	out := make([]byte, len(data))
	for h := range heads {
		for i := range d / 2 {
			for s := range 2 {
				src := (h*d + 2*i + s) * rb
				dst := (h*d + s*d/2 + i) * rb
				copy(out[dst:dst+rb], data[src:src+rb])
			}
		}
	}
	return out, nil
}

// ConfigFromGGUF builds the model configuration from the metadata of a GGUF
// file of architecture llama or qwen2 (keys {arch}.context_length,
// embedding_length, block_count, feed_forward_length, attention.head_count,
// attention.head_count_kv, attention.key_length,
// attention.layer_norm_rms_epsilon, rope.freq_base; the vocabulary size and
// tied embeddings from the tensors; BOS and EOS from tokenizer.ggml.*). A
// rope_freqs.weight tensor must hold Llama 3's frequency factors, which
// become RopeScaling; other RoPE scaling is not supported.
func ConfigFromGGUF(f *gguf.File) (*Config, error) {
	fail := func(format string, args ...any) (*Config, error) {
		return nil, fmt.Errorf("gguf: %s: %s", f.Path, fmt.Sprintf(format, args...))
	}
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	c := &Config{ModelType: arch, BOSTokenID: -1}
	switch arch {
	case GGUFArchLlama:
		c.Architecture = ArchLlama
	case GGUFArchQwen2:
		c.Architecture = ArchQwen2
		c.QKVBias = true
	default:
		return fail("general.architecture %q is not supported (supported: %s, %s)", arch, GGUFArchLlama, GGUFArchQwen2)
	}
	key := func(k string) string { return arch + "." + k }
	// count reads a non-negative count that fits an int32.
	count := func(k string) (int, error) {
		n, err := f.Int(k)
		if err != nil {
			return 0, err
		}
		if n < 0 || n > math.MaxInt32 {
			return 0, fmt.Errorf("gguf: %s: metadata key %s is %d, want 0 … %d", f.Path, k, n, math.MaxInt32)
		}
		return int(n), nil
	}
	for _, r := range []struct {
		key string
		dst *int
	}{
		{key("context_length"), &c.MaxPositionEmbeddings},
		{key("embedding_length"), &c.HiddenSize},
		{key("block_count"), &c.NumLayers},
		{key("feed_forward_length"), &c.IntermediateSize},
		{key("attention.head_count"), &c.NumHeads},
	} {
		if *r.dst, err = count(r.key); err != nil {
			return nil, err
		}
	}
	c.NumKVHeads = c.NumHeads
	if f.Has(key("attention.head_count_kv")) {
		if c.NumKVHeads, err = count(key("attention.head_count_kv")); err != nil {
			return nil, err
		}
	}
	switch {
	case f.Has(key("attention.key_length")):
		if c.HeadDim, err = count(key("attention.key_length")); err != nil {
			return nil, err
		}
	case c.NumHeads > 0 && c.HiddenSize%c.NumHeads == 0:
		c.HeadDim = c.HiddenSize / c.NumHeads
	default:
		return fail("%s %d is not divisible by %s %d (and %s is absent)", key("embedding_length"), c.HiddenSize,
			key("attention.head_count"), c.NumHeads, key("attention.key_length"))
	}
	for _, k := range []string{key("attention.value_length"), key("rope.dimension_count")} {
		if f.Has(k) {
			n, err := count(k)
			if err != nil {
				return nil, err
			}
			if n != c.HeadDim {
				return fail("%s %d differs from the head dimension %d (not supported)", k, n, c.HeadDim)
			}
		}
	}
	if c.RMSNormEps, err = f.Float(key("attention.layer_norm_rms_epsilon")); err != nil {
		return nil, err
	}
	c.RopeTheta = 10000
	if f.Has(key("rope.freq_base")) {
		if c.RopeTheta, err = f.Float(key("rope.freq_base")); err != nil {
			return nil, err
		}
	}
	if f.Has(key("rope.scaling.type")) {
		typ, err := f.String(key("rope.scaling.type"))
		if err != nil {
			return nil, err
		}
		if typ != "none" {
			return fail("%s %q is not supported (only none, or Llama 3's rope_freqs.weight)", key("rope.scaling.type"), typ)
		}
	}

	embd, ok := f.Tensor("token_embd.weight")
	if !ok || len(embd.Dims) != 2 {
		return fail("no 2-dimensional tensor token_embd.weight")
	}
	if embd.Dims[1] > maxVocab {
		return fail("token_embd.weight has %d rows, more than the supported vocabulary %d", embd.Dims[1], maxVocab)
	}
	c.VocabSize = int(embd.Dims[1])
	if f.Has(key("vocab_size")) {
		n, err := count(key("vocab_size"))
		if err != nil {
			return nil, err
		}
		if n != c.VocabSize {
			return fail("%s %d differs from the %d rows of token_embd.weight", key("vocab_size"), n, c.VocabSize)
		}
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOutput
	if arch == GGUFArchLlama {
		_, c.QKVBias = f.Tensor("blk.0.attn_q.bias")
		_, c.OBias = f.Tensor("blk.0.attn_output.bias")
	}

	if f.Has("tokenizer.ggml.bos_token_id") {
		if c.BOSTokenID, err = count("tokenizer.ggml.bos_token_id"); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"} {
		if !f.Has(k) {
			continue
		}
		id, err := count(k)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(c.EOSTokenIDs, id) {
			c.EOSTokenIDs = append(c.EOSTokenIDs, id)
		}
	}
	if t, ok := f.Tensor("rope_freqs.weight"); ok {
		if c.RopeScaling, err = llama3FromRopeFreqs(f, t, c); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", f.Path, err)
	}
	return c, nil
}

// llama3FromRopeFreqs recovers Llama 3's RoPE scaling from the per-frequency
// divisors llama.cpp's converter stores as rope_freqs.weight (1 for high
// frequencies, the factor for low ones, a smooth blend between): the factor
// is the largest divisor, the low and high frequency factors are Llama 3's 1
// and 4, and the original context is {arch}.rope.scaling.original_context_length
// if given, else Llama 3's 8192 if it fits, else the one a blended divisor
// implies. Every divisor must agree with the result.
func llama3FromRopeFreqs(f *gguf.File, t gguf.TensorInfo, c *Config) (*RopeScaling, error) {
	fail := func(format string, args ...any) (*RopeScaling, error) {
		return nil, fmt.Errorf("gguf: %s: tensor rope_freqs.weight: %s", f.Path, fmt.Sprintf(format, args...))
	}
	if t.Type != gguf.F32 || len(t.Dims) != 1 || t.Dims[0] != uint64(c.HeadDim/2) {
		return fail("%s %v, want F32 [%d]", t.Type, t.Dims, c.HeadDim/2)
	}
	div, err := f.Float32s(t)
	if err != nil {
		return nil, err
	}
	factor := 0.0
	for _, x := range div {
		factor = max(factor, float64(x))
	}
	base := kernels.RopeInvFreq(c.RopeTheta, c.HeadDim, nil)
	var origs []int
	if k := c.ModelType + ".rope.scaling.original_context_length"; f.Has(k) {
		n, err := f.Int(k)
		if err != nil {
			return nil, err
		}
		if n <= 0 || n > maxPositions {
			return fail("%s %d is out of range", k, n)
		}
		origs = []int{int(n)}
	} else {
		origs = []int{8192}
		// A blended divisor x at wavelength λ: 1/x = (1−s)/factor + s with
		// s = (orig/λ − 1)/3.
		for i, x := range div {
			if x > 1 && float64(x) < factor {
				s := (1/float64(x) - 1/factor) / (1 - 1/factor)
				origs = append(origs, int(math.Round(2*math.Pi/base[i]*(1+3*s))))
				break
			}
		}
	}
	var mismatch string
	for _, orig := range origs {
		rs := &RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: orig}
		scaled := kernels.RopeInvFreq(c.RopeTheta, c.HeadDim, &kernels.Llama3Scaling{Factor: rs.Factor,
			LowFreqFactor: rs.LowFreqFactor, HighFreqFactor: rs.HighFreqFactor, OriginalMaxPositionEmbeddings: orig})
		mismatch = ""
		for i, x := range div {
			if want := base[i] / scaled[i]; math.Abs(float64(x)-want) > 1e-4*want {
				mismatch = fmt.Sprintf("divisor %d is %v, but Llama 3 scaling with factor %g, low 1, high 4 and original context %d gives %v (other scalings are not supported)",
					i, x, factor, orig, want)
				break
			}
		}
		if mismatch == "" {
			return rs, nil
		}
	}
	return fail("%s", mismatch)
}
