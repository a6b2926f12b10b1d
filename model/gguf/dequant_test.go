package gguf_test

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
)

// TestDequantizeVectors checks every supported type bit for bit against
// the values llama.cpp's gguf-py (numpy) gives for the same bytes
// (testdata/gen_dequant.py wrote both: random blocks with finite scales, and
// edge blocks with zero, ±65504 and subnormal scales and all-zero or
// all-one quants).
func TestDequantizeVectors(t *testing.T) {
	for _, typ := range gguf.SupportedDequantize() {
		t.Run(typ.String(), func(t *testing.T) {
			base := filepath.Join("testdata", "dequant", typ.String())
			raw, err := os.ReadFile(base + ".bin")
			if err != nil {
				t.Fatal(err)
			}
			wantBytes, err := os.ReadFile(base + ".f32")
			if err != nil {
				t.Fatal(err)
			}
			n := len(wantBytes) / 4
			if typ.BlockElems() > 1 && n < 8*typ.BlockElems() {
				t.Fatalf("only %d values: the vectors should hold random and edge blocks", n)
			}
			got := make([]float32, n)
			if err := gguf.Dequantize(got, raw, typ); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range got {
				w := binary.LittleEndian.Uint32(wantBytes[4*i:])
				if g := math.Float32bits(got[i]); g != w {
					if bad++; bad <= 5 {
						t.Errorf("element %d (block %d): got %v (%#08x), want %v (%#08x)", i, i/typ.BlockElems(), got[i], g, math.Float32frombits(w), w)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d elements differ", bad, n)
			}
			// Decoding block by block gives the same as all at once.
			if be := typ.BlockElems(); be > 1 {
				bb := typ.BlockBytes()
				one := make([]float32, be)
				for b := 0; b < n/be; b++ {
					if err := gguf.Dequantize(one, raw[b*bb:(b+1)*bb], typ); err != nil {
						t.Fatal(err)
					}
					for e := range one {
						if math.Float32bits(one[e]) != math.Float32bits(got[b*be+e]) {
							t.Fatalf("block %d element %d: %v alone, %v in the row", b, e, one[e], got[b*be+e])
						}
					}
				}
			}
		})
	}
}

func TestDequantizeErrors(t *testing.T) {
	for _, tc := range []struct {
		typ  gguf.Type
		n    int
		src  int
		want string
	}{
		{gguf.Q8_0, 32, 33, "33 bytes of Q8_0 for 32 elements, want 34"},
		{gguf.Q8_0, 31, 34, "not a whole number of 32-element blocks"},
		{gguf.Q4_K, 256, 0, "0 bytes of Q4_K for 256 elements, want 144"},
		{gguf.Q2_K, 256, 84, "type Q2_K is not supported"},
		{gguf.Type(99), 1, 1, "type type(99) is not supported"},
		{gguf.F32, 2, 4, "4 bytes of F32 for 2 elements, want 8"},
	} {
		err := gguf.Dequantize(make([]float32, tc.n), make([]byte, tc.src), tc.typ)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dequantize(%s, %d elements, %d bytes) = %v, want an error containing %q", tc.typ, tc.n, tc.src, err, tc.want)
		}
	}
}

func TestRowBytes(t *testing.T) {
	for _, tc := range []struct {
		typ  gguf.Type
		n    uint64
		want uint64
	}{
		{gguf.F32, 3, 12}, {gguf.F16, 3, 6}, {gguf.BF16, 5, 10},
		{gguf.Q8_0, 64, 68}, {gguf.Q4_0, 32, 18}, {gguf.Q5_0, 32, 22},
		{gguf.Q4_K, 512, 288}, {gguf.Q5_K, 256, 176}, {gguf.Q6_K, 256, 210},
	} {
		got, err := gguf.RowBytes(tc.typ, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("RowBytes(%s, %d) = %d, %v; want %d", tc.typ, tc.n, got, err, tc.want)
		}
	}
	if _, err := gguf.RowBytes(gguf.F32, 1<<63); err == nil {
		t.Error("RowBytes(F32, 2^63): no overflow error")
	}
}
