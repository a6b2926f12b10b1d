package quantref

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
)

// TestFormatFactsMatchGGUF checks runtime's block facts (what the kernels
// are told) against model/gguf's (what the loader and the dequantizers
// use), and the names.
func TestFormatFactsMatchGGUF(t *testing.T) {
	for _, dt := range runtime.QuantizedTypes() {
		gt, err := GGUFType(dt)
		if err != nil {
			t.Fatal(err)
		}
		if dt.BlockElems() != gt.BlockElems() || dt.BlockBytes() != gt.BlockBytes() {
			t.Errorf("%s: runtime blocks of %d elements in %d bytes, gguf %s %d in %d",
				dt, dt.BlockElems(), dt.BlockBytes(), gt, gt.BlockElems(), gt.BlockBytes())
		}
		if dt.String() != strings.ToLower(gt.String()) || !gt.CanDequantize() {
			t.Errorf("%s: gguf type %s (dequantize %v)", dt, gt, gt.CanDequantize())
		}
	}
	if _, err := GGUFType(runtime.F16); err == nil {
		t.Error("GGUFType(f16): no error")
	}
}

// TestMatMulByHand checks MatMul on a Q8_0 block worked out by hand: d = 0.5,
// q = 1…32, x = 1 and 2 alternating: y = 0.5·Σ x·q + bias.
func TestMatMulByHand(t *testing.T) {
	blk := make([]byte, 34)
	binary.LittleEndian.PutUint16(blk, 0x3800) // f16 0.5
	for i := range 32 {
		blk[2+i] = byte(int8(i + 1))
	}
	blk[2+31] = byte(0xe0) // q[31] = -32
	x := make([]float32, 32)
	var want float64
	for i := range x {
		x[i] = float32(1 + i%2)
		q := float64(i + 1)
		if i == 31 {
			q = -32
		}
		want += 0.5 * q * float64(x[i])
	}
	y, err := MatMul(x, blk, runtime.Q8_0, []float32{0.25}, 1, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	if y[0] != want+0.25 {
		t.Errorf("y = %v, want %v", y[0], want+0.25)
	}
	if _, err := MatMul(x[:31], blk, runtime.Q8_0, nil, 1, 1, 32); err == nil {
		t.Error("MatMul with a short x: no error")
	}
}

// TestRandomBlocks checks that random blocks decode to finite values within
// the stated bound, not all zero, for every type.
func TestRandomBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dt := range runtime.QuantizedTypes() {
		const scale = 1.0 / 64
		b, err := RandomBlocks(rng, dt, 5, 2*dt.BlockElems(), scale)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Dequantize(dt, b, 5*2*dt.BlockElems())
		if err != nil {
			t.Fatal(err)
		}
		nonzero := 0
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.Abs(float64(x)) > 64 {
				t.Fatalf("%s: element %v out of [-64, 64]", dt, x)
			}
			if x != 0 {
				nonzero++
			}
		}
		if nonzero < len(v)/2 {
			t.Errorf("%s: only %d of %d elements non-zero", dt, nonzero, len(v))
		}
	}
	if _, err := RandomBlocks(rng, runtime.Q4_K, 1, 100, 1); err == nil {
		t.Error("RandomBlocks with rows of 100 q4_k elements: no error")
	}
}
