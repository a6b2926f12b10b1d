package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// f16Overflow is the smallest magnitude that rounds to ±Inf in f16 (round to
// nearest even: 65504 is the largest finite value, 65520 the midpoint to the
// next power of two).
const f16Overflow = 65520

// checkFinite returns an error naming the tensor and the first offending
// element when t holds a NaN or an infinity, or — with toF16, for weights
// stored as f16 on the device — a value that becomes infinite in f16.
func checkFinite(t TensorInfo, toF16 bool) error {
	es := t.DType.Size()
	n := len(t.Data) / es
	bad := func(i int) (float64, bool) {
		var x float64
		switch t.DType {
		case F16:
			v := binary.LittleEndian.Uint16(t.Data[2*i:])
			if v&0x7c00 != 0x7c00 {
				return 0, false
			}
			x = float64(f16Special(v))
		case BF16:
			v := binary.LittleEndian.Uint16(t.Data[2*i:])
			x = float64(math.Float32frombits(uint32(v) << 16))
		case F32:
			x = float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])))
		default:
			return 0, false
		}
		if math.IsNaN(x) || math.IsInf(x, 0) || (toF16 && math.Abs(x) >= f16Overflow) {
			return x, true
		}
		return 0, false
	}
	// Scan in parallel: a large model has gigabytes of weights.
	const chunk = 1 << 20
	parts := (n + chunk - 1) / chunk
	first := make([]int, parts)
	var wg sync.WaitGroup
	next := make(chan int, parts)
	for p := 0; p < parts; p++ {
		next <- p
	}
	close(next)
	for w := 0; w < min(parts, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				first[p] = -1
				for i := p * chunk; i < min(n, (p+1)*chunk); i++ {
					if _, b := bad(i); b {
						first[p] = i
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, i := range first {
		if i < 0 {
			continue
		}
		x, _ := bad(i)
		what := "is not finite"
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			what = "overflows f16 (|x| ≥ 65520), the dtype weights are stored in on the device"
		}
		return fmt.Errorf("%s: tensor %q: element %d = %v %s (AllowNonFinite skips this check)", t.File, t.Name, i, x, what)
	}
	return nil
}

// f16Special decodes an f16 with an all-ones exponent (±Inf or NaN).
func f16Special(v uint16) float32 {
	if v&0x3ff != 0 {
		return float32(math.NaN())
	}
	if v&0x8000 != 0 {
		return float32(math.Inf(-1))
	}
	return float32(math.Inf(1))
}
