package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// normalizer rewrites a text segment before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type nfcNorm struct{}

func (nfcNorm) normalize(s string) string { return nfc(s) }

type prependNorm struct{ prefix string }

// normalize prepends the prefix to non-empty text, as Hugging Face does.
func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return p.prefix + s
}

type replaceNorm struct {
	old, new string
	re       *regexp.Regexp
}

func (r replaceNorm) normalize(s string) string {
	if r.re != nil {
		return r.re.ReplaceAllLiteralString(s, r.new)
	}
	if r.old == "" {
		return s
	}
	if grow := len(r.new) - len(r.old); grow > 0 && strings.Count(s, r.old)*grow > 8*len(s)+4096 {
		return s // safety limit against pathological tokenizer.json files
	}
	return strings.ReplaceAll(s, r.old, r.new)
}

type lowercaseNorm struct{}

func (lowercaseNorm) normalize(s string) string { return strings.ToLower(s) }

type stripNorm struct{ left, right bool }

func (p stripNorm) normalize(s string) string {
	if p.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if p.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

type seqNorm []normalizer

func (q seqNorm) normalize(s string) string {
	limit := 16*len(s) + 4096
	for _, n := range q {
		s = n.normalize(s)
		if len(s) > limit {
			break // safety limit against pathological tokenizer.json files
		}
	}
	return s
}

func buildNormalizer(raw json.RawMessage, depth int) (normalizer, error) {
	if depth > maxNesting {
		return nil, errors.New("normalizer: nested too deeply")
	}
	c, err := parseComponent(raw)
	if err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		var q seqNorm
		for _, r := range c.Normalizers {
			n, err := buildNormalizer(r, depth+1)
			if err != nil {
				return nil, err
			}
			q = append(q, n)
		}
		return q, nil
	case "NFC":
		return nfcNorm{}, nil
	case "Prepend":
		return prependNorm{c.Prepend}, nil
	case "Replace":
		r := replaceNorm{new: c.Content}
		switch {
		case c.Pattern == nil:
			return nil, errors.New("normalizer: Replace without pattern")
		case c.Pattern.String != nil:
			r.old = *c.Pattern.String
		case c.Pattern.Regex != nil:
			if r.re, err = regexp.Compile(*c.Pattern.Regex); err != nil {
				return nil, fmt.Errorf("unsupported normalizer Replace regex %q", *c.Pattern.Regex)
			}
		default:
			return nil, errors.New("normalizer: Replace without pattern")
		}
		return r, nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		return stripNorm{c.StripLeft, c.StripRight}, nil
	}
	return nil, errUnsupported("normalizer", c.Type)
}
