package tokenizer

//go:generate python3 gen_nfc.py

import (
	"sort"
	"sync"
	"unicode/utf8"
)

// Hangul syllable constants from the Unicode standard (chapter 3.12).
const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

var (
	nfcOnce   sync.Once
	nfcDecomp map[rune][]rune
	nfcCCC    map[rune]uint8
	nfcComp   map[uint64]rune
)

func nfcInit() {
	nfcDecomp = make(map[rune][]rune, 2100)
	for i := 0; i < len(nfcDecompData); {
		cp, n := rune(nfcDecompData[i]), int(nfcDecompData[i+1])
		d := make([]rune, n)
		for j := range d {
			d[j] = rune(nfcDecompData[i+2+j])
		}
		nfcDecomp[cp] = d
		i += 2 + n
	}
	nfcCCC = make(map[rune]uint8, len(nfcCCCData))
	for _, v := range nfcCCCData {
		nfcCCC[rune(v>>8)] = uint8(v)
	}
	nfcComp = make(map[uint64]rune, len(nfcCompData)/3)
	for i := 0; i+2 < len(nfcCompData); i += 3 {
		nfcComp[uint64(nfcCompData[i])<<32|uint64(nfcCompData[i+1])] = rune(nfcCompData[i+2])
	}
}

// nfcUnsafe reports whether r may change, or make its neighbours change,
// under NFC (NFC_QC is No or Maybe, or the combining class is not 0).
func nfcUnsafe(r rune) bool {
	if r < 0x300 {
		return false
	}
	// Hangul syllables are composed already and stable.
	if r >= hangulSBase && r < hangulSBase+hangulSCount {
		return false
	}
	n := len(nfcUnsafeRanges) / 2
	i := sort.Search(n, func(i int) bool { return rune(nfcUnsafeRanges[2*i+1]) >= r })
	return i < n && rune(nfcUnsafeRanges[2*i]) <= r
}

// isNFC reports whether s is certainly in NFC form (a quick check that
// never allocates).
func isNFC(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0xCC { // below U+0300 (lead byte 0xCC) every rune is safe
			i++
			continue
		}
		r, sz := utf8.DecodeRuneInString(s[i:])
		if nfcUnsafe(r) {
			return false
		}
		i += sz
	}
	return true
}

// nfc returns s in Unicode Normalization Form C. Bytes that are not valid
// UTF-8 are kept unchanged and act as starters that never compose.
func nfc(s string) string {
	if isNFC(s) {
		return s
	}
	nfcOnce.Do(nfcInit)
	// Decompose. Invalid bytes are stored as negative values -(b+1).
	d := make([]rune, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, sz := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && sz == 1 {
			d = append(d, -rune(s[i])-1)
			i++
			continue
		}
		i += sz
		d = nfcDecompose(d, r)
	}
	// Canonical ordering: stable insertion sort of each run of non-starters.
	for i := 1; i < len(d); i++ {
		c := cccOf(d[i])
		if c == 0 {
			continue
		}
		for j := i; j > 0; j-- {
			p := cccOf(d[j-1])
			if p <= c {
				break
			}
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
	// Compose.
	if len(d) > 0 {
		starterPos := 0
		starter := d[0]
		lastClass := int(cccOf(starter))
		if lastClass != 0 {
			lastClass = 256
		}
		out := 1
		for i := 1; i < len(d); i++ {
			ch := d[i]
			chClass := int(cccOf(ch))
			if comp, ok := nfcCompose(starter, ch); ok && (lastClass < chClass || lastClass == 0) {
				d[starterPos] = comp
				starter = comp
				continue
			}
			if chClass == 0 {
				starterPos = out
				starter = ch
			}
			lastClass = chClass
			d[out] = ch
			out++
		}
		d = d[:out]
	}
	b := make([]byte, 0, len(s))
	for _, r := range d {
		if r < 0 {
			b = append(b, byte(-r-1))
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

func nfcDecompose(d []rune, r rune) []rune {
	if r >= hangulSBase && r < hangulSBase+hangulSCount {
		si := r - hangulSBase
		d = append(d, hangulLBase+si/hangulNCount, hangulVBase+(si%hangulNCount)/hangulTCount)
		if t := si % hangulTCount; t != 0 {
			d = append(d, hangulTBase+t)
		}
		return d
	}
	if x, ok := nfcDecomp[r]; ok {
		return append(d, x...)
	}
	return append(d, r)
}

func cccOf(r rune) uint8 {
	if r < 0x300 {
		return 0
	}
	return nfcCCC[r]
}

func nfcCompose(a, b rune) (rune, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	// Hangul L + V -> LV
	if a >= hangulLBase && a < hangulLBase+hangulLCount && b >= hangulVBase && b < hangulVBase+hangulVCount {
		return hangulSBase + ((a-hangulLBase)*hangulVCount+(b-hangulVBase))*hangulTCount, true
	}
	// Hangul LV + T -> LVT
	if a >= hangulSBase && a < hangulSBase+hangulSCount && (a-hangulSBase)%hangulTCount == 0 &&
		b > hangulTBase && b < hangulTBase+hangulTCount {
		return a + (b - hangulTBase), true
	}
	c, ok := nfcComp[uint64(a)<<32|uint64(b)]
	return c, ok
}
