package runtime

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/x448/float16"
)

// RandomizeScales sets the f16 block scales of the whole blocks of type d
// in b (a block-quantized type; bytes short of a last whole block and
// plain types are left alone) to finite values of moderate size: |d| in
// [scale/8, scale) with a random sign, and dmin (Q4_K, Q5_K) in
// [scale/16, scale/2). The quants, sub-block scales and fifth bits are left
// as they are. Filling b with random bytes first gives random valid
// weights, which the kernel tests and benchmarks use: with scale = 2^-6 no
// element exceeds 64 in magnitude.
func (d DType) RandomizeScales(rng *rand.Rand, b []byte, scale float64) {
	f16 := func(lo float64, signed bool) uint16 {
		v := lo * (1 + 7*rng.Float64()) // [lo, 8·lo)
		if signed && rng.IntN(2) == 1 {
			v = -v
		}
		return float16.Fromfloat32(float32(v)).Bits()
	}
	if !d.IsQuantized() {
		return
	}
	bb := d.BlockBytes()
	for off := 0; off+bb <= len(b); off += bb {
		blk := b[off : off+bb]
		switch d {
		case Q8_0, Q4_0, Q5_0:
			binary.LittleEndian.PutUint16(blk, f16(scale/8, true))
		case Q4_K, Q5_K:
			binary.LittleEndian.PutUint16(blk, f16(scale/8, true))
			binary.LittleEndian.PutUint16(blk[2:], f16(scale/16, false))
		case Q6_K:
			binary.LittleEndian.PutUint16(blk[208:], f16(scale/8, true))
		}
	}
}
