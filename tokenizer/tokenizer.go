// Package tokenizer loads Hugging Face tokenizer.json files and encodes text
// to token ids and decodes ids back to text, in pure Go.
//
// It supports the BPE model (byte-level or SentencePiece style with
// byte_fallback) and the normalizers, pre-tokenizers, post-processors and
// decoders used by Llama 2, Llama 3, Mistral, Qwen2/Qwen3 and TinyStories
// models. Results agree with the Hugging Face tokenizers library. A
// component that is not supported makes loading fail with an error naming
// it.
//
// A Tokenizer is safe for concurrent use by several goroutines.
package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Tokenizer encodes text to token ids and decodes ids to text. Create one
// with Load, LoadDir or FromJSON.
type Tokenizer struct {
	model     *bpeModel
	norm      normalizer   // nil when there is none
	pre       preTokenizer // nil when there is none
	fast      *fastPre     // non-nil when the pre-tokenizer has a fast path
	lazyBytes bool         // pieces are raw bytes; the model maps them byte-level
	// metaSplit: without a pre-tokenizer, words may be cut before each
	// "▁" that follows another character, because no vocabulary token
	// holds such a pair, so no merge can cross the cut (SentencePiece
	// style vocabularies). This enables the word cache.
	metaSplit bool
	added     *addedMatcher
	addedNorm *addedMatcher // added tokens matched after normalization

	prefix, suffix []int // post-processor template around the sequence

	idToToken []string // every id, added tokens included ("" when unused)
	special   []bool   // special[id]: the id is a special added token
	tokenIDs  map[string]int

	bos, eos int
	// configBOS: tokenizer_config.json asks for a BOS that the
	// post-processor does not add.
	configBOS, configEOS bool

	dec decoderSpec

	pool sync.Pool // *encState
}

// Load reads a tokenizer.json file (gzip-compressed when the name ends in
// ".gz") and returns its Tokenizer. If a tokenizer_config.json file lies
// next to it, it is read too, as by LoadDir.
func Load(path string) (*Tokenizer, error) {
	data, err := readMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if cfg, err := os.ReadFile(cfgPath); err == nil {
		if err := t.applyConfig(cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	}
	return t, nil
}

// LoadDir reads dir/tokenizer.json (or dir/tokenizer.json.gz) and, when
// present, dir/tokenizer_config.json, which names the BOS and EOS tokens
// and says whether a BOS is added when encoding with special tokens.
func LoadDir(dir string) (*Tokenizer, error) {
	p := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		if _, err2 := os.Stat(p + ".gz"); err2 == nil {
			p += ".gz"
		}
	}
	return Load(p)
}

func readMaybeGzip(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	}
	return data, nil
}

// FromJSON builds a Tokenizer from the contents of a tokenizer.json file.
// Without a tokenizer_config.json, BOS is the first special token of a
// TemplateProcessing post-processor (or a token named "<s>" or
// "<|begin_of_text|>") and EOS a token named "</s>", "<|end_of_text|>" or
// "<|endoftext|>".
func FromJSON(data []byte) (*Tokenizer, error) {
	t, err := build(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return t, nil
}

// applyConfig reads tokenizer_config.json.
func (t *Tokenizer) applyConfig(data []byte) error {
	var cfg struct {
		BOS         json.RawMessage `json:"bos_token"`
		EOS         json.RawMessage `json:"eos_token"`
		AddBOSToken *bool           `json:"add_bos_token"`
		AddEOSToken *bool           `json:"add_eos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	name := func(raw json.RawMessage) (string, bool) {
		if len(raw) == 0 || string(raw) == "null" {
			return "", false
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		var o struct {
			Content string `json:"content"`
		}
		if json.Unmarshal(raw, &o) == nil && o.Content != "" {
			return o.Content, true
		}
		return "", false
	}
	bosNamed := false
	if s, ok := name(cfg.BOS); ok {
		if id, ok := t.tokenIDs[s]; ok {
			t.bos = id
			bosNamed = true
		}
	} else if len(cfg.BOS) != 0 {
		// bos_token: null means the model has no BOS.
		if len(t.prefix) == 0 {
			t.bos = -1
		}
	}
	if s, ok := name(cfg.EOS); ok {
		if id, ok := t.tokenIDs[s]; ok {
			t.eos = id
		}
	}
	// When the post-processor adds no BOS, follow add_bos_token; when that
	// is absent but a BOS is named (Llama 3's tokenizer.json from some
	// converters lacks its TemplateProcessing), add it as Meta's does.
	if !t.postAdds(t.bos) && t.bos >= 0 {
		if cfg.AddBOSToken != nil {
			t.configBOS = *cfg.AddBOSToken
		} else {
			t.configBOS = bosNamed
		}
	}
	if cfg.AddEOSToken != nil && *cfg.AddEOSToken && t.eos >= 0 && !containsInt(t.suffix, t.eos) {
		t.configEOS = true
	}
	return nil
}

func (t *Tokenizer) postAdds(id int) bool {
	return id >= 0 && containsInt(t.prefix, id)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// BOS returns the beginning-of-sequence token id, or -1 when there is none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence token id, or -1 when there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// VocabSize returns the number of token ids (one more than the largest id),
// added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenID returns the id of a token given as it is written in the
// vocabulary (for byte-level models "Ġthe", not " the"), or -1.
func (t *Tokenizer) TokenID(token string) int {
	if id, ok := t.tokenIDs[token]; ok {
		return id
	}
	return -1
}

// Token returns the vocabulary string of id, or "" when id is out of range.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idToToken) {
		return ""
	}
	return t.idToToken[id]
}

// IsSpecial reports whether id is a special added token (such as
// "<|eot_id|>" or "</s>").
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// SpecialTokens returns the contents of all special added tokens, in id
// order.
func (t *Tokenizer) SpecialTokens() []string {
	var out []string
	for id, s := range t.special {
		if s {
			out = append(out, t.idToToken[id])
		}
	}
	return out
}

// AddsBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddsBOS() bool {
	return t.configBOS || t.postAdds(t.bos)
}

// Encode returns the token ids of text. Added and special tokens written in
// the text (for example "<|eot_id|>") are encoded as their ids. With
// addSpecial, the post-processor's special tokens are added (BOS for
// Llama-family models); a BOS is never doubled when text already starts
// with the BOS token.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	st := t.getState()
	defer t.pool.Put(st)
	out := make([]int, 0, len(text)/3+4)
	if addSpecial {
		if t.configBOS {
			out = append(out, t.bos)
		}
		out = append(out, t.prefix...)
	}
	start := len(out)
	out = t.encodeText(st, out, text)
	if addSpecial {
		// Avoid BOS BOS when text starts with the BOS token itself.
		if t.bos >= 0 && start > 0 && len(out) > start && out[start] == t.bos && out[start-1] == t.bos {
			out = append(out[:start-1], out[start:]...)
		}
		out = append(out, t.suffix...)
		if t.configEOS {
			out = append(out, t.eos)
		}
	}
	return out
}

// encodeText encodes text without post-processing.
func (t *Tokenizer) encodeText(st *encState, out []int, text string) []int {
	pos := 0
	for pos <= len(text) {
		ms, me, id := t.added.next(text, pos)
		end := ms
		if id < 0 {
			end = len(text)
		}
		if end > pos {
			out = t.encodeSegment(st, out, text[pos:end], pos == 0)
		}
		if id < 0 {
			break
		}
		out = append(out, id)
		pos = me
		if pos == len(text) {
			break
		}
	}
	return out
}

// encodeSegment normalizes, pre-tokenizes and encodes a piece of text that
// contains no (non-normalized) added token.
func (t *Tokenizer) encodeSegment(st *encState, out []int, seg string, first bool) []int {
	if t.norm != nil {
		seg = t.norm.normalize(seg)
	}
	if t.addedNorm == nil {
		return t.encodeNormalized(st, out, seg, first)
	}
	pos := 0
	for pos < len(seg) {
		ms, me, id := t.addedNorm.next(seg, pos)
		end := ms
		if id < 0 {
			end = len(seg)
		}
		if end > pos {
			out = t.encodeNormalized(st, out, seg[pos:end], first && pos == 0)
		}
		if id < 0 {
			break
		}
		out = append(out, id)
		pos = me
	}
	return out
}

func (t *Tokenizer) encodeNormalized(st *encState, out []int, seg string, first bool) []int {
	if seg == "" {
		return out
	}
	if t.fast != nil {
		return t.fast.encode(t, st, out, seg)
	}
	if t.pre == nil {
		if !t.metaSplit {
			return t.model.encodeWord(st, out, seg, t.lazyBytes)
		}
		for i := 0; i < len(seg); {
			j := nextMetaCut(seg, i)
			out = t.model.encodeWord(st, out, seg[i:j], false)
			i = j
		}
		return out
	}
	st.pieces = t.pre.split(st.pieces[:0], seg, first)
	for _, p := range st.pieces {
		out = t.model.encodeWord(st, out, p, t.lazyBytes)
	}
	clear(st.pieces) // do not keep the text alive in the pool
	return out
}

const metaspace = "\u2581"

// nextMetaCut returns the first k > i where s[k:] starts with "▁" and the
// character before it is not "▁", or len(s).
func nextMetaCut(s string, i int) int {
	k := i + 1
	for k < len(s) {
		n := strings.Index(s[k:], metaspace)
		if n < 0 {
			return len(s)
		}
		k += n
		if k-len(metaspace) < i || s[k-len(metaspace):k] != metaspace {
			return k
		}
		k += len(metaspace)
	}
	return len(s)
}

// canMetaSplit reports whether no vocabulary token has a "▁" right after
// another character.
func canMetaSplit(vocab map[string]int32) bool {
	seen := false
	for tok := range vocab {
		for k := 1; k < len(tok); k++ {
			n := strings.Index(tok[k:], metaspace)
			if n < 0 {
				break
			}
			k += n
			seen = true
			if tok[:k] != "" && !strings.HasSuffix(tok[:k], metaspace) {
				return false
			}
			k += len(metaspace) - 1
		}
		if strings.HasPrefix(tok, metaspace) {
			seen = true
		}
	}
	return seen
}

func (t *Tokenizer) getState() *encState {
	if st, ok := t.pool.Get().(*encState); ok {
		return st
	}
	return newEncState()
}

// errUnsupported formats the error for an unsupported component.
func errUnsupported(kind, typ string) error {
	return fmt.Errorf("unsupported %s type %q", kind, typ)
}

var errNoChat = errors.New("tokenizer: the model has no known chat format (needs Llama 3 or ChatML special tokens)")
