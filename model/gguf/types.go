package gguf

import (
	"fmt"
	"math/bits"
)

// Type is a ggml tensor element type as stored in a GGUF tensor table.
// Block-quantized types pack BlockElems elements into BlockBytes bytes; a
// row of a tensor (its innermost dimension) is a whole number of blocks.
type Type uint32

// The ggml tensor types, numbered as in ggml.h. Dequantize supports F32,
// F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K; the others are known by
// name and size only (so that a file holding them can be described).
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// QK_K is the number of elements of a K-quant super-block.
const qkK = 256

type typeTraits struct {
	name        string
	elems, size int // elements per block, bytes per block
	dequant     bool
}

var traits = map[Type]typeTraits{
	F32:     {"F32", 1, 4, true},
	F16:     {"F16", 1, 2, true},
	BF16:    {"BF16", 1, 2, true},
	Q4_0:    {"Q4_0", 32, 2 + 16, true},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16, false},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16, true},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16, false},
	Q8_0:    {"Q8_0", 32, 2 + 32, true},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32, false},
	Q2_K:    {"Q2_K", qkK, 2 + 2 + qkK/16 + qkK/4, false},
	Q3_K:    {"Q3_K", qkK, 2 + qkK/4 + qkK/8 + 12, false},
	Q4_K:    {"Q4_K", qkK, 2 + 2 + qkK/2 + 12, true},
	Q5_K:    {"Q5_K", qkK, 2 + 2 + qkK/2 + qkK/8 + 12, true},
	Q6_K:    {"Q6_K", qkK, 2 + qkK/2 + qkK/4 + qkK/16, true},
	Q8_K:    {"Q8_K", qkK, 4 + qkK + qkK/8, false},
	IQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/4, false},
	IQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/4 + qkK/32, false},
	IQ3_XXS: {"IQ3_XXS", qkK, 2 + qkK/4 + qkK/8, false},
	IQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16, false},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16, false},
	IQ3_S:   {"IQ3_S", qkK, 2 + qkK/4 + qkK/8 + qkK/32 + 4, false},
	IQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16, false},
	IQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/2 + qkK/64, false},
	I8:      {"I8", 1, 1, false},
	I16:     {"I16", 1, 2, false},
	I32:     {"I32", 1, 4, false},
	I64:     {"I64", 1, 8, false},
	F64:     {"F64", 1, 8, false},
	IQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32, false},
	TQ1_0:   {"TQ1_0", qkK, 2 + 4*13, false},
	TQ2_0:   {"TQ2_0", qkK, 2 + 64, false},
	MXFP4:   {"MXFP4", 32, 1 + 16, false},
}

// String returns the ggml name of t ("Q4_K"), or "type(N)" for an unknown
// type.
func (t Type) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether t is a ggml type this package knows the block layout
// of.
func (t Type) Known() bool {
	_, ok := traits[t]
	return ok
}

// BlockElems returns the number of elements of one block of t (1 for plain
// types), or 0 for an unknown type.
func (t Type) BlockElems() int { return traits[t].elems }

// BlockBytes returns the size in bytes of one block of t, or 0 for an
// unknown type.
func (t Type) BlockBytes() int { return traits[t].size }

// CanDequantize reports whether Dequantize decodes t.
func (t Type) CanDequantize() bool { return traits[t].dequant }

// SupportedDequantize lists the types Dequantize decodes, in ggml order.
func SupportedDequantize() []Type {
	return []Type{F32, F16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, BF16}
}

// RowBytes returns the bytes that n consecutive elements of type t occupy.
// It is an error when t is unknown, when n is not a whole number of blocks,
// or when the size overflows uint64.
func RowBytes(t Type, n uint64) (uint64, error) {
	tr, ok := traits[t]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type %d", uint32(t))
	}
	if n%uint64(tr.elems) != 0 {
		return 0, fmt.Errorf("%d elements of %s are not a whole number of %d-element blocks", n, tr.name, tr.elems)
	}
	hi, lo := bits.Mul64(n/uint64(tr.elems), uint64(tr.size))
	if hi != 0 {
		return 0, fmt.Errorf("%d elements of %s overflow the byte count", n, tr.name)
	}
	return lo, nil
}
