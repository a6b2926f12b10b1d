package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/shareprefill/shareprefill/model/gguf"
)

// GGUF token types (tokenizer.ggml.token_type), as in llama.cpp and
// SentencePiece; the others (unused 5, byte 6) need no special handling.
const (
	ggufNormal      = 1
	ggufUnknown     = 2
	ggufControl     = 3
	ggufUserDefined = 4
)

// maxGGUFTokens bounds tokenizer.ggml.tokens.
const maxGGUFTokens = 1 << 24

// GGUF pre-tokenizer regular expressions (tokenizer.ggml.pre), those of the
// models' Hugging Face tokenizer.json files.
const (
	llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Regex  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// FromGGUF builds the tokenizer stored in the metadata of a GGUF file, so
// that a model needs no tokenizer.json beside it. Two tokenizer.ggml.model
// kinds are supported:
//
//   - "llama": a SentencePiece BPE vocabulary (tokens, scores, token_type),
//     encoded as Hugging Face's LlamaTokenizerFast does: spaces become "▁",
//     a "▁" is prepended unless tokenizer.ggml.add_space_prefix is false,
//     the merges are those Hugging Face derives from the scores (every split
//     of a token into two tokens, ranked by the merged token's score), and
//     unknown bytes fall back to the <0xXX> tokens.
//   - "gpt2": a byte-level BPE (tokens, merges, token_type) with the
//     pre-tokenizer named by tokenizer.ggml.pre: "llama-bpe" (also "llama3",
//     "llama-v3": Llama 3), "qwen2" (also "deepseek-r1-qwen") or
//     "default"/"gpt-2".
//
// Tokens of type control (and the SentencePiece unknown token) are special
// added tokens; user-defined ones are added tokens. BOS and EOS are
// tokenizer.ggml.bos_token_id and eos_token_id; tokenizer.ggml.add_bos_token
// and add_eos_token say whether Encode adds them (by default BOS is added for
// "llama" and "llama-bpe", EOS never).
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	t, err := fromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// ggufVocab is the tokenizer metadata of a GGUF file.
type ggufVocab struct {
	model, pre string
	tokens     []string
	types      []int64
	scores     []float64
	merges     []string
	bos, eos   int
}

func readGGUFVocab(f *gguf.File) (*ggufVocab, error) {
	v := &ggufVocab{bos: -1, eos: -1, pre: "default"}
	var err error
	if v.model, err = f.String("tokenizer.ggml.model"); err != nil {
		return nil, err
	}
	if f.Has("tokenizer.ggml.pre") {
		if v.pre, err = f.String("tokenizer.ggml.pre"); err != nil {
			return nil, err
		}
	}
	tv, _ := f.Lookup("tokenizer.ggml.tokens")
	var ok bool
	if v.tokens, ok = tv.Strings(); !ok {
		return nil, ggufErr(f, "metadata key tokenizer.ggml.tokens is missing or not an array of strings")
	}
	if len(v.tokens) == 0 || len(v.tokens) > maxGGUFTokens {
		return nil, ggufErr(f, "tokenizer.ggml.tokens has %d tokens, want 1 … %d", len(v.tokens), maxGGUFTokens)
	}
	if tv, ok := f.Lookup("tokenizer.ggml.token_type"); ok {
		if v.types, ok = tv.Ints(); !ok || len(v.types) != len(v.tokens) {
			return nil, ggufErr(f, "tokenizer.ggml.token_type must be an array of %d integers (one per token), got %s", len(v.tokens), tv)
		}
	}
	if sv, ok := f.Lookup("tokenizer.ggml.scores"); ok {
		if v.scores, ok = sv.Floats(); !ok || len(v.scores) != len(v.tokens) {
			return nil, ggufErr(f, "tokenizer.ggml.scores must be an array of %d floats (one per token), got %s", len(v.tokens), sv)
		}
	}
	if mv, ok := f.Lookup("tokenizer.ggml.merges"); ok {
		if v.merges, ok = mv.Strings(); !ok {
			return nil, ggufErr(f, "tokenizer.ggml.merges must be an array of strings, got %s", mv)
		}
	}
	for _, s := range []struct {
		key string
		dst *int
	}{{"tokenizer.ggml.bos_token_id", &v.bos}, {"tokenizer.ggml.eos_token_id", &v.eos}} {
		if !f.Has(s.key) {
			continue
		}
		id, err := f.Int(s.key)
		if err != nil {
			return nil, err
		}
		if id < 0 || id >= int64(len(v.tokens)) {
			return nil, ggufErr(f, "%s %d is outside the %d tokens", s.key, id, len(v.tokens))
		}
		*s.dst = int(id)
	}
	return v, nil
}

// typeOf returns the token type of id (normal when the file has none).
func (v *ggufVocab) typeOf(id int) int64 {
	if v.types == nil {
		return ggufNormal
	}
	return v.types[id]
}

func fromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := readGGUFVocab(f)
	if err != nil {
		return nil, err
	}
	boolKey := func(key string, def bool) (bool, error) {
		if !f.Has(key) {
			return def, nil
		}
		return f.Bool(key)
	}
	var (
		file   jsonFile
		jm     = jsonModel{Type: "BPE", Vocab: make(map[string]int, len(v.tokens))}
		merges [][2]string
		addBOS bool
	)
	switch v.model {
	case "llama":
		if v.scores == nil {
			return nil, ggufErr(f, "tokenizer.ggml.model llama needs tokenizer.ggml.scores")
		}
		prefix, err := boolKey("tokenizer.ggml.add_space_prefix", true)
		if err != nil {
			return nil, err
		}
		if addBOS, err = boolKey("tokenizer.ggml.add_bos_token", true); err != nil {
			return nil, err
		}
		jm.ByteFallback, jm.FuseUnk = true, true
		for id, tok := range v.tokens {
			jm.Vocab[tok] = id
			if v.typeOf(id) == ggufUnknown && jm.UnkToken == nil {
				jm.UnkToken = &v.tokens[id]
			}
		}
		merges = spmMerges(v.tokens, v.scores, jm.Vocab)
		replace := `{"type":"Replace","pattern":{"String":" "},"content":"▁"}`
		file.Normalizer = json.RawMessage(replace)
		strip := ""
		if prefix {
			file.Normalizer = json.RawMessage(`{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},` + replace + `]}`)
			strip = `,{"type":"Strip","content":" ","start":1,"stop":0}`
		}
		file.Decoder = json.RawMessage(`{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"}` + strip + `]}`)
	case "gpt2":
		if v.merges == nil {
			return nil, ggufErr(f, "tokenizer.ggml.model gpt2 needs tokenizer.ggml.merges")
		}
		regex := ""
		switch v.pre {
		case "llama-bpe", "llama3", "llama-v3":
			regex, jm.IgnoreMerges, addBOS = llama3Regex, true, true
		case "qwen2", "deepseek-r1-qwen":
			regex = qwen2Regex
			file.Normalizer = json.RawMessage(`{"type":"NFC"}`)
		case "default", "gpt-2", "gpt2":
			file.PreTokenizer = json.RawMessage(`{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`)
		default:
			return nil, ggufErr(f, "tokenizer.ggml.pre %q is not supported (supported: llama-bpe, qwen2, default)", v.pre)
		}
		if regex != "" {
			re, err := json.Marshal(regex)
			if err != nil {
				return nil, err
			}
			file.PreTokenizer = json.RawMessage(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` + string(re) +
				`},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}`)
		}
		if addBOS, err = boolKey("tokenizer.ggml.add_bos_token", addBOS); err != nil {
			return nil, err
		}
		file.Decoder = json.RawMessage(`{"type":"ByteLevel"}`)
		for id, tok := range v.tokens {
			if typ := v.typeOf(id); typ != ggufControl && typ != ggufUserDefined {
				jm.Vocab[tok] = id
			}
		}
		merges = make([][2]string, len(v.merges))
		for i, m := range v.merges {
			// As llama.cpp: the first space after the first byte separates
			// the two tokens.
			k := strings.IndexByte(m[min(1, len(m)):], ' ') + min(1, len(m))
			if k < min(1, len(m)) {
				return nil, ggufErr(f, "tokenizer.ggml.merges: merge %d %q has no space", i, m)
			}
			merges[i] = [2]string{m[:k], m[k+1:]}
		}
	case "", "none":
		return nil, ggufErr(f, "the file has no tokenizer (tokenizer.ggml.model %q)", v.model)
	default:
		return nil, ggufErr(f, "tokenizer.ggml.model %q is not supported (supported: llama, gpt2)", v.model)
	}
	for id, tok := range v.tokens {
		typ := v.typeOf(id)
		special := typ == ggufControl || (typ == ggufUnknown && v.model == "llama")
		if special || typ == ggufUserDefined {
			file.AddedTokens = append(file.AddedTokens, jsonAddedToken{ID: id, Content: tok, Special: special})
		}
	}
	t, err := assemble(&file, &jm, merges)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	// Token ids are the GGUF's: an unused id at the end still counts.
	for len(t.idToToken) < len(v.tokens) {
		t.idToToken = append(t.idToToken, "")
		t.special = append(t.special, false)
	}
	addEOS, err := boolKey("tokenizer.ggml.add_eos_token", false)
	if err != nil {
		return nil, err
	}
	t.bos, t.eos = v.bos, v.eos
	t.configBOS = addBOS && t.bos >= 0
	t.configEOS = addEOS && t.eos >= 0
	return t, nil
}

// ggufErr returns an error naming the GGUF file (the accessors of
// gguf.File name it themselves).
func ggufErr(f *gguf.File, format string, args ...any) error {
	return fmt.Errorf("%s: %s", f.Path, fmt.Sprintf(format, args...))
}

// spmMerges derives BPE merges from a SentencePiece vocabulary as Hugging
// Face's converter does: every split of a token into two tokens is a merge,
// the splits of one token ordered by the ids of their left then right
// parts, and all merges ordered by the merged token's score, highest first
// (a stable sort, so ties keep token order).
func spmMerges(tokens []string, scores []float64, vocab map[string]int) [][2]string {
	type merge struct {
		l, r  string
		score float64
		li    int
		ri    int
	}
	var all []merge
	var local []merge
	for id, tok := range tokens {
		if vocab[tok] != id {
			continue // a duplicate token; the vocabulary keeps the last one
		}
		local = local[:0]
		for k := 1; k < len(tok); k++ {
			if !utf8.RuneStart(tok[k]) {
				continue
			}
			l, r := tok[:k], tok[k:]
			li, lok := vocab[l]
			ri, rok := vocab[r]
			if lok && rok {
				local = append(local, merge{l, r, scores[id], li, ri})
			}
		}
		sort.Slice(local, func(i, j int) bool {
			if local[i].li != local[j].li {
				return local[i].li < local[j].li
			}
			return local[i].ri < local[j].ri
		})
		all = append(all, local...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].score > all[j].score })
	out := make([][2]string, len(all))
	for i, m := range all {
		out[i] = [2]string{m.l, m.r}
	}
	return out
}
