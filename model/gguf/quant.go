package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// CanQuantize reports whether Quantize encodes t.
func (t Type) CanQuantize() bool { return t == Q8_0 }

// SupportedQuantize lists the types Quantize encodes.
func SupportedQuantize() []Type { return []Type{Q8_0} }

// Quantize encodes the float32 values src as type t into dst, which must
// hold exactly RowBytes(t, len(src)) bytes; len(src) must be a whole number
// of blocks. Only Q8_0 is supported.
//
// Q8_0 is byte for byte ggml's quantize_row_q8_0_ref (and gguf-py's numpy
// quantizer): per block of 32, amax = max |x|, d = amax/127 in float32,
// q = round(x·(1/d)) rounding halves away from zero (0 when d is 0), and d
// stored as the nearest f16. A value that is NaN or ±Inf, or a block whose
// scale would overflow f16, is an error naming the element.
func Quantize(dst []byte, src []float32, t Type) error {
	if !t.CanQuantize() {
		return fmt.Errorf("quantize: type %s is not supported (supported: %v)", t, SupportedQuantize())
	}
	want, err := RowBytes(t, uint64(len(src)))
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if uint64(len(dst)) != want {
		return fmt.Errorf("quantize: %d bytes for %d elements of %s, want %d", len(dst), len(src), t, want)
	}
	be, bb := t.BlockElems(), t.BlockBytes()
	for b := 0; b < len(src)/be; b++ {
		if j, err := quantQ8_0(dst[b*bb:(b+1)*bb], src[b*be:(b+1)*be]); err != nil {
			return fmt.Errorf("quantize: %s element %d: %w", t, b*be+j, err)
		}
	}
	return nil
}

// quantQ8_0 encodes one block of 32 values into 34 bytes. An error comes
// with the index of the element it names.
func quantQ8_0(dst []byte, src []float32) (int, error) {
	src = src[:32]
	var amax float32
	at := 0
	for j, v := range src {
		a := v
		if a < 0 {
			a = -a
		}
		if !(a <= math.MaxFloat32) {
			return j, fmt.Errorf("value %v cannot be quantized", v)
		}
		if a > amax {
			amax, at = a, j
		}
	}
	d := amax / 127
	h := float16.Fromfloat32(d)
	if h.IsInf(0) {
		return at, fmt.Errorf("value %v is too large: its block scale |x|/127 overflows f16", src[at])
	}
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, h.Bits())
	q := dst[2:34]
	for j, v := range src {
		q[j] = byte(roundHalfAway(float32(v * id)))
	}
	return 0, nil
}

// roundHalfAway is C's roundf for |x| ≤ 128: the nearest integer, halves
// away from zero. x+0.5 is exact in float64, and the conversion truncates.
func roundHalfAway(x float32) int8 {
	if x >= 0 {
		return int8(int32(float64(x) + 0.5))
	}
	return -int8(int32(0.5 - float64(x)))
}
