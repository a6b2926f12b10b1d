package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

type addedToken struct {
	id                         int
	content                    string
	lstrip, rstrip, singleWord bool
}

// addedMatcher finds added tokens in text, leftmost first and longest
// first at a position (Hugging Face's leftmost-longest Aho-Corasick).
type addedMatcher struct {
	byFirst [256][]addedToken // candidates by first byte, longest first
	firsts  string            // the distinct first bytes
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	m := &addedMatcher{}
	var firsts []byte
	for _, t := range sortedAdded(toks) {
		c := t.content[0]
		if m.byFirst[c] == nil {
			firsts = append(firsts, c)
		}
		m.byFirst[c] = append(m.byFirst[c], t)
	}
	m.firsts = string(firsts)
	return m
}

// next finds the first added token in s at or after pos. It returns the
// span to replace (including whitespace taken by lstrip/rstrip) and the
// token id, or id -1 when there is none.
func (m *addedMatcher) next(s string, pos int) (start, end, id int) {
	if m == nil || m.firsts == "" {
		return len(s), len(s), -1
	}
	for i := pos; i < len(s); {
		var k int
		if len(m.firsts) == 1 {
			k = strings.IndexByte(s[i:], m.firsts[0])
		} else {
			k = strings.IndexAny(s[i:], m.firsts)
		}
		if k < 0 {
			break
		}
		i += k
		for _, t := range m.byFirst[s[i]] {
			if !strings.HasPrefix(s[i:], t.content) {
				continue
			}
			e := i + len(t.content)
			if t.singleWord && (endsWithWord(s[:i]) || startsWithWord(s[e:])) {
				continue
			}
			st := i
			if t.lstrip {
				st = pos + len(strings.TrimRightFunc(s[pos:i], unicode.IsSpace))
			}
			if t.rstrip {
				e = len(s) - len(strings.TrimLeftFunc(s[e:], unicode.IsSpace))
			}
			return st, e, t.id
		}
		// Step over this byte (or the whole rune).
		if s[i] < utf8.RuneSelf {
			i++
		} else {
			_, sz := utf8.DecodeRuneInString(s[i:])
			i += sz
		}
	}
	return len(s), len(s), -1
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
}

func endsWithWord(s string) bool {
	r, sz := utf8.DecodeLastRuneInString(s)
	return sz > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, sz := utf8.DecodeRuneInString(s)
	return sz > 0 && isWordRune(r)
}
