package tokenizer

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// FuzzLoad checks that arbitrary bytes given as tokenizer.json never make
// FromJSON (or using what it returns) panic.
func FuzzLoad(f *testing.F) {
	f.Add(synthByteLevel(patLlama3, false))
	f.Add(synthByteLevel(patGPT2, true))
	f.Add(synthSPM())
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"Whitespace"}}`))
	f.Add([]byte(`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},"decoder":{"type":"Metaspace"}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"Split","pattern":{"String":"b"},"behavior":"MergedWithNext","invert":true}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := FromJSON(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "hello world", " <|eot|> 'll 123 \n\n  x", "\xff\xfeé\u0301"} {
			ids := tk.Encode(s, true)
			_ = tk.Decode(ids)
			_ = tk.Decode([]int{-1, 0, 1, 1 << 30})
		}
		_, _ = tk.ChatPrompt("s", "u")
		_ = tk.VocabSize()
	})
}

var (
	fuzzToksOnce sync.Once
	fuzzToks     []fuzzTok
)

type fuzzTok struct {
	name      string
	tk        *Tokenizer
	byteLevel bool // round trip holds for valid UTF-8
	nfc       bool // round trip holds up to NFC
	spm       bool // round trip holds when no added token is in the text
}

func fuzzTokenizers(t testing.TB) []fuzzTok {
	fuzzToksOnce.Do(func() {
		fuzzToks = []fuzzTok{
			{name: "synth-llama3", tk: mustJSON(t, synthByteLevel(patLlama3, false)), byteLevel: true},
			{name: "synth-gpt2", tk: mustJSON(t, synthByteLevel(patGPT2, true)), byteLevel: true},
			{name: "synth-spm", tk: mustJSON(t, synthSPM()), spm: true},
		}
		if findShared() != "" {
			for _, c := range []fuzzTok{
				{name: llama3Path, byteLevel: true},
				{name: qwen3Path, nfc: true},
				{name: llama2Path, spm: true},
				{name: storyPath, spm: true},
			} {
				c.tk = sharedTokenizer(t, c.name)
				fuzzToks = append(fuzzToks, c)
			}
		}
	})
	return fuzzToks
}

// FuzzEncode checks that Encode never panics, on any string (invalid UTF-8
// included), and that Decode(Encode(s)) == s for valid UTF-8 with
// byte-level tokenizers (up to NFC for Qwen, and for SentencePiece-style
// ones when s holds no added token), also when decoding in a stream.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "hello world", "  Hello\n\n\tthere 123456 'll 'S", "<|eot|>x<|begin|>", "<s>a</s>",
		"\xff\xfe\xc3", "é\u0301\u0323 한국어 ᄀᄀ 🦙", "\r\n \u3000\u0085x", "ſ 'ſ K"} {
		f.Add(s)
	}
	// Load outside the fuzz function: the fuzzing engine treats a single
	// call that runs over 10 s (possible on a loaded machine) as a hang.
	toks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range toks {
			ids := c.tk.Encode(s, false)
			_ = c.tk.Encode(s, true)
			got := c.tk.Decode(ids)
			if !utf8.ValidString(s) {
				continue
			}
			want := s
			switch {
			case c.byteLevel:
			case c.nfc:
				want = nfc(s)
			case c.spm:
				if strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
					continue
				}
			default:
				continue
			}
			if got != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (ids %v)", c.name, s, got, ids)
			}
			sd := c.tk.NewStreamDecoder()
			var b strings.Builder
			for _, id := range ids {
				b.WriteString(sd.Next(id))
			}
			b.WriteString(sd.Flush())
			if b.String() != got {
				t.Fatalf("%s: stream decode %q != Decode %q", c.name, b.String(), got)
			}
		}
	})
}
