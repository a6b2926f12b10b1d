package ggufwrite

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// GGUF token types.
const (
	tokNormal      = int32(1)
	tokUnknown     = int32(2)
	tokControl     = int32(3)
	tokUserDefined = int32(4)
	tokUnused      = int32(5)
	tokByte        = int32(6)
)

var byteToken = regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)

// AddTokenizer adds the tokenizer.ggml.* metadata of a Hugging Face
// tokenizer.json (and, when not empty, tokenizer_config.json) as llama.cpp's
// converter writes it. vocabSize pads the token list with unused "[PADn]"
// tokens (0: no padding).
//
// A BPE with byte_fallback (a SentencePiece vocabulary such as Llama 2's)
// becomes model "llama": the tokens in id order, their types (byte,
// unknown, control for special added tokens, user-defined for the other
// added tokens, normal), add_space_prefix when the normalizer prepends "▁",
// and scores. tokenizer.json has no SentencePiece scores, so each token
// made by a merge scores minus the rank of its first merge and every other
// token 0: the order of the merged tokens, which is all the scores decide,
// is the order of the merges. Any other BPE becomes model "gpt2" with the
// merges and pre-tokenizer pre (such as "llama-bpe" or "qwen2").
func (w *Writer) AddTokenizer(tokenizerJSON, configJSON []byte, vocabSize int, pre string) error {
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Normalizer json.RawMessage `json:"normalizer"`
		Model      struct {
			Type         string          `json:"type"`
			ByteFallback bool            `json:"byte_fallback"`
			UnkToken     *string         `json:"unk_token"`
			Vocab        map[string]int  `json:"vocab"`
			Merges       json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizerJSON, &tj); err != nil {
		return fmt.Errorf("ggufwrite: tokenizer.json: %w", err)
	}
	if tj.Model.Type != "BPE" {
		return fmt.Errorf("ggufwrite: tokenizer.json: model %q, want BPE", tj.Model.Type)
	}
	merges, err := mergeStrings(tj.Model.Merges)
	if err != nil {
		return err
	}
	n := vocabSize
	tokens := map[int]string{}
	for tok, id := range tj.Model.Vocab {
		tokens[id] = tok
		n = max(n, id+1)
	}
	added := map[int]bool{} // id → special
	for _, a := range tj.AddedTokens {
		tokens[a.ID] = a.Content
		added[a.ID] = a.Special
		n = max(n, a.ID+1)
	}
	list := make([]string, n)
	types := make([]int32, n)
	for id := range list {
		tok, ok := tokens[id]
		special, isAdded := added[id]
		switch {
		case !ok:
			list[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokUnused
			continue
		case tj.Model.UnkToken != nil && tok == *tj.Model.UnkToken && tj.Model.ByteFallback:
			types[id] = tokUnknown
		case isAdded && special:
			types[id] = tokControl
		case isAdded:
			types[id] = tokUserDefined
		case tj.Model.ByteFallback && byteToken.MatchString(tok):
			types[id] = tokByte
		default:
			types[id] = tokNormal
		}
		list[id] = tok
	}
	if tj.Model.ByteFallback {
		rank := map[string]int{}
		for i, m := range merges {
			a, b, _ := strings.Cut(m, " ")
			if _, seen := rank[a+b]; !seen {
				rank[a+b] = i
			}
		}
		scores := make([]float32, n)
		for id, tok := range list {
			if r, ok := rank[tok]; ok && types[id] == tokNormal {
				scores[id] = -float32(r)
			}
		}
		w.Add("tokenizer.ggml.model", "llama")
		w.Add("tokenizer.ggml.pre", "default")
		w.Add("tokenizer.ggml.tokens", list)
		w.Add("tokenizer.ggml.scores", scores)
		w.Add("tokenizer.ggml.token_type", types)
		w.Add("tokenizer.ggml.add_space_prefix", strings.Contains(string(tj.Normalizer), `"prepend":"▁"`) ||
			strings.Contains(string(tj.Normalizer), `"prepend": "▁"`))
	} else {
		w.Add("tokenizer.ggml.model", "gpt2")
		w.Add("tokenizer.ggml.pre", pre)
		w.Add("tokenizer.ggml.tokens", list)
		w.Add("tokenizer.ggml.token_type", types)
		w.Add("tokenizer.ggml.merges", merges)
	}
	return w.addSpecialIDs(configJSON, list)
}

// addSpecialIDs adds the BOS and EOS ids and add_bos_token/add_eos_token
// of a tokenizer_config.json.
func (w *Writer) addSpecialIDs(configJSON []byte, tokens []string) error {
	if len(configJSON) == 0 {
		return nil
	}
	var cfg struct {
		BOS    json.RawMessage `json:"bos_token"`
		EOS    json.RawMessage `json:"eos_token"`
		AddBOS *bool           `json:"add_bos_token"`
		AddEOS *bool           `json:"add_eos_token"`
	}
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return fmt.Errorf("ggufwrite: tokenizer_config.json: %w", err)
	}
	id := func(raw json.RawMessage) (uint32, bool) {
		var name string
		if json.Unmarshal(raw, &name) != nil {
			var o struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(raw, &o) != nil {
				return 0, false
			}
			name = o.Content
		}
		for i, t := range tokens {
			if t == name && name != "" {
				return uint32(i), true
			}
		}
		return 0, false
	}
	bos, hasBOS := id(cfg.BOS)
	if hasBOS {
		w.Add("tokenizer.ggml.bos_token_id", bos)
	}
	if eos, ok := id(cfg.EOS); ok {
		w.Add("tokenizer.ggml.eos_token_id", eos)
	}
	switch {
	case cfg.AddBOS != nil:
		w.Add("tokenizer.ggml.add_bos_token", *cfg.AddBOS)
	case hasBOS:
		w.Add("tokenizer.ggml.add_bos_token", true)
	}
	if cfg.AddEOS != nil {
		w.Add("tokenizer.ggml.add_eos_token", *cfg.AddEOS)
	}
	return nil
}

// mergeStrings returns the merges of tokenizer.json as "a b" strings (they
// are stored either so or as pairs).
func mergeStrings(raw json.RawMessage) ([]string, error) {
	var out []string
	if json.Unmarshal(raw, &out) == nil {
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("ggufwrite: tokenizer.json merges: %w", err)
	}
	out = make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + " " + p[1]
	}
	return out, nil
}
