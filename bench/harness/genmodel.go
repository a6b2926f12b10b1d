package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill/model"
)

// Shapes are the configurations `bench gen-model --shape` knows. Layers,
// vocabulary and context can be overridden (GenModel); every other size is
// the real model's.
func Shapes() map[string]model.Config {
	llama3 := model.Config{
		Architecture: model.ArchLlama, HiddenSize: 4096, NumLayers: 32, NumHeads: 32, NumKVHeads: 8, HeadDim: 128,
		IntermediateSize: 14336, VocabSize: 128256, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling: &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
		BOSTokenID:  ByteTokBOS, EOSTokenIDs: []int{ByteTokEOS}, TorchDType: "bfloat16",
	}
	llama32_1b := llama3
	llama32_1b.HiddenSize, llama32_1b.NumLayers, llama32_1b.HeadDim, llama32_1b.IntermediateSize = 2048, 16, 64, 8192
	llama32_1b.TieWordEmbeddings = true
	qwen2_7b := model.Config{
		Architecture: model.ArchQwen2, HiddenSize: 3584, NumLayers: 28, NumHeads: 28, NumKVHeads: 4, HeadDim: 128,
		IntermediateSize: 18944, VocabSize: 152064, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-6, RopeTheta: 1000000,
		QKVBias: true, BOSTokenID: ByteTokBOS, EOSTokenIDs: []int{ByteTokEOS}, TorchDType: "bfloat16",
	}
	// tiny: the attention shape of Llama-3-8B scaled down for tests on a CPU driver.
	tiny := model.Config{
		Architecture: model.ArchLlama, HiddenSize: 64, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 128, VocabSize: 300, MaxPositionEmbeddings: 4096, RMSNormEps: 1e-5, RopeTheta: 500000,
		BOSTokenID: ByteTokBOS, EOSTokenIDs: []int{ByteTokEOS}, TorchDType: "float16",
	}
	// tiny-d128: Llama-3-8B's head size with few heads, small enough for
	// tests of the structured vehicle on a CPU driver.
	tinyD128 := tiny
	tinyD128.HiddenSize, tinyD128.NumHeads, tinyD128.HeadDim, tinyD128.IntermediateSize = 256, 8, 128, 256
	return map[string]model.Config{"llama3-8b": llama3, "llama3.2-1b": llama32_1b, "qwen2-7b": qwen2_7b, "tiny": tiny, "tiny-d128": tinyD128}
}

// ShapeNames lists Shapes() sorted.
func ShapeNames() []string {
	var s []string
	for k := range Shapes() {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// GenModelParams configures GenModel.
type GenModelParams struct {
	// Kind is "random" (the default: random weights) or "structured"
	// (WriteStructuredModel: planted attention structure; vocabulary 258
	// unless Vocab is set, f16, designed for Context tokens).
	Kind    string
	Shape   string
	Layers  int // 0: the shape's
	Vocab   int // 0: the shape's (at least 258 for the byte tokenizer)
	Context int // 0: the shape's max_position_embeddings
	Seed    int64
}

// GeneratedMarker is the file GenModel writes into every directory it
// makes, so that a real model directory is never mistaken for a generated
// one (IsGenerated) and overwritten by accident.
const GeneratedMarker = ".shareprefill-generated"

// IsGenerated reports whether dir holds GeneratedMarker, that is, whether
// GenModel made it.
func IsGenerated(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, GeneratedMarker))
	return err == nil && fi.Mode().IsRegular()
}

// Validate checks p without writing anything: a known shape, no negative
// override, and a vocabulary large enough for the byte tokenizer. Its errors
// name the fields by their `bench gen-model` flags.
func (p GenModelParams) Validate() error {
	cfg, ok := Shapes()[strings.ToLower(p.Shape)]
	if !ok {
		return fmt.Errorf("--shape %q: unknown (known: %s)", p.Shape, strings.Join(ShapeNames(), ", "))
	}
	switch {
	case p.Kind != "" && !strings.EqualFold(p.Kind, "random") && !strings.EqualFold(p.Kind, "structured"):
		return fmt.Errorf("--kind %q: want random or structured", p.Kind)
	case p.Layers < 0:
		return fmt.Errorf("--layers %d: want ≥ 1, or 0 for the shape's %d", p.Layers, cfg.NumLayers)
	case p.Vocab < 0:
		return fmt.Errorf("--vocab %d: want ≥ %d, or 0 for the shape's %d", p.Vocab, ByteTokEOS+1, cfg.VocabSize)
	case p.Vocab > 0 && p.Vocab < ByteTokEOS+1:
		return fmt.Errorf("--vocab %d is too small for the byte tokenizer: want ≥ %d, or 0 for the shape's %d", p.Vocab, ByteTokEOS+1, cfg.VocabSize)
	case p.Context < 0:
		return fmt.Errorf("--context %d: want ≥ 1, or 0 for the shape's %d", p.Context, cfg.MaxPositionEmbeddings)
	}
	return nil
}

// GenModel writes a random-weight checkpoint with a real model's shapes
// (model.WriteRandomCheckpoint) plus a byte-level tokenizer.json, so the
// directory loads with shareprefill.Open, and GeneratedMarker. Speed
// benchmarks only: the weights are random. GenModel writes over whatever dir
// holds; callers check first (IsGenerated).
func GenModel(dir string, p GenModelParams) (*model.Config, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cfg := Shapes()[strings.ToLower(p.Shape)]
	if p.Layers > 0 {
		cfg.NumLayers = p.Layers
	}
	structured := strings.EqualFold(p.Kind, "structured")
	if !structured && p.Kind != "" && !strings.EqualFold(p.Kind, "random") {
		return nil, fmt.Errorf("unknown model kind %q (random, structured)", p.Kind)
	}
	if structured && p.Vocab == 0 {
		cfg.VocabSize = ByteTokEOS + 1
	}
	if p.Vocab > 0 {
		cfg.VocabSize = p.Vocab
	}
	if p.Context > 0 {
		cfg.MaxPositionEmbeddings = p.Context
	}
	var err error
	if structured {
		cfg.TorchDType = "float16"
		_, err = WriteStructuredModel(dir, cfg, cfg.MaxPositionEmbeddings, p.Seed)
	} else {
		err = model.WriteRandomCheckpoint(dir, cfg, p.Seed)
	}
	if err != nil {
		return nil, err
	}
	if err := WriteByteTokenizer(dir); err != nil {
		return nil, err
	}
	marker := "written by shareprefill bench gen-model: random weights, for speed benchmarks only; " +
		"bench gen-model may overwrite this directory\n"
	if err := os.WriteFile(filepath.Join(dir, GeneratedMarker), []byte(marker), 0o644); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Byte tokenizer special ids.
const (
	ByteTokBOS = 256
	ByteTokEOS = 257
)

// WriteByteTokenizer writes tokenizer.json and tokenizer_config.json of a
// byte-level BPE without merges: ids 0..255 are bytes (GPT-2 byte-to-unicode
// alphabet), 256 is <|begin_of_text|> (added at the start) and 257
// <|end_of_text|>.
func WriteByteTokenizer(dir string) error {
	vocab := map[string]int{}
	for b, r := range byteToUnicode() {
		vocab[string(r)] = b
	}
	tok := map[string]any{
		"version": "1.0",
		"added_tokens": []map[string]any{
			{"id": ByteTokBOS, "content": "<|begin_of_text|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
			{"id": ByteTokEOS, "content": "<|end_of_text|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
		},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []string{}},
	}
	b, err := json.MarshalIndent(tok, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		return err
	}
	cfg := `{"add_bos_token": true, "add_eos_token": false, "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "tokenizer_class": "PreTrainedTokenizerFast"}` + "\n"
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644)
}

// byteToUnicode is GPT-2's reversible byte → printable rune map.
func byteToUnicode() [256]rune {
	var m [256]rune
	used := [256]bool{}
	for _, rg := range [][2]int{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := rg[0]; b <= rg[1]; b++ {
			m[b], used[b] = rune(b), true
		}
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !used[b] {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}
