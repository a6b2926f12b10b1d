package gguf_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/gguf"
)

// TestQuantizeVectors checks Quantize byte for byte against llama.cpp's
// gguf-py (numpy, itself bit-exact with ggml's quantize_row_*_ref) on the
// inputs testdata/gen_quant.py wrote: random blocks at several scales and
// edge blocks (zeros, halves, f16-subnormal and underflowing scales, a
// scale near f16's limit).
func TestQuantizeVectors(t *testing.T) {
	for _, typ := range gguf.SupportedQuantize() {
		t.Run(typ.String(), func(t *testing.T) {
			base := filepath.Join("testdata", "quant", typ.String())
			in, err := os.ReadFile(base + ".f32")
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(base + ".bin")
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float32, len(in)/4)
			for i := range x {
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(in[4*i:]))
			}
			if len(x) < 8*typ.BlockElems() {
				t.Fatalf("only %d values: the vectors should hold random and edge blocks", len(x))
			}
			got := make([]byte, len(want))
			if err := gguf.Quantize(got, x, typ); err != nil {
				t.Fatal(err)
			}
			bb := typ.BlockBytes()
			bad := 0
			for i := range got {
				if got[i] != want[i] {
					if bad++; bad <= 5 {
						t.Errorf("byte %d (block %d, offset %d): got %#02x, want %#02x", i, i/bb, i%bb, got[i], want[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d bytes differ", bad, len(got))
			}
		})
	}
}

// TestQuantizeRoundTrip checks that Dequantize(Quantize(x)) is within half
// a quantization step of x: |x − q·d| ≤ d/2 for the exact d = amax/127,
// plus what rounding d to f16 moves the largest quant: 127 times half an
// f16 step (d·2⁻¹¹, or 2⁻²⁵ for a subnormal d).
func TestQuantizeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 1))
	const n = 32 * 64
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * math.Pow(10, float64(i/256%6-3)))
	}
	raw := make([]byte, 34*n/32)
	if err := gguf.Quantize(raw, x, gguf.Q8_0); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, n)
	if err := gguf.Dequantize(y, raw, gguf.Q8_0); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < n/32; b++ {
		var amax float64
		for _, v := range x[32*b : 32*b+32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		d := amax / 127
		bound := d/2 + 127*math.Max(d*math.Pow(2, -11), math.Pow(2, -25)) + 1e-7*amax
		for j := 32 * b; j < 32*b+32; j++ {
			if e := math.Abs(float64(x[j]) - float64(y[j])); e > bound {
				t.Fatalf("element %d: %v quantizes to %v, error %g > bound %g", j, x[j], y[j], e, bound)
			}
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	nan := float32(math.NaN())
	big := make([]float32, 32)
	big[7] = 9e6
	inf := make([]float32, 64)
	inf[40] = float32(math.Inf(-1))
	withNaN := make([]float32, 32)
	withNaN[3] = nan
	for _, tc := range []struct {
		typ  gguf.Type
		src  []float32
		dst  int
		want string
	}{
		{gguf.Q4_K, make([]float32, 256), 144, "type Q4_K is not supported (supported: [Q8_0])"},
		{gguf.Q8_0, make([]float32, 31), 34, "not a whole number of 32-element blocks"},
		{gguf.Q8_0, make([]float32, 32), 33, "33 bytes for 32 elements of Q8_0, want 34"},
		{gguf.Q8_0, withNaN, 34, "Q8_0 element 3: value NaN cannot be quantized"},
		{gguf.Q8_0, inf, 68, "Q8_0 element 40: value -Inf cannot be quantized"},
		{gguf.Q8_0, big, 34, "Q8_0 element 7: value 9e+06 is too large"},
	} {
		err := gguf.Quantize(make([]byte, tc.dst), tc.src, tc.typ)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Quantize(%s, %d elements, %d bytes) = %v, want an error containing %q", tc.typ, len(tc.src), tc.dst, err, tc.want)
		}
	}
}
