package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode table; runeToByte its inverse (-1
// for runes that no byte maps to).
var (
	byteToRune [256]rune
	runeToByte [324]int16
)

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = int16(b)
	}
	for c := 0; c < 128; c++ {
		r := rune(c)
		switch {
		case unicode.IsLetter(r):
			asciiCls[c] = clsL
		case unicode.IsNumber(r):
			asciiCls[c] = clsN
		case r == '\r' || r == '\n':
			asciiCls[c] = clsS | clsNL
		case unicode.IsSpace(r):
			asciiCls[c] = clsS
		}
	}
}

// appendByteLevel appends s with every byte mapped to its byte-level rune.
func appendByteLevel(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteToRune[s[i]])
	}
	return dst
}

// Character classes of the split regexes.
const (
	clsL  = 1 << iota // \p{L}
	clsN              // \p{N}
	clsS              // \s
	clsNL             // \r or \n
)

var asciiCls [128]uint8

// runeClass returns the class of the rune at s[i] and its size. Invalid
// UTF-8 bytes have class 0 (like punctuation) and size 1.
func runeClass(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiCls[c], 1
	}
	r, sz := utf8.DecodeRuneInString(s[i:])
	switch {
	case unicode.IsLetter(r):
		return clsL, sz
	case unicode.IsNumber(r):
		return clsN, sz
	case unicode.IsSpace(r):
		return clsS, sz
	}
	return 0, sz
}

// scanKind names a split regex implemented by hand.
type scanKind uint8

const (
	scanNone scanKind = iota
	scanGPT2
	scanLlama3
	scanQwen2
)

// The split regexes recognised and implemented by scanners (Go's regexp
// has no lookahead for \s+(?!\S)).
const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func scanKindOf(pattern string) scanKind {
	switch pattern {
	case patGPT2:
		return scanGPT2
	case patLlama3:
		return scanLlama3
	case patQwen2:
		return scanQwen2
	}
	return scanNone
}

// scan returns the end of the regex match that starts at s[i] (i < len(s)).
// Every position starts a match for these patterns.
func (k scanKind) scan(s string, i int) int {
	switch k {
	case scanGPT2:
		return scanGPT2At(s, i)
	case scanLlama3:
		return scanLlamaAt(s, i, 3)
	default:
		return scanLlamaAt(s, i, 1)
	}
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at s[i]
// (s[i] == '\”) or 0. With fold, letters match case-insensitively, as
// Oniguruma's (?i) does (ſ, U+017F, folds to s).
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) {
		return 0
	}
	c := s[i+1]
	if fold && c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	switch c {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			c2 := s[i+2]
			if fold && c2 >= 'A' && c2 <= 'Z' {
				c2 += 'a' - 'A'
			}
			if (c2 == 'e' && c != 'l') || (c2 == 'l' && c == 'l') {
				return 3
			}
		}
	case 0xC5:
		if fold && i+2 < len(s) && s[i+2] == 0xBF { // ſ
			return 3
		}
	}
	return 0
}

func scanClass(s string, j int, mask uint8) int {
	for j < len(s) {
		c, sz := runeClass(s, j)
		if c&mask == 0 {
			break
		}
		j += sz
	}
	return j
}

func scanPunct(s string, j int) int {
	for j < len(s) {
		c, sz := runeClass(s, j)
		if c != 0 {
			break
		}
		j += sz
	}
	return j
}

// scanSpace matches at a whitespace rune: with newlines, \s*[\r\n]+ first,
// then \s+(?!\S), then \s+.
func scanSpace(s string, i int, newlines bool) int {
	e, lastNL := i, -1
	for e < len(s) {
		c, sz := runeClass(s, e)
		if c&clsS == 0 {
			break
		}
		if c&clsNL != 0 {
			lastNL = e
		}
		e += sz
	}
	if newlines && lastNL >= 0 {
		return lastNL + 1
	}
	if e == len(s) {
		return e
	}
	_, lsz := utf8.DecodeLastRuneInString(s[i:e])
	if e-lsz > i {
		return e - lsz
	}
	return e
}

// scanLlamaAt implements the Llama 3 (maxDigits 3) and Qwen2 (maxDigits 1)
// split regexes.
func scanLlamaAt(s string, i int, maxDigits int) int {
	c := s[i]
	if c == '\'' {
		if n := contraction(s, i, true); n > 0 {
			return i + n
		}
	}
	cls, sz := runeClass(s, i)
	if cls&clsL != 0 {
		return scanClass(s, i+sz, clsL)
	}
	j := i + sz
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if cls&(clsN|clsNL) == 0 && j < len(s) {
		if c2, sz2 := runeClass(s, j); c2&clsL != 0 {
			return scanClass(s, j+sz2, clsL)
		}
	}
	if cls&clsN != 0 {
		for k := 1; k < maxDigits && j < len(s); k++ {
			c2, sz2 := runeClass(s, j)
			if c2&clsN == 0 {
				break
			}
			j += sz2
		}
		return j
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	start := -1
	if cls == 0 {
		start = j
	} else if c == ' ' && j < len(s) {
		if c2, sz2 := runeClass(s, j); c2 == 0 {
			start = j + sz2
		}
	}
	if start >= 0 {
		k := scanPunct(s, start)
		for k < len(s) && (s[k] == '\r' || s[k] == '\n') {
			k++
		}
		return k
	}
	return scanSpace(s, i, true)
}

// scanGPT2At implements GPT-2's split regex (ByteLevel's use_regex).
func scanGPT2At(s string, i int) int {
	c := s[i]
	if c == '\'' {
		if n := contraction(s, i, false); n > 0 {
			return i + n
		}
	}
	cls, sz := runeClass(s, i)
	j := i
	if c == ' ' && i+1 < len(s) {
		if c2, sz2 := runeClass(s, i+1); c2&clsS == 0 {
			cls, sz, j = c2, sz2, i+1
		}
	}
	switch {
	case cls&clsL != 0:
		return scanClass(s, j+sz, clsL)
	case cls&clsN != 0:
		return scanClass(s, j+sz, clsN)
	case cls == 0:
		return scanPunct(s, j+sz)
	}
	return scanSpace(s, i, false)
}

// preTokenizer splits a normalized segment into pre-tokens.
type preTokenizer interface {
	// split appends the pieces of s to dst. first is true when s starts
	// the original text.
	split(dst []string, s string, first bool) []string
}

// Split delimiter behaviours.
const (
	behRemoved = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

func parseBehavior(s string) (int, error) {
	switch s {
	case "Removed":
		return behRemoved, nil
	case "Isolated":
		return behIsolated, nil
	case "MergedWithPrevious":
		return behMergedWithPrevious, nil
	case "MergedWithNext":
		return behMergedWithNext, nil
	case "Contiguous":
		return behContiguous, nil
	}
	return 0, fmt.Errorf("unsupported split behavior %q", s)
}

type span struct {
	s, e  int
	match bool
}

// applyBehavior turns matched and unmatched spans into pieces, as Hugging
// Face's NormalizedString::split does.
func applyBehavior(dst []string, s string, spans []span, beh int, invert bool) []string {
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var out []span
	switch beh {
	case behIsolated:
		out = spans
	case behRemoved:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case behMergedWithPrevious:
		prev := false
		for _, sp := range spans {
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].e = sp.e
			} else {
				out = append(out, sp)
			}
			prev = sp.match
		}
	case behMergedWithNext:
		prev := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].s = sp.s
			} else {
				out = append(out, sp)
			}
			prev = sp.match
		}
		for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	case behContiguous:
		prev := false
		for _, sp := range spans {
			if sp.match == prev && len(out) > 0 {
				out[len(out)-1].e = sp.e
			} else {
				out = append(out, sp)
			}
			prev = sp.match
		}
	}
	for _, sp := range out {
		if sp.e > sp.s {
			dst = append(dst, s[sp.s:sp.e])
		}
	}
	return dst
}

// matchSpans returns matched and unmatched spans covering s for the given
// match positions.
func matchSpans(s string, locs [][2]int) []span {
	var spans []span
	prev := 0
	for _, l := range locs {
		if l[0] > prev {
			spans = append(spans, span{prev, l[0], false})
		}
		spans = append(spans, span{l[0], l[1], true})
		prev = l[1]
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	return spans
}

// splitPre is the Split pre-tokenizer.
type splitPre struct {
	kind     scanKind
	re       *regexp.Regexp
	lit      string
	isLit    bool
	behavior int
	invert   bool
}

func (p *splitPre) split(dst []string, s string, first bool) []string {
	if s == "" {
		return dst
	}
	if p.kind != scanNone && p.behavior == behIsolated && !p.invert {
		for i := 0; i < len(s); {
			j := p.kind.scan(s, i)
			dst = append(dst, s[i:j])
			i = j
		}
		return dst
	}
	var locs [][2]int
	switch {
	case p.kind != scanNone:
		for i := 0; i < len(s); {
			j := p.kind.scan(s, i)
			locs = append(locs, [2]int{i, j})
			i = j
		}
	case p.isLit:
		if p.lit != "" {
			for i := 0; ; {
				k := strings.Index(s[i:], p.lit)
				if k < 0 {
					break
				}
				locs = append(locs, [2]int{i + k, i + k + len(p.lit)})
				i += k + len(p.lit)
			}
		}
	default:
		for _, l := range p.re.FindAllStringIndex(s, -1) {
			locs = append(locs, [2]int{l[0], l[1]})
		}
	}
	return applyBehavior(dst, s, matchSpans(s, locs), p.behavior, p.invert)
}

// byteLevelPre is the ByteLevel pre-tokenizer. When lazy, the byte mapping
// is left to the model.
type byteLevelPre struct {
	addPrefix bool
	useRegex  bool
	lazy      bool
}

func (p *byteLevelPre) split(dst []string, s string, first bool) []string {
	if p.addPrefix && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	n := len(dst)
	if p.useRegex {
		for i := 0; i < len(s); {
			j := scanGPT2At(s, i)
			dst = append(dst, s[i:j])
			i = j
		}
	} else if s != "" {
		dst = append(dst, s)
	}
	if !p.lazy {
		for k := n; k < len(dst); k++ {
			dst[k] = string(appendByteLevel(nil, dst[k]))
		}
	}
	return dst
}

// Metaspace prepend schemes.
const (
	prependAlways = iota
	prependFirst
	prependNever
)

type metaspacePre struct {
	repl    string
	scheme  int
	doSplit bool
}

func (p *metaspacePre) split(dst []string, s string, first bool) []string {
	s = strings.ReplaceAll(s, " ", p.repl)
	if !strings.HasPrefix(s, p.repl) && (p.scheme == prependAlways || (p.scheme == prependFirst && first)) {
		s = p.repl + s
	}
	if !p.doSplit {
		if s != "" {
			dst = append(dst, s)
		}
		return dst
	}
	var locs [][2]int
	for i := 0; ; {
		k := strings.Index(s[i:], p.repl)
		if k < 0 {
			break
		}
		locs = append(locs, [2]int{i + k, i + k + len(p.repl)})
		i += k + len(p.repl)
	}
	return applyBehavior(dst, s, matchSpans(s, locs), behMergedWithNext, false)
}

type digitsPre struct{ individual bool }

func (p *digitsPre) split(dst []string, s string, first bool) []string {
	var spans []span
	for i := 0; i < len(s); i++ {
		spans = append(spans, span{i, i + 1, s[i] >= '0' && s[i] <= '9'})
	}
	beh := behContiguous
	if p.individual {
		beh = behIsolated
	}
	// Non-digit bytes stay together in both cases.
	var merged []span
	for _, sp := range spans {
		if n := len(merged); n > 0 && !sp.match && !merged[n-1].match {
			merged[n-1].e = sp.e
			continue
		}
		merged = append(merged, sp)
	}
	return applyBehavior(dst, s, merged, beh, false)
}

// seqPre applies pre-tokenizers in turn.
type seqPre struct{ steps []preTokenizer }

func (p *seqPre) split(dst []string, s string, first bool) []string {
	cur := []string{s}
	for _, step := range p.steps {
		var next []string
		for i, piece := range cur {
			next = step.split(next, piece, first && i == 0)
		}
		cur = next
	}
	return append(dst, cur...)
}

// fastPre is the pre-tokenizer fast path: one scanner followed by a lazy
// byte-level mapping.
type fastPre struct {
	kind      scanKind
	addPrefix bool
}

func (f *fastPre) encode(t *Tokenizer, st *encState, out []int, seg string) []int {
	if f.addPrefix && !strings.HasPrefix(seg, " ") {
		seg = " " + seg
	}
	m := t.model
	for i := 0; i < len(seg); {
		j := f.kind.scan(seg, i)
		out = m.encodeWord(st, out, seg[i:j], true)
		i = j
	}
	return out
}

func parsePre(raw json.RawMessage, depth int, steps []preTokenizer) ([]preTokenizer, error) {
	if depth > maxNesting {
		return nil, errors.New("pre_tokenizer: nested too deeply")
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		for _, r := range c.Pretokenizers {
			if steps, err = parsePre(r, depth+1, steps); err != nil {
				return nil, err
			}
		}
		return steps, nil
	case "ByteLevel":
		p := &byteLevelPre{useRegex: true}
		if c.AddPrefixSpace != nil {
			p.addPrefix = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			p.useRegex = *c.UseRegex
		}
		return append(steps, p), nil
	case "Split":
		beh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer: %w", err)
		}
		p := &splitPre{behavior: beh, invert: c.Invert}
		switch {
		case c.Pattern == nil:
			return nil, errors.New("pre_tokenizer: Split without pattern")
		case c.Pattern.String != nil:
			p.isLit, p.lit = true, *c.Pattern.String
		case c.Pattern.Regex != nil:
			if p.kind = scanKindOf(*c.Pattern.Regex); p.kind == scanNone {
				if p.re, err = regexp.Compile(*c.Pattern.Regex); err != nil {
					return nil, fmt.Errorf("unsupported pre_tokenizer Split regex %q", *c.Pattern.Regex)
				}
			}
		default:
			return nil, errors.New("pre_tokenizer: Split without pattern")
		}
		return append(steps, p), nil
	case "Metaspace":
		p := &metaspacePre{repl: c.Replacement, doSplit: true}
		if p.repl == "" {
			p.repl = "▁"
		}
		if c.Split != nil {
			p.doSplit = *c.Split
		}
		switch c.PrependScheme {
		case "always":
			p.scheme = prependAlways
		case "first":
			p.scheme = prependFirst
		case "never":
			p.scheme = prependNever
		case "":
			p.scheme = prependAlways
			if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
				p.scheme = prependNever
			}
		default:
			return nil, fmt.Errorf("pre_tokenizer: unsupported Metaspace prepend_scheme %q", c.PrependScheme)
		}
		return append(steps, p), nil
	case "Digits":
		return append(steps, &digitsPre{individual: c.IndividualDigits}), nil
	}
	return nil, errUnsupported("pre_tokenizer", c.Type)
}

func (t *Tokenizer) buildPre(raw json.RawMessage) error {
	steps, err := parsePre(raw, 0, nil)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return nil
	}
	if bl, ok := steps[len(steps)-1].(*byteLevelPre); ok && t.model.enableLazyBytes() {
		bl.lazy = true
		t.lazyBytes = true
		switch {
		case len(steps) == 1 && bl.useRegex:
			t.fast = &fastPre{kind: scanGPT2, addPrefix: bl.addPrefix}
		case len(steps) == 2 && !bl.useRegex && !bl.addPrefix:
			if sp, ok := steps[0].(*splitPre); ok && sp.kind != scanNone && sp.behavior == behIsolated && !sp.invert {
				t.fast = &fastPre{kind: sp.kind}
			}
		}
	}
	if len(steps) == 1 {
		t.pre = steps[0]
	} else {
		t.pre = &seqPre{steps: steps}
	}
	return nil
}
