package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// decoderSpec is the compiled decoder: every id's bytes (the per-token
// decoder steps applied to its vocabulary string) plus stream-level rules.
type decoderSpec struct {
	data []byte
	off  []uint32 // token id's bytes are data[off[id]:off[id+1]]
	// maximal: invalid UTF-8 becomes one U+FFFD per maximal subpart (Rust's
	// from_utf8_lossy, used by ByteLevel); otherwise one per byte (as
	// ByteFallback does).
	maximal bool
	// stripStart/stripEnd: how many leading/trailing stripRune characters
	// are removed from the whole output (Strip after Fuse, Metaspace).
	stripStart, stripEnd int
	stripRune            rune
	sep                  string // between tokens when there is no decoder
}

// tokStep is one per-token decoder step.
type tokStep struct {
	kind     int
	old, new string
	start    int
	stop     int
	content  rune
}

const (
	stepReplace = iota
	stepByteFallback
	stepByteLevel
	stepStrip
)

func (t *Tokenizer) buildDecoder(raw json.RawMessage) error {
	d := &t.dec
	var steps []tokStep
	if isNull(raw) {
		d.sep = " "
	} else {
		fused := false
		if err := parseDecoder(raw, 0, d, &steps, &fused); err != nil {
			return err
		}
	}
	d.off = make([]uint32, len(t.idToToken)+1)
	var buf []byte
	for id, tok := range t.idToToken {
		buf = applySteps(buf[:0], tok, steps)
		d.data = append(d.data, buf...)
		if len(d.data) > 1<<31 {
			return errors.New("vocabulary too large")
		}
		d.off[id+1] = uint32(len(d.data))
	}
	return nil
}

func parseDecoder(raw json.RawMessage, depth int, d *decoderSpec, steps *[]tokStep, fused *bool) error {
	if depth > maxNesting {
		return errors.New("decoder: nested too deeply")
	}
	c, err := parseComponent(raw)
	if err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	switch c.Type {
	case "Sequence":
		for _, r := range c.Decoders {
			if err := parseDecoder(r, depth+1, d, steps, fused); err != nil {
				return err
			}
		}
	case "ByteLevel":
		*steps = append(*steps, tokStep{kind: stepByteLevel})
		d.maximal = true
	case "ByteFallback":
		*steps = append(*steps, tokStep{kind: stepByteFallback})
	case "Fuse":
		*fused = true
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil {
			return errors.New("decoder: unsupported Replace pattern (only String)")
		}
		*steps = append(*steps, tokStep{kind: stepReplace, old: *c.Pattern.String, new: c.Content})
	case "Strip":
		r, _ := utf8.DecodeRuneInString(c.Content)
		if c.Start < 0 || c.Stop < 0 || c.Start > 1<<16 || c.Stop > 1<<16 {
			return errors.New("decoder: bad Strip")
		}
		if *fused {
			d.stripStart, d.stripEnd, d.stripRune = c.Start, c.Stop, r
		} else {
			*steps = append(*steps, tokStep{kind: stepStrip, start: c.Start, stop: c.Stop, content: r})
		}
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = "▁"
		}
		*steps = append(*steps, tokStep{kind: stepReplace, old: repl, new: " "})
		strip := c.PrependScheme != "never"
		if c.PrependScheme == "" && c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			strip = false
		}
		if strip {
			d.stripStart, d.stripRune = 1, ' '
		}
	default:
		return errUnsupported("decoder", c.Type)
	}
	return nil
}

// applySteps appends the decoded bytes of one token.
func applySteps(dst []byte, tok string, steps []tokStep) []byte {
	cur := tok
	for _, s := range steps {
		switch s.kind {
		case stepReplace:
			if s.old != "" {
				cur = strings.ReplaceAll(cur, s.old, s.new)
			}
		case stepByteFallback:
			if len(cur) == 6 && strings.HasPrefix(cur, "<0x") && cur[5] == '>' {
				if b, ok := parseHexByte(cur[3:5]); ok {
					cur = string([]byte{b})
				}
			}
		case stepByteLevel:
			var b []byte
			ok := true
			for _, r := range cur {
				if r >= 0 && int(r) < len(runeToByte) && runeToByte[r] >= 0 {
					b = append(b, byte(runeToByte[r]))
				} else {
					ok = false
					break
				}
			}
			if ok {
				cur = string(b)
			}
		case stepStrip:
			rs := []rune(cur)
			a, z := 0, len(rs)
			for a < s.start && a < z && rs[a] == s.content {
				a++
			}
			for k := 0; k < s.stop && z > a && rs[z-1] == s.content; k++ {
				z--
			}
			cur = string(rs[a:z])
		}
	}
	return append(dst, cur...)
}

func parseHexByte(h string) (byte, bool) {
	var v byte
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | c
	}
	return v, true
}

// tokenBytes returns the decoded bytes of id (nil when id is unknown).
func (d *decoderSpec) tokenBytes(id int) []byte {
	if id < 0 || id+1 >= len(d.off) {
		return nil
	}
	return d.data[d.off[id]:d.off[id+1]]
}

// validPrefix returns how many bytes at the start of b form a complete
// UTF-8 sequence (complete true), or the length of the maximal valid but
// incomplete prefix (complete false, at least 1 byte: an invalid byte is a
// one-byte maximal subpart).
func validPrefix(b []byte) (n int, complete bool) {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c < 0x80:
		return 1, true
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1, false
	}
	for k := 1; k <= need; k++ {
		if k >= len(b) {
			return k, false
		}
		x := b[k]
		if k == 1 {
			if x < lo || x > hi {
				return 1, false
			}
		} else if x < 0x80 || x > 0xBF {
			return k, false
		}
	}
	return need + 1, true
}

// appendLossy appends the valid UTF-8 text of b to dst, replacing invalid
// bytes by U+FFFD. Unless final, an incomplete sequence at the end of b is
// left unconsumed. It returns dst and the number of bytes consumed.
func (d *decoderSpec) appendLossy(dst []byte, b []byte, final bool) ([]byte, int) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		n, complete := validPrefix(b[i:])
		if complete {
			dst = append(dst, b[i:i+n]...)
			i += n
			continue
		}
		if i+n == len(b) && !final {
			break // may complete with the next token
		}
		if d.maximal {
			dst = append(dst, "\uFFFD"...)
			i += n
		} else {
			for k := 0; k < n; k++ {
				dst = append(dst, "\uFFFD"...)
			}
			i += n
		}
	}
	return dst, i
}

// Decode returns the text of ids. Special tokens are written as their
// text (for example "<|eot_id|>"); unknown ids are skipped. Bytes that do
// not form valid UTF-8 become U+FFFD.
func (t *Tokenizer) Decode(ids []int) string {
	d := t.NewStreamDecoder()
	var out []byte
	for _, id := range ids {
		out = d.appendNext(out, id)
	}
	out = d.appendFlush(out)
	return string(out)
}

// StreamDecoder decodes ids one at a time, for printing generated text as
// it comes. The concatenation of everything returned by Next and Flush
// equals Decode of all the ids; a chunk never ends inside a UTF-8
// sequence. To continue after a prompt with correct spacing, feed the
// prompt's ids first and discard what Next returns for them.
type StreamDecoder struct {
	d       *decoderSpec
	pending []byte // bytes not yet emitted
	started bool   // some bytes were emitted (or stripped) already
	stripN  int    // leading strip characters still to remove
	ntok    int
}

// NewStreamDecoder returns a StreamDecoder for t.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{d: &t.dec, stripN: t.dec.stripStart}
}

// Next adds one id and returns the text that is now complete (possibly "").
func (s *StreamDecoder) Next(id int) string {
	return string(s.appendNext(nil, id))
}

// Flush returns the remaining text (incomplete UTF-8 becomes U+FFFD, and
// trailing strip characters are removed) and resets the decoder.
func (s *StreamDecoder) Flush() string {
	return string(s.appendFlush(nil))
}

func (s *StreamDecoder) appendNext(dst []byte, id int) []byte {
	b := s.d.tokenBytes(id)
	if b == nil && (id < 0 || id+1 >= len(s.d.off)) {
		return dst
	}
	if s.d.sep != "" && s.ntok > 0 {
		s.pending = append(s.pending, s.d.sep...)
	}
	s.ntok++
	s.pending = append(s.pending, b...)
	return s.emit(dst, false)
}

func (s *StreamDecoder) appendFlush(dst []byte) []byte {
	dst = s.emit(dst, true)
	s.pending = s.pending[:0]
	s.started = false
	s.stripN = s.d.stripStart
	s.ntok = 0
	return dst
}

// emit moves complete text from pending to dst.
func (s *StreamDecoder) emit(dst []byte, final bool) []byte {
	p := s.pending
	// Leading strip.
	for s.stripN > 0 && len(p) > 0 {
		r, sz := utf8.DecodeRune(p)
		if r == utf8.RuneError && sz <= 1 {
			if !utf8.FullRune(p) && !final {
				s.pending = p
				return dst
			}
			s.stripN = 0
			break
		}
		if r != s.d.stripRune {
			s.stripN = 0
			break
		}
		p = p[sz:]
		s.stripN--
	}
	if len(p) == 0 {
		s.pending = p[:0]
		return dst
	}
	if final {
		s.stripN = 0
	}
	// Trailing strip: hold back up to stripEnd strip characters.
	keep := len(p)
	if s.d.stripEnd > 0 {
		sr := string(s.d.stripRune)
		for k := 0; k < s.d.stripEnd && strings.HasSuffix(string(p[:keep]), sr); k++ {
			keep -= len(sr)
		}
	}
	var n int
	dst, n = s.d.appendLossy(dst, p[:keep], final)
	if final {
		s.pending = s.pending[:0]
		return dst
	}
	rest := p[n:]
	s.pending = append(s.pending[:0], rest...)
	return dst
}
