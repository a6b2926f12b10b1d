package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestScanners(t *testing.T) {
	cases := []struct {
		kind scanKind
		in   string
		want []string
	}{
		{scanLlama3, "Hello, y'all! How are you 😁 ?", []string{"Hello", ",", " y", "'all", "!", " How", " are", " you", " 😁", " ?"}},
		{scanLlama3, "I'VE 'Re 'll 'ſ x", []string{"I", "'VE", " '", "Re", " '", "ll", " '", "ſ", " x"}},
		{scanLlama3, "1234567 3.3", []string{"123", "456", "7", " ", "3", ".", "3"}},
		{scanQwen2, "1234 a1", []string{"1", "2", "3", "4", " a", "1"}},
		{scanLlama3, "  Hello\n\n  \tx", []string{" ", " Hello", "\n\n", "  ", "\tx"}},
		{scanLlama3, "a \n b", []string{"a", " \n", " b"}},
		{scanLlama3, "x   ", []string{"x", "   "}},
		{scanLlama3, "!!!\n\nok", []string{"!!!\n\n", "ok"}},
		{scanLlama3, "\u3000x  \u00a0y", []string{"\u3000x", "  ", "\u00a0y"}},
		{scanLlama3, "a\xffb", []string{"a", "\xffb"}},
		{scanGPT2, "Hello world's  123abc !!", []string{"Hello", " world", "'s", " ", " 123", "abc", " !!"}},
		{scanGPT2, "I'VE", []string{"I", "'", "VE"}},
		{scanGPT2, "a \n\n b", []string{"a", " \n\n", " b"}},
	}
	for _, c := range cases {
		var got []string
		for i := 0; i < len(c.in); {
			j := c.kind.scan(c.in, i)
			got = append(got, c.in[i:j])
			i = j
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("scan %d %q:\n got %q\nwant %q", c.kind, c.in, got, c.want)
		}
	}
}

func TestSplitBehaviors(t *testing.T) {
	s := "a-b--c"
	locs := [][2]int{{1, 2}, {3, 4}, {4, 5}}
	cases := []struct {
		beh    int
		invert bool
		want   []string
	}{
		{behIsolated, false, []string{"a", "-", "b", "-", "-", "c"}},
		{behRemoved, false, []string{"a", "b", "c"}},
		{behMergedWithPrevious, false, []string{"a-", "b-", "-", "c"}},
		{behMergedWithNext, false, []string{"a", "-b", "-", "-c"}},
		{behContiguous, false, []string{"a", "-", "b", "--", "c"}},
		{behRemoved, true, []string{"-", "-", "-"}},
	}
	for _, c := range cases {
		got := applyBehavior(nil, s, matchSpans(s, locs), c.beh, c.invert)
		if !slices.Equal(got, c.want) {
			t.Errorf("behavior %d invert %v: got %q want %q", c.beh, c.invert, got, c.want)
		}
	}
}

func TestNFC(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"e\u0301", "\u00e9"},
		{"a\u0323\u0301", "\u1ea1\u0301"},
		{"a\u0301\u0323", "\u1ea1\u0301"},
		{"\u1100\u1161\u11a8", "\uac01"},
		{"\u212b", "\u00c5"},
		{"\u0958", "\u0915\u093c"},
		{"A\u030a\u0301", "\u01fa"},
		{"\u1e9b\u0323", "\u1e9b\u0323"},
		{"\u0301abc", "\u0301abc"},
		{"\ud55c\u11a8", "\ud55c\u11a8"},
		{"q\u0307\u0323", "q\u0323\u0307"},
		{"\xffe\u0301\xfe", "\xff\u00e9\xfe"},
	}
	for _, c := range cases {
		if got := nfc(c.in); got != c.want {
			t.Errorf("nfc(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUnsupportedComponents(t *testing.T) {
	base := `{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}`
	cases := []struct{ json, want string }{
		{base + `,"pre_tokenizer":{"type":"Whitespace"}}`, `tokenizer.json: unsupported pre_tokenizer type "Whitespace"`},
		{base + `,"normalizer":{"type":"NFKD"}}`, `unsupported normalizer type "NFKD"`},
		{base + `,"decoder":{"type":"WordPiece"}}`, `unsupported decoder type "WordPiece"`},
		{base + `,"post_processor":{"type":"Foo"}}`, `unsupported post_processor type "Foo"`},
		{`{"model":{"type":"Unigram","vocab":[]}}`, `unsupported model type "Unigram"`},
		{base + `,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"a(?=b)"},"behavior":"Isolated"}}`, `unsupported pre_tokenizer Split regex`},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, `not in the vocabulary`},
		{`{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}`, `bad id`},
	}
	for _, c := range cases {
		_, err := FromJSON([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromJSON(%s): error %v, want %q", c.json, err, c.want)
		}
	}
}

func TestSynthByteLevel(t *testing.T) {
	a := mustJSON(t, synthByteLevel(patLlama3, false))
	b := mustJSON(t, synthByteLevel(patLlama3, true))
	text := "the world and the  other<|eot|>in 🦙\xff"
	ia, ib := a.Encode(text, false), b.Encode(text, false)
	if !slices.Equal(ia, ib) {
		t.Fatalf("merges as strings %v and as pairs %v differ", ia, ib)
	}
	if got := a.Decode(ia); got != "the world and the  other<|eot|>in 🦙\uFFFD" {
		t.Errorf("Decode = %q", got)
	}
	the := a.TokenID("Ġthe")
	if the < 0 || !slices.Contains(ia, the) {
		t.Errorf("Ġthe (%d) not used in %v", the, ia)
	}
	eot := a.TokenID("<|eot|>")
	if !slices.Contains(ia, eot) || !a.IsSpecial(eot) {
		t.Errorf("<|eot|> (%d) not matched as special in %v", eot, ia)
	}
	withBOS := a.Encode("x", true)
	if len(withBOS) != 2 || withBOS[0] != a.BOS() || a.BOS() != a.TokenID("<|begin|>") {
		t.Errorf("Encode(x, true) = %v, BOS %d", withBOS, a.BOS())
	}
	if got := a.Encode("<|begin|>x", true); !slices.Equal(got, withBOS) {
		t.Errorf("BOS doubled: %v", got)
	}
	// Streaming: the 4 bytes of 🦙 come out only when complete.
	ids := a.Encode("🦙", false)
	if len(ids) != 4 {
		t.Fatalf("🦙 -> %v, want 4 byte tokens", ids)
	}
	sd := a.NewStreamDecoder()
	for i, id := range ids {
		got := sd.Next(id)
		if (i < 3 && got != "") || (i == 3 && got != "🦙") {
			t.Errorf("Next(%d) #%d = %q", id, i, got)
		}
	}
	// An incomplete sequence is flushed as one U+FFFD (maximal subpart).
	sd.Next(ids[0])
	sd.Next(ids[1])
	if got := sd.Flush(); got != "\uFFFD" {
		t.Errorf("Flush = %q", got)
	}
	if a.ChatFormat() != ChatNone {
		t.Error("synthetic tokenizer has a chat format")
	}
	if _, err := a.ChatPrompt("s", "u"); err == nil {
		t.Error("ChatPrompt: no error")
	}
}

func TestSynthSPM(t *testing.T) {
	tk := mustJSON(t, synthSPM())
	cases := []struct {
		in   string
		want []string
	}{
		{"the world", []string{"▁the", "▁world"}},
		{" and", []string{"▁", "▁and"}},
		{"é", []string{"▁", "<0xC3>", "<0xA9>"}},
		{"", nil},
	}
	for _, c := range cases {
		var got []string
		for _, id := range tk.Encode(c.in, false) {
			got = append(got, tk.Token(id))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
		}
		if dec := tk.Decode(tk.Encode(c.in, true)); dec != "<s>"+strings.ReplaceAll(" "+c.in, " ", " ") && c.in != "" {
			// BOS is a special token written as text, then the
			// SentencePiece leading space stays.
			t.Errorf("Decode(Encode(%q, true)) = %q", c.in, dec)
		}
		if dec := tk.Decode(tk.Encode(c.in, false)); dec != c.in {
			t.Errorf("Decode(Encode(%q)) = %q", c.in, dec)
		}
	}
	// Byte fallback tokens that do not form UTF-8 give one U+FFFD each.
	bad := []int{tk.TokenID("<0xC3>"), tk.TokenID("<0xC3>"), tk.TokenID("t")}
	if got := tk.Decode(bad); got != "\uFFFD\uFFFDt" {
		t.Errorf("Decode(bad) = %q", got)
	}
	if tk.BOS() != 1 || tk.EOS() != 2 || !tk.AddsBOS() {
		t.Errorf("BOS %d EOS %d AddsBOS %v", tk.BOS(), tk.EOS(), tk.AddsBOS())
	}
}

func TestRealTokenizers(t *testing.T) {
	dir := sharedDir(t)
	l3 := sharedTokenizer(t, llama3Path)
	q3 := sharedTokenizer(t, qwen3Path)
	l2 := sharedTokenizer(t, llama2Path)
	st, err := LoadDir(filepath.Join(dir, "stories260K-hf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name            string
		tk              *Tokenizer
		bos, eos, vocab int
		addsBOS         bool
		chat            ChatFormat
	}{
		{"llama3", l3, 128000, 128001, 128256, true, ChatLlama3},
		{"qwen3", q3, -1, 151645, 151669, false, ChatML},
		{"llama2", l2, 1, 2, 32000, true, ChatNone},
		{"stories260K", st, 1, 2, 512, true, ChatNone},
	} {
		if c.tk.BOS() != c.bos || c.tk.EOS() != c.eos || c.tk.VocabSize() != c.vocab || c.tk.AddsBOS() != c.addsBOS || c.tk.ChatFormat() != c.chat {
			t.Errorf("%s: BOS %d EOS %d vocab %d AddsBOS %v chat %v", c.name, c.tk.BOS(), c.tk.EOS(), c.tk.VocabSize(), c.tk.AddsBOS(), c.tk.ChatFormat())
		}
	}
	if got := l3.Encode("Hello", true); !slices.Equal(got, []int{128000, 9906}) {
		t.Errorf("llama3 Encode(Hello, true) = %v", got)
	}
	p, err := l3.ChatPrompt("You are terse.", " Hi! ")
	if err != nil {
		t.Fatal(err)
	}
	want := "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	if p != want {
		t.Errorf("llama3 ChatPrompt = %q", p)
	}
	ids := l3.Encode(p, true)
	if !slices.Equal(ids, l3.Encode(p, false)) || ids[0] != 128000 || ids[1] != 128006 || ids[len(ids)-1] != 271 {
		t.Errorf("llama3 chat ids %v", ids)
	}
	if stop := l3.ChatStopIDs(); !slices.Contains(stop, 128009) {
		t.Errorf("llama3 stop ids %v", stop)
	}
	p, err = q3.ChatPrompt("", "Hi")
	if err != nil || p != "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("qwen3 ChatPrompt = %q, %v", p, err)
	}
	if ids := q3.Encode(p, true); ids[0] != 151644 || len(ids) != 9 {
		t.Errorf("qwen3 chat ids %v", ids)
	}
	if _, err := l2.ChatPrompt("", "Hi"); err == nil || !strings.Contains(err.Error(), "no known chat format") {
		t.Errorf("llama2 ChatPrompt error %v", err)
	}
	// Qwen normalizes to NFC.
	if a, b := q3.Encode("e\u0301", false), q3.Encode("\u00e9", false); !slices.Equal(a, b) {
		t.Errorf("qwen3 NFC: %v vs %v", a, b)
	}
	if len(q3.SpecialTokens()) == 0 || q3.Token(151644) != "<|im_start|>" || q3.TokenID("<|im_start|>") != 151644 {
		t.Error("qwen3 special tokens")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(`{"model":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Load of bad JSON: %v", err)
	}
	var v any
	if json.Unmarshal(synthSPM(), &v) != nil {
		t.Fatal("synthSPM is not JSON")
	}
}
