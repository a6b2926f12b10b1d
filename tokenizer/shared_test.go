package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shareprefill/shareprefill/internal/shareddata"
)

// sharedDir returns the shared data folder (the shared root's data/, see
// internal/shareddata) or skips the test, saying where it looked.
func sharedDir(t testing.TB) string {
	t.Helper()
	return filepath.Dir(shareddata.Path(t, "data/tokenizers"))
}

// findShared returns the shared data folder or "".
func findShared() string {
	p, _ := shareddata.Find("data/tokenizers")
	if p == "" {
		return ""
	}
	return filepath.Dir(p)
}

var (
	tokMu    sync.Mutex
	tokCache = map[string]*Tokenizer{}
)

// sharedTokenizer loads (once) a tokenizer from the shared data folder.
func sharedTokenizer(t testing.TB, rel string) *Tokenizer {
	t.Helper()
	dir := sharedDir(t)
	tokMu.Lock()
	defer tokMu.Unlock()
	if tk, ok := tokCache[rel]; ok {
		return tk
	}
	tk, err := Load(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	tokCache[rel] = tk
	return tk
}

const (
	llama3Path = "tokenizers/llama3/tokenizer.json.gz"
	qwen3Path  = "tokenizers/qwen3/tokenizer.json.gz"
	llama2Path = "tokenizers/llama2/tokenizer.json"
	storyPath  = "stories260K-hf/tokenizer.json"
)

// readVectors reads llama.cpp's ggml-vocab-NAME.gguf.{inp,out}: inputs
// separated by "\n__ggml_vocab_test__\n", outputs one line of ids each
// (Hugging Face tokenizers, add_special_tokens=False).
func readVectors(t *testing.T, dir, name string) ([]string, [][]int) {
	t.Helper()
	base := filepath.Join(dir, "tokenizer-vectors", "llama.cpp", "ggml-vocab-"+name+".gguf")
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d inputs but %d outputs", name, len(texts), len(lines))
	}
	ids := make([][]int, len(lines))
	for i, l := range lines {
		ids[i] = []int{}
		for _, f := range strings.Fields(l) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = append(ids[i], n)
		}
	}
	return texts, ids
}

func TestLlamaCppVectors(t *testing.T) {
	dir := sharedDir(t)
	for _, tc := range []struct{ vocab, tok string }{
		{"llama-bpe", llama3Path},
		{"qwen2", qwen3Path},
		{"llama-spm", llama2Path},
	} {
		t.Run(tc.vocab, func(t *testing.T) {
			checkVectors(t, sharedTokenizer(t, tc.tok), dir, tc.vocab)
		})
	}
}

// checkVectors checks that tk encodes llama.cpp's test strings of vocab to
// Hugging Face's ids and decodes them back (but for qwen2, whose NFC
// normalizer changes some strings).
func checkVectors(t *testing.T, tk *Tokenizer, dir, vocab string) {
	t.Helper()
	texts, want := readVectors(t, dir, vocab)
	for i, text := range texts {
		got := tk.Encode(text, false)
		if !slices.Equal(got, want[i]) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, text, got, want[i])
		}
		if dec := tk.Decode(got); dec != text && vocab != "qwen2" {
			t.Errorf("case %d: Decode = %q, want %q", i, dec, text)
		}
	}
}

// tok512Case is a reference encoding of the stories260K tokenizer.
type tok512Case struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

// tok512Cases reads the 55 reference encodings of the shared data.
func tok512Cases(t *testing.T) []tok512Case {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedDir(t), "stories260K-hf", "reference", "tok512_encode_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []tok512Case `json:"cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) != 55 {
		t.Fatalf("%d cases, want 55", len(ref.Cases))
	}
	return ref.Cases
}

func TestTok512Cases(t *testing.T) {
	tk := sharedTokenizer(t, storyPath)
	for i, c := range tok512Cases(t) {
		got := tk.Encode(c.Text, false)
		if !slices.Equal(got, c.IDs) && !(len(got) == 0 && len(c.IDs) == 0) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, c.Text, got, c.IDs)
		}
		withBOS := tk.Encode(c.Text, true)
		if len(withBOS) != len(c.IDs)+1 || withBOS[0] != 1 {
			t.Errorf("case %d: Encode(addSpecial) = %v, want BOS 1 then %v", i, withBOS, c.IDs)
		}
		if dec := tk.Decode(got); dec != c.Text {
			t.Errorf("case %d: Decode = %q, want %q", i, dec, c.Text)
		}
	}
}

// corpusPrefix returns up to n bytes of a corpus file, cut at a line end.
func corpusPrefix(t *testing.T, rel string, n int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedDir(t), "corpora", rel))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > n {
		data = data[:n]
		if k := strings.LastIndexByte(string(data), '\n'); k > 0 {
			data = data[:k+1]
		}
	}
	return string(data)
}

func TestCorpusRoundTrip(t *testing.T) {
	corpora := []struct{ name, rel string }{
		{"kjv", "kjv/kjv.txt"},
		{"austen", "austen/emma.txt"},
		{"tinystories", "tinystories/tinystories_sample.txt"},
	}
	toks := []struct{ name, path string }{
		{"llama3", llama3Path},
		{"qwen3", qwen3Path},
		{"llama2", llama2Path},
		{"stories260K", storyPath},
	}
	const prefix = 300 << 10
	for _, c := range corpora {
		text := corpusPrefix(t, c.rel, prefix)
		for _, tc := range toks {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				tk := sharedTokenizer(t, tc.path)
				ids := tk.Encode(text, false)
				if len(ids) == 0 {
					t.Fatal("no ids")
				}
				if got := tk.Decode(ids); got != text {
					i := 0
					for i < len(got) && i < len(text) && got[i] == text[i] {
						i++
					}
					t.Fatalf("round trip differs at byte %d: got %q want %q", i, clip(got[i:]), clip(text[i:]))
				}
				// Streaming decode gives the same text.
				sd := tk.NewStreamDecoder()
				var b strings.Builder
				for _, id := range ids[:min(len(ids), 20000)] {
					b.WriteString(sd.Next(id))
				}
				b.WriteString(sd.Flush())
				if want := tk.Decode(ids[:min(len(ids), 20000)]); b.String() != want {
					t.Fatalf("stream decode differs from Decode")
				}
				t.Logf("%d bytes -> %d ids", len(text), len(ids))
			})
		}
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}

// TestMetaSplitEquivalence checks that cutting SentencePiece-style words
// before "▁" (done for speed) gives the same ids as one BPE word.
func TestMetaSplitEquivalence(t *testing.T) {
	dir := sharedDir(t)
	tk, err := Load(filepath.Join(dir, llama2Path))
	if err != nil {
		t.Fatal(err)
	}
	if !tk.metaSplit {
		t.Fatal("llama2: metaSplit not enabled")
	}
	text := corpusPrefix(t, "austen/persuasion.txt", 100<<10) + "  double  spaces\n\n\t tab 한국어 🦙 "
	a := tk.Encode(text, true)
	tk.metaSplit = false
	b := tk.Encode(text, true)
	if !slices.Equal(a, b) {
		t.Fatalf("ids differ with and without the cut (%d vs %d ids)", len(a), len(b))
	}
}
