package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

type jsonFile struct {
	AddedTokens   []jsonAddedToken `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         json.RawMessage  `json:"model"`
}

type jsonAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type jsonPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// jsonComponent holds the fields of every supported normalizer,
// pre-tokenizer, post-processor and decoder.
type jsonComponent struct {
	Type string `json:"type"`

	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Processors    []json.RawMessage `json:"processors"`

	Pattern  *jsonPattern `json:"pattern"`
	Content  string       `json:"content"`
	Behavior string       `json:"behavior"`
	Invert   bool         `json:"invert"`
	Prepend  string       `json:"prepend"`

	// Strip normalizer / decoder
	StripLeft  bool `json:"strip_left"`
	StripRight bool `json:"strip_right"`
	Start      int  `json:"start"`
	Stop       int  `json:"stop"`

	// ByteLevel, Metaspace
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
	Replacement    string `json:"replacement"`
	PrependScheme  string `json:"prepend_scheme"`
	Split          *bool  `json:"split"`

	IndividualDigits bool `json:"individual_digits"`

	// TemplateProcessing
	Single        []json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	// BertProcessing, RobertaProcessing
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
}

type jsonModel struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func parseComponent(raw json.RawMessage) (*jsonComponent, error) {
	var c jsonComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// build parses a tokenizer.json file.
func build(data []byte) (*Tokenizer, error) {
	var f jsonFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if isNull(f.Model) {
		return nil, errors.New("no model")
	}
	var mt struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(f.Model, &mt); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if mt.Type == "" && len(mt.Merges) > 0 {
		mt.Type = "BPE"
	}
	if mt.Type != "BPE" {
		return nil, errUnsupported("model", mt.Type)
	}
	var jm jsonModel
	if err := json.Unmarshal(f.Model, &jm); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	merges, err := parseMerges(jm.Merges)
	if err != nil {
		return nil, err
	}
	return assemble(&f, &jm, merges)
}

// assemble builds a Tokenizer from a parsed tokenizer.json (its BPE model
// in jm, the merges parsed); FromGGUF builds the same structures from GGUF
// metadata.
func assemble(f *jsonFile, jm *jsonModel, merges [][2]string) (*Tokenizer, error) {
	if jm.Dropout != nil && *jm.Dropout != 0 {
		return nil, errors.New("unsupported BPE dropout")
	}

	// Ids must be dense enough to index slices with.
	maxID := -1
	limit := 2*(len(jm.Vocab)+len(f.AddedTokens)) + 1024
	for tok, id := range jm.Vocab {
		if id < 0 || id >= limit {
			return nil, fmt.Errorf("vocab: token %q has bad id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= limit {
			return nil, fmt.Errorf("added_tokens: token %q has bad id %d", a.Content, a.ID)
		}
		maxID = max(maxID, a.ID)
	}
	t := &Tokenizer{bos: -1, eos: -1}
	t.idToToken = make([]string, maxID+1)
	t.special = make([]bool, maxID+1)
	t.tokenIDs = make(map[string]int, len(jm.Vocab)+len(f.AddedTokens))
	for tok, id := range jm.Vocab {
		t.idToToken[id] = tok
		t.tokenIDs[tok] = id
	}
	var err error
	t.model, err = newBPE(jm, merges)
	if err != nil {
		return nil, err
	}

	// Added tokens.
	var raw, normed []addedToken
	for _, a := range f.AddedTokens {
		t.idToToken[a.ID] = a.Content
		t.tokenIDs[a.Content] = a.ID
		if a.Special {
			t.special[a.ID] = true
		}
		if a.Content == "" {
			continue
		}
		at := addedToken{id: a.ID, content: a.Content, lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord}
		// Tokens flagged normalized are matched in the normalized text.
		if a.Normalized {
			normed = append(normed, at)
		} else {
			raw = append(raw, at)
		}
	}
	t.added = newAddedMatcher(raw)
	if len(normed) > 0 {
		t.addedNorm = newAddedMatcher(normed)
	}

	if !isNull(f.Normalizer) {
		if t.norm, err = buildNormalizer(f.Normalizer, 0); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if err := t.buildPre(f.PreTokenizer); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PostProcessor) {
		if err := t.buildPost(f.PostProcessor, 0); err != nil {
			return nil, err
		}
	}
	if err := t.buildDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if t.pre == nil && !t.lazyBytes {
		t.metaSplit = canMetaSplit(t.model.vocab)
	}
	t.guessBOSEOS()
	return t, nil
}

const maxNesting = 16

func (t *Tokenizer) guessBOSEOS() {
	if len(t.prefix) > 0 {
		t.bos = t.prefix[0]
	} else {
		for _, s := range []string{"<s>", "<|begin_of_text|>"} {
			if id, ok := t.tokenIDs[s]; ok {
				t.bos = id
				break
			}
		}
	}
	for _, s := range []string{"</s>", "<|end_of_text|>", "<|endoftext|>"} {
		if id, ok := t.tokenIDs[s]; ok {
			t.eos = id
			break
		}
	}
}

// parseMerges accepts ["a b", ...] and [["a","b"], ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	if len(raw) < 2 || raw[0] != '[' {
		return nil, errors.New("model.merges: not a list")
	}
	inner := bytes.TrimSpace(raw[1:])
	if len(inner) > 0 && inner[0] == '[' {
		var pairs [][]string
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, fmt.Errorf("model.merges: %w", err)
		}
		out := make([][2]string, len(pairs))
		for i, p := range pairs {
			if len(p) != 2 {
				return nil, fmt.Errorf("model.merges: merge %d has %d parts", i+1, len(p))
			}
			out[i] = [2]string{p[0], p[1]}
		}
		return out, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("model.merges: %w", err)
	}
	out := make([][2]string, len(lines))
	for i, l := range lines {
		a, b, ok := strings.Cut(l, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("model.merges: bad merge %d %q", i+1, l)
		}
		out[i] = [2]string{a, b}
	}
	return out, nil
}

func (t *Tokenizer) buildPost(raw json.RawMessage, depth int) error {
	if depth > maxNesting {
		return errors.New("post_processor: nested too deeply")
	}
	c, err := parseComponent(raw)
	if err != nil {
		return fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		for _, p := range c.Processors {
			if err := t.buildPost(p, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		var pre, suf []int
		seen := false
		for _, item := range c.Single {
			var it struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			}
			if err := json.Unmarshal(item, &it); err != nil {
				return fmt.Errorf("post_processor: %w", err)
			}
			switch {
			case it.Sequence != nil:
				if it.Sequence.ID != "A" {
					return fmt.Errorf("post_processor: single template uses sequence %q", it.Sequence.ID)
				}
				seen = true
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("post_processor: unknown special token %q", it.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || id >= len(t.idToToken) {
						return fmt.Errorf("post_processor: bad id %d", id)
					}
				}
				if seen {
					suf = append(suf, st.IDs...)
				} else {
					pre = append(pre, st.IDs...)
				}
			default:
				return errors.New("post_processor: bad template item")
			}
		}
		t.prefix = append(pre, t.prefix...)
		t.suffix = append(t.suffix, suf...)
		return nil
	case "BertProcessing", "RobertaProcessing":
		id := func(pair []json.RawMessage) (int, error) {
			var n int
			if len(pair) != 2 || json.Unmarshal(pair[1], &n) != nil || n < 0 || n >= len(t.idToToken) {
				return 0, fmt.Errorf("post_processor: bad %s token", c.Type)
			}
			return n, nil
		}
		cls, err := id(c.Cls)
		if err != nil {
			return err
		}
		sep, err := id(c.Sep)
		if err != nil {
			return err
		}
		t.prefix = append([]int{cls}, t.prefix...)
		t.suffix = append(t.suffix, sep)
		return nil
	}
	return errUnsupported("post_processor", c.Type)
}

// sortedAdded returns the added tokens sorted by length, longest first.
func sortedAdded(toks []addedToken) []addedToken {
	out := append([]addedToken(nil), toks...)
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].content) > len(out[j].content) })
	return out
}
