package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dequantize decodes len(dst) elements of type t from src into dst. src
// must hold exactly those elements (RowBytes(t, len(dst)) bytes); several
// rows may be decoded at once, since the blocks of consecutive rows are
// consecutive.
//
// The results are bit for bit those of ggml's dequantize_row_* and of
// gguf-py's numpy dequantizers: every scale is an f16 (or int8/6-bit
// factor) widened exactly, and each product and difference is rounded to
// float32 on its own (never fused), in the same order as theirs.
func Dequantize(dst []float32, src []byte, t Type) error {
	if !t.CanDequantize() {
		return fmt.Errorf("dequantize: type %s is not supported (supported: %v)", t, SupportedDequantize())
	}
	want, err := RowBytes(t, uint64(len(dst)))
	if err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	if uint64(len(src)) != want {
		return fmt.Errorf("dequantize: %d bytes of %s for %d elements, want %d", len(src), t, len(dst), want)
	}
	le := binary.LittleEndian
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = half(src[2*i:])
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	default:
		be, bb := t.BlockElems(), t.BlockBytes()
		decode := blockDecoders[t]
		for b := 0; b < len(dst)/be; b++ {
			decode(dst[b*be:(b+1)*be], src[b*bb:(b+1)*bb])
		}
	}
	return nil
}

// blockDecoders decode one block: dst has BlockElems elements, src
// BlockBytes bytes.
var blockDecoders = map[Type]func(dst []float32, src []byte){
	Q8_0: dequantQ8_0,
	Q4_0: dequantQ4_0,
	Q5_0: dequantQ5_0,
	Q4_K: dequantQ4_K,
	Q5_K: dequantQ5_K,
	Q6_K: dequantQ6_K,
}

// half widens the little-endian f16 at b[0:2] to float32. The conversion is
// exact, and NaNs keep their payload (signalling ones are not quieted), as
// in numpy.
func half(b []byte) float32 {
	h := binary.LittleEndian.Uint16(b)
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 14)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// dequantQ8_0: an f16 scale d, then 32 int8 quants; x = q·d.
func dequantQ8_0(dst []float32, src []byte) {
	d := half(src)
	for j := range 32 {
		dst[j] = float32(int8(src[2+j])) * d
	}
}

// dequantQ4_0: an f16 scale d, then 16 bytes whose low nibbles are
// elements 0–15 and high nibbles 16–31; x = d·(q−8).
func dequantQ4_0(dst []float32, src []byte) {
	d := half(src)
	qs := src[2:18]
	for j := range 16 {
		dst[j] = d * float32(int8(qs[j]&0x0f)-8)
		dst[j+16] = d * float32(int8(qs[j]>>4)-8)
	}
}

// dequantQ5_0: an f16 scale d, a little-endian uint32 whose bit j is the
// fifth bit of element j, then nibbles as in Q4_0; x = d·(q−16).
func dequantQ5_0(dst []float32, src []byte) {
	d := half(src)
	qh := binary.LittleEndian.Uint32(src[2:6])
	qs := src[6:22]
	for j := range 16 {
		lo := qs[j]&0x0f | byte(qh>>j&1)<<4
		hi := qs[j]>>4 | byte(qh>>(j+16)&1)<<4
		dst[j] = d * float32(int8(lo)-16)
		dst[j+16] = d * float32(int8(hi)-16)
	}
}

// kScaleMin unpacks the eight 6-bit scales and mins of a Q4_K/Q5_K block
// from its 12 scale bytes: bytes 0–3 hold scales 0–3 (low 6 bits), bytes 4–7
// mins 0–3, and bytes 8–11 the low 4 bits of scales and mins 4–7, whose top
// 2 bits are the top bits of bytes 0–3 and 4–7.
func kScaleMin(s []byte) (sc, m [8]uint8) {
	for j := range 4 {
		sc[j] = s[j] & 0x3f
		m[j] = s[j+4] & 0x3f
		sc[j+4] = s[j+8]&0x0f | (s[j]>>2)&0x30
		m[j+4] = s[j+8]>>4 | (s[j+4]>>2)&0x30
	}
	return sc, m
}

// dequantQ4_K: a 256-element super-block of eight 32-element groups: f16 d
// and dmin, 12 bytes of 6-bit group scales and mins, then 128 bytes of
// nibbles (bytes 32c…32c+31 hold groups 2c in the low and 2c+1 in the high
// nibbles); x = (d·sc)·q − dmin·m.
func dequantQ4_K(dst []float32, src []byte) {
	dequantK(dst, src[:16], nil, src[16:144])
}

// dequantQ5_K is Q4_K with a fifth bit per element: 32 bytes after the
// scales, bit g of byte e belonging to element e of group g.
func dequantQ5_K(dst []float32, src []byte) {
	dequantK(dst, src[:16], src[16:48], src[48:176])
}

// dequantK decodes a Q4_K (qh nil) or Q5_K super-block from its 16-byte
// head (d, dmin, scales), high bits qh and nibbles qs.
func dequantK(dst []float32, head, qh, qs []byte) {
	d, dmin := half(head), half(head[2:])
	sc, m := kScaleMin(head[4:16])
	for g := range 8 {
		dd, dm := d*float32(sc[g]), dmin*float32(m[g])
		q := qs[g/2*32 : g/2*32+32]
		shift := 4 * uint(g%2)
		for e := range 32 {
			v := q[e] >> shift & 0x0f
			if qh != nil {
				v |= (qh[e] >> uint(g) & 1) << 4
			}
			dst[g*32+e] = float32(dd*float32(v)) - dm
		}
	}
}

// dequantQ6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16
// int8 scales (one per 16 elements), then the f16 d; x = (d·sc)·(q−32). In
// each 128-element half h, element r takes its low nibble from byte
// 64h + r%64 (shifted by 4·(r/64)) and its high bits from byte 32h + r%32
// (shifted by 2·(r/32)).
func dequantQ6_K(dst []float32, src []byte) {
	ql, qh, scales := src[0:128], src[128:192], src[192:208]
	d := half(src[208:])
	for e := range 256 {
		h, r := e/128, e%128
		lo := ql[64*h+r%64] >> (4 * uint(r/64)) & 0x0f
		hi := qh[32*h+r%32] >> (2 * uint(r/32)) & 0x03
		dd := d * float32(int8(scales[e/16]))
		dst[e] = dd * float32(int8(lo|hi<<4)-32)
	}
}
