package tokenizer

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ggufwrite"
	"github.com/shareprefill/shareprefill/model/gguf"
)

// readGGUF parses GGUF bytes held in memory.
func readGGUF(t testing.TB, data []byte) *gguf.File {
	t.Helper()
	f, err := gguf.Read("test.gguf", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ggufFromJSON converts a tokenizer.json (+ tokenizer_config.json next to
// it) to GGUF metadata the way llama.cpp's converter does and builds the
// tokenizer from that metadata.
func ggufFromJSON(t testing.TB, path, pre string) *Tokenizer {
	t.Helper()
	data, err := readMaybeGzip(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "tokenizer_config.json"))
	var w ggufwrite.Writer
	w.Add("general.architecture", "llama")
	if err := w.AddTokenizer(data, cfg, 0, pre); err != nil {
		t.Fatal(err)
	}
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tk, err := FromGGUF(readGGUF(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestGGUFLlamaCppVectors: a GGUF made from each real tokenizer encodes
// llama.cpp's test strings to the ids Hugging Face gives, and decodes them
// back.
func TestGGUFLlamaCppVectors(t *testing.T) {
	dir := sharedDir(t)
	for _, tc := range []struct{ vocab, tok, pre string }{
		{"llama-bpe", llama3Path, "llama-bpe"},
		{"qwen2", qwen3Path, "qwen2"},
		{"llama-spm", llama2Path, ""},
	} {
		t.Run(tc.vocab, func(t *testing.T) {
			tk := ggufFromJSON(t, filepath.Join(dir, tc.tok), tc.pre)
			checkVectors(t, tk, dir, tc.vocab)
			// Special tokens, BOS and EOS as with tokenizer.json.
			ref := sharedTokenizer(t, tc.tok)
			if tk.BOS() != ref.BOS() || tk.EOS() != ref.EOS() || tk.AddsBOS() != ref.AddsBOS() {
				t.Errorf("BOS %d EOS %d adds BOS %v; tokenizer.json: %d %d %v", tk.BOS(), tk.EOS(), tk.AddsBOS(), ref.BOS(), ref.EOS(), ref.AddsBOS())
			}
			if !slices.Equal(tk.SpecialTokens(), ref.SpecialTokens()) {
				t.Errorf("special tokens differ: %d vs %d", len(tk.SpecialTokens()), len(ref.SpecialTokens()))
			}
			text := corpusPrefix(t, "austen/emma.txt", 64<<10) + "<|im_start|>user\n<|eot_id|>"
			if a, b := tk.Encode(text, true), ref.Encode(text, true); !slices.Equal(a, b) {
				t.Errorf("Emma: %d ids from the GGUF, %d from tokenizer.json", len(a), len(b))
			}
		})
	}
}

// storiesGGUF is the stories260K file that llama.cpp's gguf-py wrote, with
// the SentencePiece pieces, scores and types of tok512.model.
var storiesGGUF = filepath.Join("..", "model", "testdata", "stories260k-q8_0.gguf")

// storiesGGUFTokenizer builds the tokenizer of storiesGGUF.
func storiesGGUFTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tk, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestGGUFSentencePieceMerges: the merges derived from real SentencePiece
// scores are exactly those of the Hugging Face tokenizer.json converted from
// the same model, so both tokenize alike.
func TestGGUFSentencePieceMerges(t *testing.T) {
	tk := storiesGGUFTokenizer(t)
	ref, err := Load(filepath.Join("..", "model", "stories260k", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tk.model.merges) != 165 || len(ref.model.merges) != 165 {
		t.Fatalf("%d merges from the scores, %d in tokenizer.json; want 165", len(tk.model.merges), len(ref.model.merges))
	}
	for pair, v := range ref.model.merges {
		if got, ok := tk.model.merges[pair]; !ok || got != v {
			t.Fatalf("merge %s %s: rank/id %x from the GGUF, %x in tokenizer.json", ref.idToToken[pair>>32], ref.idToToken[uint32(pair)], got, v)
		}
	}
	if tk.BOS() != 1 || tk.EOS() != 2 || !tk.AddsBOS() || tk.VocabSize() != 512 {
		t.Errorf("BOS %d EOS %d adds BOS %v vocab %d", tk.BOS(), tk.EOS(), tk.AddsBOS(), tk.VocabSize())
	}
	text := "Once upon a time, there was a little girl named Lily. 🦙 <0x41> ½\n\nx  y"
	if a, b := tk.Encode(text, true), ref.Encode(text, true); !slices.Equal(a, b) {
		t.Errorf("Encode:\n gguf %v\n json %v", a, b)
	}
	if got := tk.Decode(tk.Encode(text, false)); got != text {
		t.Errorf("Decode = %q", got)
	}
}

// TestGGUFTok512Cases runs the 55 reference cases of tok512 on the
// tokenizer of the stories260K GGUF.
func TestGGUFTok512Cases(t *testing.T) {
	cases := tok512Cases(t)
	tk := storiesGGUFTokenizer(t)
	ref := sharedTokenizer(t, storyPath)
	for i, c := range cases {
		got := tk.Encode(c.Text, false)
		if !slices.Equal(got, c.IDs) && !(len(got) == 0 && len(c.IDs) == 0) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, c.Text, got, c.IDs)
		}
		if !slices.Equal(tk.Encode(c.Text, true), ref.Encode(c.Text, true)) {
			t.Errorf("case %d: Encode with BOS differs from tokenizer.json", i)
		}
	}
}

func TestGGUFErrors(t *testing.T) {
	base := func() *ggufwrite.Writer {
		var w ggufwrite.Writer
		w.Add("tokenizer.ggml.tokens", []string{"a", "b", "ab"})
		return &w
	}
	for _, tc := range []struct {
		name string
		add  func(w *ggufwrite.Writer)
		want string
	}{
		{"no model", func(w *ggufwrite.Writer) {}, "missing metadata key tokenizer.ggml.model"},
		{"none", func(w *ggufwrite.Writer) { w.Add("tokenizer.ggml.model", "none") }, `the file has no tokenizer (tokenizer.ggml.model "none")`},
		{"bert", func(w *ggufwrite.Writer) { w.Add("tokenizer.ggml.model", "bert") }, `tokenizer.ggml.model "bert" is not supported`},
		{"pre", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "gpt2")
			w.Add("tokenizer.ggml.pre", "deepseek-llm")
			w.Add("tokenizer.ggml.merges", []string{"a b"})
		}, `tokenizer.ggml.pre "deepseek-llm" is not supported`},
		{"no merges", func(w *ggufwrite.Writer) { w.Add("tokenizer.ggml.model", "gpt2") }, "gpt2 needs tokenizer.ggml.merges"},
		{"bad merge", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "gpt2")
			w.Add("tokenizer.ggml.merges", []string{"ab"})
		}, `merge 0 "ab" has no space`},
		{"merge token", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "gpt2")
			w.Add("tokenizer.ggml.merges", []string{"a c"})
		}, `uses a token not in the vocabulary`},
		{"no scores", func(w *ggufwrite.Writer) { w.Add("tokenizer.ggml.model", "llama") }, "llama needs tokenizer.ggml.scores"},
		{"scores length", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "llama")
			w.Add("tokenizer.ggml.scores", []float32{1})
		}, "tokenizer.ggml.scores must be an array of 3 floats"},
		{"types", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "llama")
			w.Add("tokenizer.ggml.token_type", []string{"x", "y", "z"})
		}, "tokenizer.ggml.token_type must be an array of 3 integers"},
		{"bos", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "llama")
			w.Add("tokenizer.ggml.bos_token_id", uint32(3))
		}, "tokenizer.ggml.bos_token_id 3 is outside the 3 tokens"},
		{"add_bos type", func(w *ggufwrite.Writer) {
			w.Add("tokenizer.ggml.model", "llama")
			w.Add("tokenizer.ggml.scores", []float32{0, 0, 0})
			w.Add("tokenizer.ggml.add_bos_token", uint8(1))
		}, "tokenizer.ggml.add_bos_token has type uint8, want bool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := base()
			tc.add(w)
			b, err := w.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			_, err = FromGGUF(readGGUF(t, b))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test.gguf") {
				t.Fatalf("FromGGUF: %v, want an error naming the file and containing %q", err, tc.want)
			}
		})
	}
	var w ggufwrite.Writer
	w.Add("tokenizer.ggml.model", "llama")
	b, _ := w.Bytes()
	if _, err := FromGGUF(readGGUF(t, b)); err == nil || !strings.Contains(err.Error(), "tokenizer.ggml.tokens is missing") {
		t.Errorf("no tokens: %v", err)
	}
}
