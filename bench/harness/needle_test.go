package harness

import (
	"go/build"
	"math"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/shareddata"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// byteIDs is a stand-in tokenizer without merges: byte b is token b+2,
// BOS 0, EOS 1.
func byteIDs(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i]) + 2
	}
	return out
}

func fakeStream(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1000 + i // distinct: a window is identified by its first token
	}
	return s
}

func TestNeedleStratumDepth(t *testing.T) {
	// bench-lm-8k's eval: 20 trials at 0.044, 0.092, …, 0.956.
	for i, want := range map[int]float64{0: 0.044, 1: 0.092, 10: 0.524, 19: 0.956} {
		if d := NeedleStratumDepth(i, 20); math.Abs(d-want) > 1e-12 {
			t.Errorf("stratum %d of 20: %v, want %v", i, d, want)
		}
	}
	if lo, hi := NeedleStratumDepth(0, 100), NeedleStratumDepth(99, 100); math.Abs(lo-0.0248) > 1e-12 || math.Abs(hi-0.9752) > 1e-12 {
		t.Errorf("100 strata: %v … %v", lo, hi)
	}
}

// TestNeedleSampleLayout: BOS, one window of the stream with the needles
// at their token depths, the first query last; the answers and the tokens
// fed after them are the pieces' own tokens; the sample fits n.
func TestNeedleSampleLayout(t *testing.T) {
	stream := fakeStream(20000)
	words := []string{"garden", "silver", "window", "marble", "orange"}
	for _, task := range NeedleTasks {
		for _, n := range []int{600, 4096} {
			for i := 0; i < 5; i++ {
				s, err := BuildNeedleSample(byteIDs, 0, stream, words, task, n, i, 5, 7)
				if err != nil {
					t.Fatal(err)
				}
				pairs, queries := needleShape[task][0], needleShape[task][1]
				if len(s.Words) != pairs || len(s.Keys) != pairs || len(s.Asked) != queries || len(s.answer) != queries {
					t.Fatalf("%s: %d words, %d keys, %d queries", task, len(s.Words), len(s.Keys), len(s.Asked))
				}
				if s.Depth != NeedleStratumDepth(i, 5) || s.Depths[0] != s.Depth || s.Asked[0] != 0 {
					t.Fatalf("%s sample %d: depth %v, depths %v, asked %v", task, i, s.Depth, s.Depths, s.Asked)
				}
				if tot := s.total(); tot > n || tot < n-4 {
					t.Fatalf("%s n=%d: %d tokens in the cache", task, n, tot)
				}
				p := s.prompt
				if p[0] != 0 || p[1] != stream[s.Start] {
					t.Fatalf("%s: prompt starts %v, want BOS then the window at %d", task, p[:2], s.Start)
				}
				// Strip the needles: what is left between BOS and the query is
				// the window itself, and each needle starts at its depth.
				q := byteIDs("\nWhat is the secret key for " + s.Words[0] + "? The secret key for " + s.Words[0] + " is")
				if !slices.Equal(p[len(p)-len(q):], q) {
					t.Fatalf("%s: the prompt does not end with the first query", task)
				}
				body := p[1 : len(p)-len(q)]
				var filler []int
				for k := 0; k < len(body); {
					if body[k] >= 1000 {
						filler = append(filler, body[k])
						k++
						continue
					}
					found := false
					for w := range s.Words {
						nd := byteIDs("\nThe secret key for " + s.Words[w] + " is " + s.Keys[w] + ".\n")
						if k+len(nd) <= len(body) && slices.Equal(body[k:k+len(nd)], nd) {
							if want := int(math.Round(s.Depths[w] * float64(s.Filler))); len(filler) != want {
								t.Fatalf("%s: needle %d after %d filler tokens, want %d", task, w, len(filler), want)
							}
							k += len(nd)
							found = true
							break
						}
					}
					if !found {
						t.Fatalf("%s: stray token %d at %d", task, body[k], k)
					}
				}
				if !slices.Equal(filler, stream[s.Start:s.Start+s.Filler]) {
					t.Fatalf("%s: the filler is not one window of the stream", task)
				}
				for j, a := range s.Asked {
					if want := byteIDs(" " + s.Keys[a]); !slices.Equal(s.answer[j], want) {
						t.Fatalf("%s: answer %d is %v, want the tokens of %q", task, j, s.answer[j], " "+s.Keys[a])
					}
					if j+1 < queries {
						next := "\nWhat is the secret key for " + s.Words[s.Asked[j+1]] + "? The secret key for " + s.Words[s.Asked[j+1]] + " is"
						if !slices.Equal(s.then[j], append(byteIDs("."), byteIDs(next)...)) {
							t.Fatalf("%s: after answer %d come %v", task, j, s.then[j])
						}
					} else if len(s.then[j]) != 0 {
						t.Fatalf("%s: tokens fed after the last answer", task)
					}
				}
				seen := map[int]bool{}
				for _, a := range s.Asked {
					if seen[a] {
						t.Fatalf("%s: needle %d asked twice", task, a)
					}
					seen[a] = true
				}
			}
		}
	}
	// Reproducible per (seed, task, n, index), different across indices.
	a, _ := BuildNeedleSample(byteIDs, 0, stream, words, "secret2", 600, 3, 5, 7)
	b, _ := BuildNeedleSample(byteIDs, 0, stream, words, "secret2", 600, 3, 5, 7)
	c, _ := BuildNeedleSample(byteIDs, 0, stream, words, "secret2", 600, 4, 5, 7)
	if !slices.Equal(a.prompt, b.prompt) || slices.Equal(a.prompt, c.prompt) {
		t.Fatal("samples are not reproducible per index, or indices repeat")
	}
	if _, err := BuildNeedleSample(byteIDs, 0, stream[:100], words, "secret", 600, 0, 1, 1); err == nil {
		t.Fatal("a stream shorter than the filler was accepted")
	}
	if _, err := BuildNeedleSample(byteIDs, 0, stream, words, "secret-multi", 200, 0, 1, 1); err == nil {
		t.Fatal("a length too short for the needles was accepted")
	}
}

// sharedRoot returns the shared root (see internal/shareddata) holding
// bench-lm-8k's held-out set, or skips (fails with
// SHAREPREFILL_REQUIRE_SHARED=1), saying where it looked.
func sharedRoot(t *testing.T) string {
	t.Helper()
	p := shareddata.Path(t, "models/bench-lm-8k/training/holdout.txt")
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(p))))
}

// TestHeldOutBenchLM rebuilds bench-lm-8k's held-out set from the corpora
// and the Go distribution and checks it against the model's eval.json
// (bytes and tokens per source), then builds trained-format samples with
// the real tokenizer: the needle, the query and the answer keep their own
// tokens, and the answer is the key's digits.
func TestHeldOutBenchLM(t *testing.T) {
	root := sharedRoot(t)
	if v := goruntime.Version(); !strings.HasPrefix(v, "go1.26.8") {
		t.Skipf("the held-out Go files are those of go1.26.8; this toolchain is %s", v)
	}
	mdir := filepath.Join(root, "models", "bench-lm-8k")
	h, err := BuildHeldOut(filepath.Join(mdir, "training", "holdout.txt"), filepath.Join(root, "data", "corpora"), build.Default.GOROOT)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadDir(mdir)
	if err != nil {
		t.Fatal(err)
	}
	bytes, toks := map[string]int{}, map[string]int{}
	for _, d := range h.Docs {
		bytes[d.Source] += len(d.Text)
		toks[d.Source] += len(tok.Encode(d.Text, false))
	}
	// eval.json "data": kjv/val, austen/val, go/val.
	want := map[string][2]int{"kjv": {62475, 17270}, "austen": {44448, 12245}, "go": {614501, 233280}}
	for src, w := range want {
		if bytes[src] != w[0] || toks[src] != w[1] {
			t.Errorf("%s: %d bytes, %d tokens; eval.json has %d and %d", src, bytes[src], toks[src], w[0], w[1])
		}
	}
	if len(h.Words) < 6000 || len(h.Words) > 8000 || !slices.Contains(h.Words, "sharp") {
		t.Errorf("%d needle words (the model's list had 7,040, with \"sharp\")", len(h.Words))
	}
	path := filepath.Join(t.TempDir(), "heldout.json")
	if err := WriteHeldOut(path, h); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHeldOut(path)
	if err != nil || len(back.Docs) != len(h.Docs) || back.Docs[5].Text != h.Docs[5].Text {
		t.Fatalf("round trip: %v", err)
	}
	enc := func(s string) []int { return tok.Encode(s, false) }
	stream := h.Stream(enc, tok.BOS(), tok.EOS(), nil, 1)
	goOnly := h.Stream(enc, tok.BOS(), tok.EOS(), func(s string) bool { return s == "go" }, 1)
	if len(stream) != 17270+12245+233280+2*len(h.Docs) || len(goOnly) != 233280+2*63 {
		t.Errorf("streams of %d and %d tokens", len(stream), len(goOnly))
	}
	for _, task := range NeedleTasks {
		s, err := BuildNeedleSample(enc, tok.BOS(), stream, h.Words, task, 4096, 7, 100, 1)
		if err != nil {
			t.Fatal(err)
		}
		for j, a := range s.Asked {
			if got := tok.Decode(s.answer[j]); got != " "+s.Keys[a] {
				t.Errorf("%s: answer %d decodes to %q, want %q", task, j, got, " "+s.Keys[a])
			}
		}
		q := enc("\nWhat is the secret key for " + s.Words[0] + "? The secret key for " + s.Words[0] + " is")
		if !slices.Equal(s.prompt[len(s.prompt)-len(q):], q) || s.prompt[0] != tok.BOS() {
			t.Errorf("%s: the prompt does not end with the query's own tokens", task)
		}
		t.Logf("%s: %d prompt tokens, words %v keys %v, first needle at depth %.3f, decoded tail %q", task, s.Tokens, s.Words, s.Keys, s.Depth, tok.Decode(s.prompt[len(s.prompt)-30:]))
	}
}
