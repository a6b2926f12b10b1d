package runtime_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/x448/float16"
)

// TestRandomizeScales: every whole block's f16 scales land in their ranges
// (d with either sign, dmin positive), the bytes past the last whole block
// and plain types are left alone.
func TestRandomizeScales(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const scale = 1.0 / 64
	half := func(b []byte) float64 { return float64(float16.Frombits(binary.LittleEndian.Uint16(b)).Float32()) }
	for _, dt := range runtime.QuantizedTypes() {
		bb := dt.BlockBytes()
		b := make([]byte, 32*bb+3)
		for i := range b {
			b[i] = 0xff // NaN scales until set
		}
		dt.RandomizeScales(rng, b, scale)
		dOff := 0
		if dt == runtime.Q6_K {
			dOff = 208
		}
		neg := false
		for off := 0; off+bb <= len(b); off += bb {
			d := half(b[off+dOff:])
			if a := math.Abs(d); !(a >= scale/8*0.999 && a < scale*1.001) {
				t.Errorf("%s block %d: d = %g, want |d| in [%g, %g)", dt, off/bb, d, scale/8, scale)
			}
			neg = neg || d < 0
			if dt == runtime.Q4_K || dt == runtime.Q5_K {
				if m := half(b[off+2:]); !(m >= scale/16*0.999 && m < scale/2*1.001) {
					t.Errorf("%s block %d: dmin = %g, want [%g, %g)", dt, off/bb, m, scale/16, scale/2)
				}
			}
		}
		if !neg {
			t.Errorf("%s: no negative d in 32 blocks", dt)
		}
		for i, v := range b[32*bb:] {
			if v != 0xff {
				t.Errorf("%s: byte %d past the last whole block changed", dt, 32*bb+i)
			}
		}
	}
	plain := []byte{1, 2, 3, 4}
	runtime.F16.RandomizeScales(rng, plain, scale)
	if plain[0] != 1 || plain[3] != 4 {
		t.Errorf("f16 bytes changed: %v", plain)
	}
}
