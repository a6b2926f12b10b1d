package tokenizer

import (
	"encoding/json"
	"testing"
)

// synthByteLevel returns a small byte-level BPE tokenizer.json in the
// style of Llama 3: the 256 byte characters, a few merges, a Split with
// the given regex and a ByteLevel pre-tokenizer and decoder.
func synthByteLevel(pattern string, mergesAsPairs bool) []byte {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = b
	}
	merges := [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "Ġ"}, {"e", "r"}, {"Ġ", "a"}, {"a", "n"}, {"Ġa", "n"}, {"ĠĠ", "ĠĠ"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}}
	for _, m := range merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = len(vocab)
		}
	}
	var jm any
	if mergesAsPairs {
		jm = merges
	} else {
		var s []string
		for _, m := range merges {
			s = append(s, m[0]+" "+m[1])
		}
		jm = s
	}
	n := len(vocab)
	doc := map[string]any{
		"version": "1.0",
		"added_tokens": []any{
			map[string]any{"id": n, "content": "<|begin|>", "special": true},
			map[string]any{"id": n + 1, "content": "<|eot|>", "special": true},
		},
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<|begin|>": map[string]any{"id": "<|begin|>", "ids": []int{n}, "tokens": []string{"<|begin|>"}}}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": jm, "ignore_merges": false, "byte_fallback": false},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// synthSPM returns a small SentencePiece-style tokenizer.json (Llama 2
// layout: Prepend/Replace normalizer, byte_fallback, Replace/ByteFallback/
// Fuse/Strip decoder).
func synthSPM() []byte {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := 0; b < 256; b++ {
		vocab[fmtByte(b)] = 3 + b
	}
	for _, s := range []string{"▁", "t", "h", "e", "a", "n", "d", "o", "w", "r", "l", "i", "s"} {
		vocab[s] = len(vocab)
	}
	merges := [][2]string{{"▁", "t"}, {"h", "e"}, {"▁t", "he"}, {"a", "n"}, {"an", "d"}, {"▁", "and"}, {"o", "r"}, {"w", "or"}, {"l", "d"}, {"wor", "ld"}, {"▁", "world"}}
	for _, m := range merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = len(vocab)
		}
	}
	doc := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true},
			map[string]any{"id": 1, "content": "<s>", "special": true},
			map[string]any{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}}}},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": merges, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

func fmtByte(b int) string {
	const hex = "0123456789ABCDEF"
	return "<0x" + string(hex[b>>4]) + string(hex[b&15]) + ">"
}

func mustJSON(t testing.TB, data []byte) *Tokenizer {
	t.Helper()
	tk, err := FromJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}
