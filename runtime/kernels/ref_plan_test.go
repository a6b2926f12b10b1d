package kernels

import (
	"math"
	"math/bits"
	"slices"
)

// Go references of the planning kernels (plan.go), in float64 where sums
// matter. They follow the planners of package share (the semantic
// reference; est_share_test.go and plan_share_test.go check the two agree)
// on flat buffers in the kernels' layouts. Bitmaps are []int32 words.

func setBit(b []int32, i int)      { b[i>>5] |= int32(uint32(1) << (i & 31)) }
func hasBit(b []int32, i int) bool { return uint32(b[i>>5])>>(i&31)&1 != 0 }
func planKey(x float32) float64    { return math.Max(float64(x), 0) }

// sortByPlanKey stably sorts the indices idx into x by descending planKey.
func sortByPlanKey(idx []int, x []float32) {
	slices.SortStableFunc(idx, func(a, b int) int {
		va, vb := planKey(x[a]), planKey(x[b])
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
}
func wordsOf(n int) int   { return (n + 31) / 32 }
func causalOf(nb int) int { return nb * (nb + 1) / 2 }

// RefTopKBits is the reference of TopKBits: share.TopKForced per row and
// vector with the forced prefix 0..Forced−1, as bitmaps [Rows, 2, Words].
// Negative entries count as 0.
func RefTopKBits(x0, x1 []float32, kbuf []int32, p TopKParams) []int32 {
	out := make([]int32, p.Rows*2*p.Words)
	for h := 0; h < p.Rows; h++ {
		for w := 0; w < 2; w++ {
			x := x0
			if w == 1 {
				x = x1
			}
			n := p.Len[w]
			k := p.K[w]
			if p.KFromBuf {
				k = int(kbuf[h*p.KStride+p.KOff+w])
			}
			k = min(max(k, 1), n)
			f := min(p.Forced[w], n)
			bits := out[(h*2+w)*p.Words : (h*2+w+1)*p.Words]
			for i := 0; i < f; i++ {
				setBit(bits, i)
			}
			idx := make([]int, 0, n-f)
			for i := f; i < n; i++ {
				idx = append(idx, i)
			}
			sortByPlanKey(idx, x[h*p.Stride:h*p.Stride+n])
			for _, i := range idx[:max(k-f, 0)] {
				setBit(bits, i)
			}
		}
	}
	return out
}

// jsd64 is share.JSD (nanCompat: share.JSDCompat) on float32 inputs.
func jsd64(p, q []float64, nanCompat bool) float64 {
	var s float64
	for i := range p {
		a, b := p[i], q[i]
		if nanCompat && (a == 0 || b == 0) {
			return math.NaN()
		}
		m := 0.5 * (a + b)
		if a > 0 {
			s += a * math.Log(a/m)
		}
		if b > 0 {
			s += b * math.Log(b/m)
		}
	}
	return math.Sqrt(math.Max(0.5*s, 0))
}

func f64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// RefPlanGates is the reference of PlanGates: the gates g0..g3 of every
// head in float64, NaN where not needed (or NaN by nanCompat).
func RefPlanGates(v, s, pooled []float32, cmap, meta []int32, refs []float32, p PlanParams) [][4]float64 {
	hq, nb := p.Hq, p.NB()
	out := make([][4]float64, hq)
	u := make([]float64, nb)
	for c := range u {
		u[c] = float64(min(p.B, p.N-c*p.B)) / float64(p.N)
	}
	for h := 0; h < hq; h++ {
		vh, sh := f64s(v[h*nb:(h+1)*nb]), f64s(s[h*nb:(h+1)*nb])
		g := [4]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		var ah []float64
		if p.UseQuery || p.Exclusion == 0 && p.ExclDist == 2 {
			ah = f64s(pooled[h*nb : (h+1)*nb])
		}
		if p.UseQuery {
			g[0] = jsd64(ah, vh, p.NaNCompat)
		}
		if p.Exclusion == 0 {
			x := [][]float64{vh, sh, ah}[p.ExclDist]
			g[1] = jsd64(x, u, p.NaNCompat)
		}
		if ci := cmap[p.Layer*hq+h]; ci >= 0 {
			if pl := meta[4*ci]; pl >= 0 && int(pl) < p.Layer {
				g[2] = jsd64(f64s(refs[int(ci)*2*nb:(int(ci)*2+1)*nb]), vh, p.NaNCompat)
				g[3] = jsd64(f64s(refs[(int(ci)*2+1)*nb:(int(ci)*2+2)*nb]), sh, p.NaNCompat)
			}
		}
		out[h] = g
	}
	return out
}

// PlanDecideRef holds the outputs of RefPlanDecide.
type PlanDecideRef struct {
	HPlan, Pivots, Indirect, Stats []int32 // stats: row Layer only, [Hq, PlanStatWords]
}

// RefPlanDecide is the reference of PlanDecide. gates are the words PlanGates
// wrote ([Hq, 8]); meta and refs are updated in place like the kernel does.
func RefPlanDecide(gates, counts, cmap []int32, v, s []float32, meta []int32, refs []float32, p PlanParams) PlanDecideRef {
	hq, nb := p.Hq, p.NB()
	if p.Layer == 0 {
		for k := 0; k < p.K; k++ {
			copy(meta[4*k:4*k+4], []int32{-1, -1, 0, 0})
		}
	}
	out := PlanDecideRef{HPlan: make([]int32, 4*hq), Pivots: make([]int32, p.Chunks*p.CapPad),
		Indirect: make([]int32, p.Chunks*PlanIndirectWords), Stats: make([]int32, hq*PlanStatWords)}
	budget := func(k int32) int32 { return min(max(k/int32(p.B)+1, int32(p.BudLo)), int32(p.BudHi)) }
	floor := int32(min(p.BudLo, p.BudHi))
	gate := func(h, i int) (float32, bool) {
		return math.Float32frombits(uint32(gates[8*h+i])), uint32(gates[8*h+4])>>i&1 == 0
	}
	var list []int32
	for h := 0; h < hq; h++ {
		ci := cmap[p.Layer*hq+h]
		method, reason, mode, flags := int32(PlanMethodVerticalSlash), int32(PlanReasonNone), int32(PlanModeVS), int32(0)
		var nv, ns int32
		pivL, pivH := int32(-1), int32(-1)
		switch {
		case p.DenseAll:
			method, reason, mode = PlanMethodDense, PlanReasonDenseBelow, PlanModeAll
		default:
			qa := false
			if p.UseQuery {
				flags |= 1
				g, ok := gate(h, 0)
				qa = ok && g < p.TauQ
			}
			if qa {
				method, mode, nv, ns = PlanMethodQueryAware, PlanModeQueryAware, floor, floor
				break
			}
			nv, ns = budget(counts[2*h]), budget(counts[2*h+1])
			if ci < 0 {
				reason = PlanReasonNoCluster
				break
			}
			if cmap[p.NumLayers*hq+int(ci)] == 0 {
				reason = PlanReasonNotShared
				break
			}
			excluded := false
			if p.Exclusion == 0 {
				flags |= 2
				g, ok := gate(h, 1)
				excluded = ok && g > p.Delta
			}
			e := meta[4*ci : 4*ci+4]
			switch {
			case excluded:
				method, reason = PlanMethodExcluded, PlanReasonHighlySparse
			case e[0] < 0:
				method, reason, mode = PlanMethodPivot, PlanReasonFirstEligible, PlanModeAll
				pivL, pivH = int32(p.Layer), int32(h)
				copy(e, []int32{int32(p.Layer), int32(h), 0, 0})
				list = append(list, int32(h))
				copy(refs[int(ci)*2*nb:], v[h*nb:(h+1)*nb])
				copy(refs[(int(ci)*2+1)*nb:], s[h*nb:(h+1)*nb])
			case int(e[0]) == p.Layer:
				reason = PlanReasonSameLayer
			default:
				flags |= 12
				pivL, pivH = e[0], e[1]
				gv, okv := gate(h, 2)
				gs, oks := gate(h, 3)
				switch {
				case !(okv && gv < p.TauS):
					reason = PlanReasonVerticalGate
				case !(oks && gs < p.TauS):
					reason = PlanReasonSlashGate
				case p.Exclusion == 1 && !(math.Float32frombits(uint32(e[3])) < p.TauF):
					reason = PlanReasonVSRatio
				default:
					method, reason, mode, nv, ns = PlanMethodShared, PlanReasonShares, PlanModeShared, floor, floor
				}
			}
		}
		copy(out.HPlan[4*h:], []int32{mode, ci, nv, ns})
		st := out.Stats[h*PlanStatWords : (h+1)*PlanStatWords]
		copy(st, []int32{method, reason, nv, ns, 0, pivL, pivH, flags})
		for i := 0; i < 4; i++ {
			st[PlanStatGate0+i] = gates[8*h+i]
		}
		st[PlanStatCluster] = ci
		if p.DenseAll {
			st[PlanStatCluster] = -1
		}
	}
	for i := 0; i < p.Chunks; i++ {
		z := int32(min(max(len(list)-i*p.Cap, 0), p.Cap))
		for j := 0; j < p.CapPad; j++ {
			out.Pivots[i*p.CapPad+j] = -1
			if int32(j) < z {
				out.Pivots[i*p.CapPad+j] = list[i*p.Cap+j]
			}
		}
		b, g := int32(nb), int32(p.BlockMapGroups())
		copy(out.Indirect[i*PlanIndirectWords:], []int32{g, b, z, b, z, 1, z, 1, 1})
	}
	return out
}

// fixOf is plan_cover's fixed-point value of an entry: ⌊key·2^shift⌋ with
// negative entries as 0 and entries clamped to 2. Sums of these are exact, so
// a cut does not depend on the order of summation.
func fixOf(x float32, shift uint32) uint64 {
	return uint64(math.Floor(math.Ldexp(min(planKey(x), 2), int(shift))))
}

// refCoverRow is share.Cover on one row, in plan_cover's exact fixed-point
// arithmetic: the smallest prefix of the positive entries in the order
// (value descending, index ascending) whose sum reaches ⌊Σ·G/2^64⌋ with
// G = γ·2^64, the crossing entry included; γ ≥ 1 keeps every positive entry.
// share.Cover sums in float64: the two agree except where a prefix sum lies
// within float64 rounding of γ·Σ (TestPlanRefsMatchShare).
func refCoverRow(x []float32, gamma float64, shift uint32) []int {
	var total uint64
	for _, e := range x {
		total += fixOf(e, shift)
	}
	positive := func() []int {
		var out []int
		for j, e := range x {
			if planKey(e) > 0 {
				out = append(out, j)
			}
		}
		return out
	}
	if gamma >= 1 {
		return positive()
	}
	if total == 0 {
		return nil
	}
	target, _ := bits.Mul64(total, gammaFrac(gamma))
	target = max(target, 1)
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sortByPlanKey(idx, x)
	var sum uint64
	for i, j := range idx {
		if !(planKey(x[j]) > 0) {
			break
		}
		sum += fixOf(x[j], shift)
		if sum >= target {
			return idx[:i+1]
		}
	}
	return positive()
}

// RefPlanQueryAwareCut is the reference of PlanQueryAwareCut: the bitmaps
// [Hq, nb, nbw] of share.QueryAwareCut for query-aware heads (others stay 0).
func RefPlanQueryAwareCut(m []float32, hplan []int32, p PlanParams) []int32 {
	hq, nb, nbw := p.Hq, p.NB(), p.NBW()
	out := make([]int32, hq*nb*nbw)
	type ent struct {
		v float64
		i int
	}
	for h := 0; h < hq; h++ {
		if hplan[4*h] != PlanModeQueryAware {
			continue
		}
		bits := out[h*nb*nbw : (h+1)*nb*nbw]
		es := make([]ent, 0, causalOf(nb))
		for r := 0; r < nb; r++ {
			for c := 0; c <= r; c++ {
				es = append(es, ent{planKey(m[(h*nb+r)*nb+c]), r*nb + c})
			}
		}
		if p.Gamma < 1 {
			slices.SortStableFunc(es, func(a, b ent) int {
				switch {
				case a.v > b.v:
					return -1
				case a.v < b.v:
					return 1
				}
				return a.i - b.i
			})
		}
		// The limit ⌊γ·nb·2^shift⌋ and exact fixed-point sums, as in
		// plan_cover (share.QueryAwareCut sums in float64).
		sh := p.shift()
		limit := uint64(math.MaxUint64 >> 1)
		if l := math.Floor(math.Ldexp(p.Gamma*float64(nb), int(sh))); l < float64(limit) {
			limit = uint64(l)
		}
		var sum uint64
		for _, e := range es {
			sum += fixOf(float32(e.v), sh)
			if p.Gamma < 1 && sum > limit {
				break
			}
			r, c := e.i/nb, e.i%nb
			setBit(bits[r*nbw:(r+1)*nbw], c)
		}
	}
	return out
}

// RefPlanRowCover is the reference of PlanRowCover for z filled slots: the
// pattern rows of each pivot's cluster (other clusters stay as given) and
// rowstats [Cap, nb, 4] as float64 (exact, over-count, blocks, 0).
func RefPlanRowCover(maps []float32, hplan, pivots, vsbits, pattern []int32, z int, p PlanParams) (rowstats []float64) {
	nb, nbw := p.NB(), p.NBW()
	rowstats = make([]float64, p.Cap*nb*4)
	for x := 0; x < z; x++ {
		h := int(pivots[x])
		if h < 0 {
			continue
		}
		ci := int(hplan[4*h+1])
		cols, offs := vsbits[(2*h)*nbw:(2*h+1)*nbw], vsbits[(2*h+1)*nbw:(2*h+2)*nbw]
		a00 := float64(maps[x*nb*nb])
		for r := 0; r < nb; r++ {
			row := maps[(x*nb+r)*nb : (x*nb+r+1)*nb]
			pat := pattern[(ci*nb+r)*nbw : (ci*nb+r+1)*nbw]
			clear(pat)
			sel := refCoverRow(row[:r+1], p.Gamma, p.shift())
			for _, c := range sel {
				setBit(pat, c)
			}
			var exact, compat float64
			for c := 0; c < nb; c++ {
				if hasBit(cols, c) {
					if c <= r {
						compat += float64(row[c])
					} else {
						compat += a00
					}
				}
				if hasBit(offs, c) {
					if c <= r {
						compat += float64(row[r-c])
					} else {
						compat += a00
					}
				}
				if c <= r && (hasBit(cols, c) || hasBit(offs, r-c)) {
					exact += float64(row[c])
				}
			}
			copy(rowstats[(x*nb+r)*4:], []float64{exact, compat, float64(len(sel)), 0})
		}
	}
	return rowstats
}

// RefPlanUnion is the reference of PlanUnion: rowbits [Hq, nb, nbw] (words
// past r/32 are 0) and rowcnt [Hq·nb].
func RefPlanUnion(hplan, vsbits, pattern, qabits []int32, p UnionParams) (rowbits, rowcnt []int32) {
	hq, nb := p.Hq, p.NB
	nbw := wordsOf(nb)
	rowbits = make([]int32, hq*nb*nbw)
	rowcnt = make([]int32, hq*nb)
	for h := 0; h < hq; h++ {
		mode := int32(p.Mode)
		if p.Mode < 0 {
			mode = hplan[4*h]
		}
		ci := int(hplan[4*h+1])
		cols := vsbits[(h*p.VSRows)*nbw : (h*p.VSRows+1)*nbw]
		for r := 0; r < nb; r++ {
			offRow := 1
			if p.VSRows == 3 && r == nb-1 {
				offRow = 2
			}
			offs := vsbits[(h*p.VSRows+offRow)*nbw : (h*p.VSRows+offRow+1)*nbw]
			bits := rowbits[(h*nb+r)*nbw : (h*nb+r+1)*nbw]
			for c := 0; c <= r; c++ {
				on := mode == PlanModeAll || hasBit(cols, c) || hasBit(offs, r-c)
				switch mode {
				case PlanModeShared:
					on = on || hasBit(pattern[(ci*nb+r)*nbw:(ci*nb+r+1)*nbw], c)
				case PlanModeQueryAware:
					if !p.NoQueryAware {
						on = on || hasBit(qabits[(h*nb+r)*nbw:(h*nb+r+1)*nbw], c)
					}
				}
				if on {
					setBit(bits, c)
					rowcnt[h*nb+r]++
				}
			}
		}
	}
	return rowbits, rowcnt
}

// RefPlanCSR is the reference of PlanScan and PlanCompact: the CSR row
// pointers [Hq·nb+1] and columns of rowbits [Hq, nb, nbw].
func RefPlanCSR(rowbits []int32, hq, nb int) (rowPtr, cols []int32) {
	nbw := wordsOf(nb)
	rowPtr = make([]int32, hq*nb+1)
	for h := 0; h < hq; h++ {
		for r := 0; r < nb; r++ {
			rowPtr[h*nb+r] = int32(len(cols))
			bits := rowbits[(h*nb+r)*nbw : (h*nb+r+1)*nbw]
			for c := 0; c <= r; c++ {
				if hasBit(bits, c) {
					cols = append(cols, int32(c))
				}
			}
		}
	}
	rowPtr[hq*nb] = int32(len(cols))
	return rowPtr, cols
}

// RefPlanVSBlocks is the reference of PlanVSBlocks (share.MapVSToBlocks):
// vsbits [Hq, 3, nbw] from token bitmaps tokbits [Hq, 2, ⌈n/32⌉].
func RefPlanVSBlocks(tokbits []int32, hq, n, b, tile int) []int32 {
	nb := (n + b - 1) / b
	nbw, nwt := wordsOf(nb), wordsOf(n)
	t := min(tile, b)
	out := make([]int32, hq*3*nbw)
	for h := 0; h < hq; h++ {
		cols, offs := tokbits[(2*h)*nwt:(2*h+1)*nwt], tokbits[(2*h+1)*nwt:(2*h+2)*nwt]
		any := func(lo, hi int) bool {
			for o := max(lo, 0); o <= min(hi, n-1); o++ {
				if hasBit(offs, o) {
					return true
				}
			}
			return false
		}
		diag := func(d, rows int) bool {
			for a := 0; a < rows; a += t {
				e := min(a+t, rows)
				if any(d*b+a-b+1, d*b+e-1) {
					return true
				}
			}
			return false
		}
		last := n - (nb-1)*b
		for c := 0; c < nb; c++ {
			for j := c * b; j < min(c*b+b, n); j++ {
				if hasBit(cols, j) {
					setBit(out[(3*h)*nbw:(3*h+1)*nbw], c)
					break
				}
			}
			if diag(c, b) {
				setBit(out[(3*h+1)*nbw:(3*h+2)*nbw], c)
			}
			if diag(c, last) {
				setBit(out[(3*h+2)*nbw:(3*h+3)*nbw], c)
			}
		}
	}
	return out
}
