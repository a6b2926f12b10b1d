package calib

import (
	"fmt"
	"math"
)

// DefaultGrid is the default side of the pooled map. 32×32 keeps the
// autoencoder cheap in pure Go (528 lower-triangle inputs, about 0.6 M
// multiply-adds per map and layer pass) while preserving the structures that
// distinguish heads: the sink column, local windows of a few percent of the
// context, vertical stripes and slash bands (one grid cell is 1/32 of the
// prompt, 1K tokens at 32K).
const DefaultGrid = 32

// Scale names how a pooled map is scaled after pooling.
const (
	// ScaleMax divides by the maximum cell so that values lie in [0,1]
	// (docs/algorithm.md#pooling). The default.
	ScaleMax = "max"
	// ScaleNone keeps the area-averaged values unchanged.
	ScaleNone = "none"
)

// PoolOptions controls Pool.
type PoolOptions struct {
	// Grid is the side of the pooled map; 0 means DefaultGrid.
	Grid int
	// Scale is ScaleMax (default when empty) or ScaleNone.
	Scale string
	// Sqrt applies √x to every cell before scaling, which emphasises small
	// masses (docs/algorithm.md#pooling; our addition).
	Sqrt bool
}

func (p PoolOptions) withDefaults() PoolOptions {
	if p.Grid == 0 {
		p.Grid = DefaultGrid
	}
	if p.Scale == "" {
		p.Scale = ScaleMax
	}
	return p
}

func (p PoolOptions) validate() error {
	if p.Grid < 1 {
		return fmt.Errorf("pool grid %d: want ≥ 1", p.Grid)
	}
	if p.Scale != ScaleMax && p.Scale != ScaleNone {
		return fmt.Errorf("pool scale %q: want %q or %q", p.Scale, ScaleMax, ScaleNone)
	}
	return nil
}

// overlap is one source index and the fraction of it that falls in a target
// cell.
type overlap struct {
	src int
	w   float64
}

// areaWeights returns, for every target cell t of a length-n axis resampled to
// g cells, the source indices that overlap cell t and the overlap length
// measured in source units. Cell t covers [t·n/g, (t+1)·n/g).
func areaWeights(n, g int) [][]overlap {
	out := make([][]overlap, g)
	for t := range g {
		// Work in units of 1/g source blocks so the arithmetic is exact.
		lo, hi := t*n, (t+1)*n // in source-units × g
		for s := lo / g; s*g < hi && s < n; s++ {
			a, b := max(lo, s*g), min(hi, (s+1)*g)
			if b > a {
				out[t] = append(out[t], overlap{s, float64(b-a) / float64(g)})
			}
		}
	}
	return out
}

// Pool resamples the nb×nb block map m to a grid×grid map by area averaging:
// cell (i,j) is the mean of m over the square [i·nb/g,(i+1)·nb/g) ×
// [j·nb/g,(j+1)·nb/g), with fractional overlaps weighted by area. This works
// for nb larger or smaller than the grid and preserves total mass up to the
// factor (g/nb)². Cells strictly above the diagonal are then set to zero
// (only the lower triangle is kept), the optional √x is applied, and the
// map is scaled by its maximum (ScaleMax) into [0,1]. An all-zero map stays
// zero. The result is row-major, grid×grid.
func Pool(m []float32, nb int, opts PoolOptions) ([]float64, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if nb < 1 || len(m) != nb*nb {
		return nil, fmt.Errorf("pool: %d values for nb = %d, want nb² values", len(m), nb)
	}
	g := opts.Grid
	w := areaWeights(nb, g)
	// Invert: for every source index, the cells it contributes to.
	inv := make([][]overlap, nb)
	for t, ws := range w {
		for _, o := range ws {
			inv[o.src] = append(inv[o.src], overlap{t, o.w})
		}
	}
	out := make([]float64, g*g)
	for r := range nb {
		row := m[r*nb : (r+1)*nb]
		for _, ri := range inv[r] {
			dst := out[ri.src*g : (ri.src+1)*g]
			for c, v := range row {
				if v == 0 {
					continue
				}
				x := ri.w * float64(v)
				for _, cj := range inv[c] {
					dst[cj.src] += x * cj.w
				}
			}
		}
	}
	area := float64(nb) * float64(nb) / (float64(g) * float64(g))
	peak := 0.0
	for i := range g {
		for j := range g {
			k := i*g + j
			if j > i {
				out[k] = 0
				continue
			}
			v := out[k] / area
			if opts.Sqrt {
				v = math.Sqrt(v)
			}
			out[k] = v
			peak = max(peak, v)
		}
	}
	if opts.Scale == ScaleMax && peak > 0 {
		for k := range out {
			out[k] /= peak
		}
	}
	return out, nil
}

// lowerTriangle packs the lower triangle (diagonal included) of a row-major
// g×g map into a vector of length g(g+1)/2, row by row. Pooled maps are zero
// above the diagonal, so the packed vector loses nothing and halves the
// autoencoder's input.
func lowerTriangle(p []float64, g int) []float64 {
	out := make([]float64, 0, g*(g+1)/2)
	for i := range g {
		out = append(out, p[i*g:i*g+i+1]...)
	}
	return out
}
