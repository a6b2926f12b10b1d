package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// bmKPWCases are the shapes of TestBlockMapBlocksPerGroup: a ragged last
// block (nb = 3, one row pass of TR = 128), blocks of two row passes (B
// 160 > TR = 128, the last block of one pass), and more blocks than a
// group takes (BMG = 8 where NE ≥ 8: nb 11 with TR = 16, nb 10 with two row
// passes).
var bmKPWCases = []EstParams{
	{S: 300, B: 128, Hq: 2, Hkv: 1, D: 64},
	{S: 750, B: 160, Hq: 2, Hkv: 1, D: 64},
	{S: 170, B: 16, Hq: 2, Hkv: 2, D: 64},
	{S: 1450, B: 160, Hq: 2, Hkv: 1, D: 64},
}

// TestBlockMapBlocksPerGroup: the block map with kpw = 1, 2, 3, 5, 8, 9,
// nb and nb + 2 key blocks per workgroup, dense and CSR, on outputs poisoned
// with NaN, in every variant the device runs: kpw = 1 within estTol of the
// float64 reference, every other kpw equal to it bit for bit (each block's
// sums see the same additions in the same order), a head out of range NaN
// on and below the diagonal. The cooperative-matrix kernel runs with its
// K-tile prefetch (the default), and also without it at kpw = 1, 3, 8 and
// nb + 2, dense and CSR: the same bits.
func TestBlockMapBlocksPerGroup(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, p := range bmKPWCases {
		t.Run(caseName(p), func(t *testing.T) {
			qv, kv, q, k := estInputs(t, d, rng, p)
			lse, lse64 := qkLSE(t, d, qv, kv, p)
			nb := p.NB()
			valid := []int{1, 0}
			heads := uploadI32(t, d, []int32{1, 0, int32(p.Hq)})
			nh, nv := 3, len(valid)*nb*nb
			want := RefBlockMap(qv, kv, lse64, valid, p)
			// CSR: random causal subsets in a scrambled order, a column out
			// of range, an empty row.
			var rowPtr, cols []int32
			listed := make([]bool, nh*nb*nb)
			for x := 0; x < nh; x++ {
				for r := 0; r < nb; r++ {
					rowPtr = append(rowPtr, int32(len(cols)))
					if r == 1 {
						continue
					}
					for _, c := range rng.Perm(r + 1) {
						if c == r || rng.IntN(3) != 0 {
							cols = append(cols, int32(c))
							listed[(x*nb+r)*nb+c] = true
						}
					}
					if r == nb-1 {
						cols = append(cols, int32(nb))
					}
				}
				rowPtr = append(rowPtr, int32(len(cols)))
			}
			rp, ct := uploadI32(t, d, rowPtr), uploadI32(t, d, cols)
			variants := []string{"scalar"}
			if v, _, err := qkPick(d, "blockmap", "block map", p, ""); err == nil && v == "coopmat" {
				variants = append(variants, "coopmat")
			}
			for _, variant := range variants {
				runPF := func(kpw int, csr, noPrefetch bool) []float32 {
					out := empty(t, d, runtime.F32, nh*nb*nb)
					opRun(t, d, func(r *runtime.Recorder) error {
						if csr {
							return blockMapCSRKPW(r, variant, kpw, noPrefetch, out, q, k, lse, heads, rp, ct, p)
						}
						return blockMapKPW(r, variant, kpw, noPrefetch, out, q, k, lse, heads, p)
					}, out)
					return download(t, out)
				}
				run := func(kpw int, csr bool) []float32 { return runPF(kpw, csr, false) }
				base, basec := run(1, false), run(1, true)
				if e := gputest.RelErr(base[:nv], want); e > estTol {
					t.Errorf("%s kpw 1: relative error %.3g > %g", variant, e, estTol)
				}
				for r := 0; r < nb; r++ {
					for c := 0; c < nb; c++ {
						x := base[nv+r*nb+c]
						if (c > r && x != 0) || (c <= r && !math.IsNaN(float64(x))) {
							t.Fatalf("%s: out-of-range head: Â[%d,%d] = %v, want NaN on and below the diagonal, 0 above", variant, r, c, x)
						}
					}
				}
				for i := range basec {
					w := 0.0
					if listed[i] {
						w = float64(base[i])
					}
					if g := float64(basec[i]); !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
						t.Fatalf("%s CSR kpw 1: entry %d = %v, want %v (listed %v)", variant, i, g, w, listed[i])
					}
				}
				for _, kpw := range []int{2, 3, 5, 8, 9, nb, nb + 2} {
					for _, csr := range []bool{false, true} {
						got, w := run(kpw, csr), base
						if csr {
							w = basec
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
								t.Fatalf("%s kpw %d (csr %v): entry %d = %v, want kpw 1's %v", variant, kpw, csr, i, got[i], w[i])
							}
						}
					}
				}
				t.Logf("%s: kpw 1, 2, 3, 5, 8, 9, %d, %d agree bit for bit", variant, nb, nb+2)
				if variant != "coopmat" {
					continue
				}
				// Without the K-tile prefetch (SHAREPREFILL_EST_PREFETCH=off):
				// the same bits (only the load timing differs).
				for _, kpw := range []int{1, 3, 8, nb + 2} {
					for _, csr := range []bool{false, true} {
						got, w := runPF(kpw, csr, true), base
						if csr {
							w = basec
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
								t.Fatalf("coopmat without prefetch, kpw %d (csr %v): entry %d = %v, want the prefetching kpw 1's %v", kpw, csr, i, got[i], w[i])
							}
						}
					}
				}
				t.Logf("coopmat: without the K-tile prefetch, kpw 1, 3, 8, %d agree bit for bit", nb+2)
			}
		})
	}
}

// TestBlockMapBlocksPerGroupChoice: blockMapBlocksPerGroup keeps at least
// estMinGroups live workgroups where it gives more than one block each,
// stops at bmMaxBlocksPerGroup and stays in [1, max(nb, 1)];
// blockMapLiveGroups counts the workgroups with a block on or below the
// diagonal.
func TestBlockMapBlocksPerGroupChoice(t *testing.T) {
	for _, c := range []struct{ nb, nh, want int }{
		{64, 1, 8}, {64, 8, 8}, {16, 1, 1}, {16, 8, 5}, {32, 1, 2}, {1, 1, 1}, {0, 1, 1}, {2, 64, 1}, {2, 256, 2}, {1000, 1, 8},
	} {
		t.Run(fmt.Sprint(c.nb, "x", c.nh), func(t *testing.T) {
			k := blockMapBlocksPerGroup(c.nb, c.nh)
			if k != c.want {
				t.Errorf("kpw %d, want %d", k, c.want)
			}
			if k > 1 && c.nh*blockMapLiveGroups(c.nb, k) < estMinGroups {
				t.Errorf("kpw %d leaves %d live workgroups", k, c.nh*blockMapLiveGroups(c.nb, k))
			}
		})
	}
	for nb := 1; nb < 40; nb++ {
		for kpw := 1; kpw < nb+3; kpw++ {
			n := 0
			for x := 0; x < blockMapGroups(nb, kpw); x++ {
				for r := 0; r < nb; r++ {
					if x*kpw <= r {
						n++
					}
				}
			}
			if g := blockMapLiveGroups(nb, kpw); g != n {
				t.Fatalf("nb %d kpw %d: %d live workgroups, want %d", nb, kpw, g, n)
			}
		}
	}
	if g := (PlanParams{N: 8192, B: 128}).BlockMapGroups(); g != 8 {
		t.Errorf("BlockMapGroups at 8K tokens: %d, want 8", g)
	}
}
