package harness

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// HeldOutFormat is the format tag of a held-out file.
const HeldOutFormat = "shareprefill-heldout/1"

// HeldOutDoc is one held-out document: a whole KJV or Austen chapter or a
// whole Go file.
type HeldOutDoc struct {
	// Source is "kjv", "austen" or "go".
	Source string `json:"source"`
	// Group is the unit that stays together in the stream: the KJV book,
	// the novel or the Go package directory.
	Group string `json:"group"`
	// Name is the document's line in the model's holdout.txt.
	Name string `json:"name"`
	Text string `json:"text"`
}

// HeldOut is a model's held-out text, carried as one JSON file so that the
// device machine, which has neither the corpora nor a Go distribution, can
// run the accuracy suite: the documents the model was never trained on
// (for perplexity and retrieval filler) and the needle words (for the
// trained retrieval format).
type HeldOut struct {
	Format string `json:"format"`
	// ListSHA256 is the sha256 of the holdout.txt the documents follow.
	ListSHA256 string       `json:"list_sha256"`
	Docs       []HeldOutDoc `json:"docs"`
	// Words are the needle words: lower-case words of 4–10 letters that
	// occur at least 5 times in the training English text (KJV and Austen
	// without the held-out chapters), as in bench-lm-8k's training
	// documents (whose list of 7,040 was not published).
	Words []string `json:"words"`
}

var (
	kjvHeader = regexp.MustCompile(`^(\d )?[A-Z][A-Za-z ]+ \d+$`)
	// austenHeader matches the chapter lines of the six novels ("CHAPTER
	// XII" in Emma, "Chapter 12" in Pride and Prejudice).
	austenHeader = regexp.MustCompile(`^(CHAPTER|Chapter) `)
	austenNovels = []string{"emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"}
	lowerWord    = regexp.MustCompile(`[A-Za-z]+`)
)

// chapters splits text at lines matching hdr: each chapter runs from its
// header line to the line before the next header, surrounding whitespace
// trimmed and one newline added (the split bench-lm-8k's training used: it
// reproduces the held-out byte counts of its eval.json, 62,475 B of KJV and
// 44,448 B of Austen). Text before the first header is dropped.
func chapters(text string, hdr *regexp.Regexp) (names []string, bodies []string) {
	lines := strings.Split(text, "\n")
	var starts []int
	for i, l := range lines {
		if hdr.MatchString(l) {
			starts = append(starts, i)
		}
	}
	for j, s := range starts {
		e := len(lines)
		if j+1 < len(starts) {
			e = starts[j+1]
		}
		names = append(names, lines[s])
		bodies = append(bodies, strings.TrimSpace(strings.Join(lines[s:e], "\n"))+"\n")
	}
	return names, bodies
}

// BuildHeldOut reads a model's holdout list (bench-lm-8k's
// training/holdout.txt: lines "kjv/<Book> <chapter>", "austen/<novel>
// chapter#<k>" with k counted from 1, and Go paths "src/…" or "test/…")
// and collects the documents from corpora (the kjv/ and austen/ folders of
// shared/data/corpora) and goroot (a Go distribution of the version the
// model was trained on). It also derives the needle words from the
// training English text.
func BuildHeldOut(listPath, corpora, goroot string) (*HeldOut, error) {
	raw, err := os.ReadFile(listPath)
	if err != nil {
		return nil, fmt.Errorf("held-out list: %w", err)
	}
	sum := sha256.Sum256(raw)
	h := &HeldOut{Format: HeldOutFormat, ListSHA256: hex.EncodeToString(sum[:])}
	kjvRaw, err := os.ReadFile(filepath.Join(corpora, "kjv", "kjv.txt"))
	if err != nil {
		return nil, fmt.Errorf("held-out: --corpora: %w", err)
	}
	kjvNames, kjvBodies := chapters(string(kjvRaw), kjvHeader)
	kjvIdx := map[string]int{}
	for i, n := range kjvNames {
		kjvIdx[n] = i
	}
	austen := map[string][]string{}
	for _, nov := range austenNovels {
		b, err := os.ReadFile(filepath.Join(corpora, "austen", nov+".txt"))
		if err != nil {
			return nil, fmt.Errorf("held-out: --corpora: %w", err)
		}
		_, austen[nov] = chapters(string(b), austenHeader)
	}
	heldKJV := map[int]bool{}
	heldAusten := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "kjv/"):
			name := strings.TrimPrefix(line, "kjv/")
			i, ok := kjvIdx[name]
			if !ok {
				return nil, fmt.Errorf("held-out list %s:%d: no KJV chapter %q", listPath, ln, name)
			}
			heldKJV[i] = true
			book := name[:strings.LastIndexByte(name, ' ')]
			h.Docs = append(h.Docs, HeldOutDoc{Source: "kjv", Group: "kjv/" + book, Name: line, Text: kjvBodies[i]})
		case strings.HasPrefix(line, "austen/"):
			nov, k, ok := strings.Cut(strings.TrimPrefix(line, "austen/"), " chapter#")
			c, err := strconv.Atoi(k)
			chs := austen[nov]
			if !ok || err != nil || c < 1 || c > len(chs) {
				return nil, fmt.Errorf("held-out list %s:%d: %q is not \"austen/<novel> chapter#<k>\" with k in 1…%d", listPath, ln, line, len(chs))
			}
			heldAusten[fmt.Sprintf("%s#%d", nov, c)] = true
			h.Docs = append(h.Docs, HeldOutDoc{Source: "austen", Group: "austen/" + nov, Name: line, Text: chs[c-1]})
		case strings.HasPrefix(line, "src/") || strings.HasPrefix(line, "test/"):
			b, err := os.ReadFile(filepath.Join(goroot, filepath.FromSlash(line)))
			if err != nil {
				return nil, fmt.Errorf("held-out list %s:%d: --goroot: %w", listPath, ln, err)
			}
			h.Docs = append(h.Docs, HeldOutDoc{Source: "go", Group: "go/" + filepath.ToSlash(filepath.Dir(line)), Name: line, Text: string(b)})
		default:
			return nil, fmt.Errorf("held-out list %s:%d: unknown document %q (want kjv/, austen/, src/ or test/)", listPath, ln, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("held-out list: %w", err)
	}
	if len(h.Docs) == 0 {
		return nil, fmt.Errorf("held-out list %s: no documents", listPath)
	}
	// Needle words from the training English text.
	count := map[string]int{}
	addWords := func(s string) {
		for _, w := range lowerWord.FindAllString(s, -1) {
			if strings.ToLower(w) == w && len(w) >= 4 && len(w) <= 10 {
				count[w]++
			}
		}
	}
	for i, b := range kjvBodies {
		if !heldKJV[i] {
			addWords(b)
		}
	}
	for _, nov := range austenNovels {
		for c, b := range austen[nov] {
			if !heldAusten[fmt.Sprintf("%s#%d", nov, c+1)] {
				addWords(b)
			}
		}
	}
	for w, c := range count {
		if c >= 5 {
			h.Words = append(h.Words, w)
		}
	}
	sort.Strings(h.Words)
	return h, nil
}

// ReadHeldOut reads a held-out file written by WriteHeldOut. A file that
// is not such JSON is taken as one plain-text document (source "text"),
// with the needle words drawn from it.
func ReadHeldOut(path string) (*HeldOut, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("held-out: %w", err)
	}
	var h HeldOut
	if json.Unmarshal(b, &h) == nil && h.Format != "" {
		if h.Format != HeldOutFormat {
			return nil, fmt.Errorf("held-out %s: format %q, want %q", path, h.Format, HeldOutFormat)
		}
		if len(h.Docs) == 0 {
			return nil, fmt.Errorf("held-out %s: no documents", path)
		}
		return &h, nil
	}
	text := string(b)
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("held-out %s: empty", path)
	}
	h = HeldOut{Format: HeldOutFormat, Docs: []HeldOutDoc{{Source: "text", Group: filepath.Base(path), Name: filepath.Base(path), Text: text}}}
	seen := map[string]bool{}
	for _, w := range lowerWord.FindAllString(text, -1) {
		if strings.ToLower(w) == w && len(w) >= 4 && len(w) <= 10 && !seen[w] {
			seen[w] = true
			h.Words = append(h.Words, w)
		}
	}
	sort.Strings(h.Words)
	return &h, nil
}

// WriteHeldOut writes h as JSON.
func WriteHeldOut(path string, h *HeldOut) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("held-out: %w", err)
	}
	return nil
}

// Sources returns the distinct sources of the documents, sorted.
func (h *HeldOut) Sources() []string {
	var s []string
	for _, d := range h.Docs {
		if !slices.Contains(s, d.Source) {
			s = append(s, d.Source)
		}
	}
	sort.Strings(s)
	return s
}

// Stream tokenises the documents whose source passes keep (nil: all) the
// way bench-lm-8k's training stream was built: every document is BOS, its
// text, EOS (each special token only if the tokenizer has one); documents
// of one group stay adjacent in list order, and the order of the groups is
// shuffled with seed.
func (h *HeldOut) Stream(enc func(string) []int, bos, eos int, keep func(source string) bool, seed uint64) []int {
	var groups []string
	byGroup := map[string][]int{}
	for i, d := range h.Docs {
		if keep != nil && !keep(d.Source) {
			continue
		}
		if _, ok := byGroup[d.Group]; !ok {
			groups = append(groups, d.Group)
		}
		byGroup[d.Group] = append(byGroup[d.Group], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x68656c64))
	rng.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	var out []int
	for _, g := range groups {
		for _, i := range byGroup[g] {
			if bos >= 0 {
				out = append(out, bos)
			}
			out = append(out, enc(h.Docs[i].Text)...)
			if eos >= 0 {
				out = append(out, eos)
			}
		}
	}
	return out
}
