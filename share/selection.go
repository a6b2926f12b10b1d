package share

import (
	"math"
	"slices"
)

// JSD returns the square-root Jensen–Shannon divergence
// √(½KL(p‖m) + ½KL(q‖m)), m = (p+q)/2, with the natural log, as in the
// release's square_root_js_divergence. The inputs are used as given (not
// renormalised). Terms with a zero probability contribute 0 (0·log 0 = 0),
// so the result lies in [0, √ln2] for distributions. Slices of different
// length give NaN.
func JSD(p, q []float64) float64 { return jsd(p, q, false) }

// JSDCompat is the release JSD without an epsilon: any zero entry in p or q
// yields NaN (0·log 0 evaluates to NaN), so every gate comparison with the
// result is false (docs/algorithm.md#js-gates).
func JSDCompat(p, q []float64) float64 { return jsd(p, q, true) }

func jsd(p, q []float64, nanCompat bool) float64 {
	if len(p) != len(q) {
		return math.NaN()
	}
	var s float64
	for i := range p {
		a, b := p[i], q[i]
		m := 0.5 * (a + b)
		if nanCompat && (a == 0 || b == 0) {
			return math.NaN()
		}
		if a > 0 {
			s += a * math.Log(a/m)
		}
		if b > 0 {
			s += b * math.Log(b/m)
		}
	}
	s *= 0.5
	if s < 0 { // rounding
		s = 0
	}
	return math.Sqrt(s)
}

// jsdCfg applies the config's NaN-compat mode.
func (c *Config) jsd(p, q []float64) float64 { return jsd(p, q, c.NaNCompat) }

// UniformBlocks returns U: the token-uniform distribution pooled to blocks,
// U[c] = (tokens in block c)/n (docs/algorithm.md#notation).
func UniformBlocks(n, blockSize int) []float64 {
	nb := NumBlocks(n, blockSize)
	u := make([]float64, nb)
	for c := range u {
		lo := c * blockSize
		hi := min(lo+blockSize, n)
		u[c] = float64(hi-lo) / float64(n)
	}
	return u
}

// sortedDesc returns the indices of x in descending value order; ties keep
// the lower index first (stable).
func sortedDesc(x []float64) []int {
	type ent struct {
		v float64
		i int
	}
	es := make([]ent, len(x))
	for i, v := range x {
		es[i] = ent{v, i}
	}
	slices.SortFunc(es, func(a, b ent) int {
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return a.i - b.i
	})
	idx := make([]int, len(x))
	for i, e := range es {
		idx[i] = e.i
	}
	return idx
}

// rankEnt is an entry of the selection order: value descending, ties by
// lower index.
type rankEnt struct {
	v float64
	i int
}

func (a rankEnt) before(b rankEnt) bool {
	if a.v != b.v {
		return a.v > b.v
	}
	return a.i < b.i
}

// selectFirst reorders es so that es[:m] hold the m first entries of the
// order (in no particular order), in expected O(len(es)).
func selectFirst(es []rankEnt, m int) {
	lo, hi := 0, len(es)-1
	for lo < hi && m > lo && m <= hi {
		mid := lo + (hi-lo)/2
		// Median of three as the pivot, moved to hi.
		if es[mid].before(es[lo]) {
			es[mid], es[lo] = es[lo], es[mid]
		}
		if es[hi].before(es[lo]) {
			es[hi], es[lo] = es[lo], es[hi]
		}
		if es[mid].before(es[hi]) {
			es[mid], es[hi] = es[hi], es[mid]
		}
		p := es[hi]
		st := lo
		for i := lo; i < hi; i++ {
			if es[i].before(p) {
				es[i], es[st] = es[st], es[i]
				st++
			}
		}
		es[st], es[hi] = es[hi], es[st]
		if st < m {
			lo = st + 1
		} else {
			hi = st - 1
		}
	}
}

// TokenBudget returns the token count k of docs/algorithm.md#budgets for a
// token-level distribution x (v or s, summing to 1): sort x descending,
// count the entries whose running sum stays ≤ γ, and add 1 for the entry
// that crosses γ. The result is clamped to len(x) (only reachable when the
// whole vector sums to ≤ γ; the block budget is clamped to nb anyway).
func TokenBudget(x []float64, gamma float64) int {
	v := slices.Clone(x)
	slices.SortFunc(v, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	var s float64
	k := 0
	for _, e := range v {
		s += e
		if s > gamma {
			break
		}
		k++
	}
	return min(k+1, len(x))
}

// Cover returns cover(x, γ): the shortest prefix of x's indices sorted by
// descending value whose sum reaches γ·Σx, including the crossing entry
// (docs/algorithm.md#pivot-map). The threshold is relative to the actual sum;
// if rounding keeps the running sum below it, every index with
// nonzero mass is returned. The result is sorted ascending.
func Cover(x []float64, gamma float64) []int {
	var total float64
	for _, e := range x {
		total += e
	}
	if !(total > 0) {
		return nil
	}
	target := gamma * total
	idx := sortedDesc(x)
	var s float64
	for i, j := range idx {
		if x[j] <= 0 {
			break
		}
		s += x[j]
		if s >= target {
			out := slices.Clone(idx[:i+1])
			slices.Sort(out)
			return out
		}
	}
	// Fell short through rounding: keep every block with nonzero mass.
	var out []int
	for j, e := range x {
		if e > 0 {
			out = append(out, j)
		}
	}
	return out
}

// RowCover builds the pivot pattern P_c from an exact block map:
// P_c[r] = Cover(Â[r, 0..r], γ) for every row r (docs/algorithm.md#pivot-map).
func RowCover(m *BlockMap, gamma float64) *BlockList {
	b := newListBuilderCap(m.NB, CausalBlocks(m.NB)/2)
	for r := 0; r < m.NB; r++ {
		for _, c := range Cover(m.Row(r)[:r+1], gamma) {
			b.add(r, c)
		}
		b.endRow()
	}
	return b.finish()
}

// QueryAwareCut is the global cut of docs/algorithm.md#query-aware-selection
// on a pooled block
// map M (row softmax, block-causal): flatten M, sort descending and keep
// entries while the global running sum stays ≤ γ·nb; the crossing entry is
// excluded. Only causal entries are returned. [project] For γ ≥ 1 every
// causal block is kept: in exact arithmetic the running sum never exceeds nb,
// and this keeps float rounding from dropping the last entries.
func QueryAwareCut(m *BlockMap, gamma float64) *BlockList {
	nb := m.NB
	if gamma >= 1 {
		return DenseList(nb)
	}
	// Sort the causal entries by (value descending, flat index ascending);
	// non-causal entries are 0 and sort after every positive entry, so they
	// can only matter when the positive mass never crosses, in which case
	// they are dropped as non-causal anyway.
	type ent struct {
		v float64
		i int32
	}
	es := make([]ent, 0, CausalBlocks(nb))
	for r := 0; r < nb; r++ {
		for c := 0; c <= r; c++ {
			es = append(es, ent{m.Data[r*nb+c], int32(r*nb + c)})
		}
	}
	slices.SortFunc(es, func(a, b ent) int {
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return int(a.i - b.i)
	})
	limit := gamma * float64(nb)
	mask := make([]bool, nb*nb)
	var s float64
	for _, e := range es {
		s += e.v
		if s > limit {
			break
		}
		mask[e.i] = true
	}
	return ListFromMask(nb, mask)
}

// TopKForced returns the indices of the k largest entries of x with the
// forced indices always included (forced entries count towards k; if there
// are more forced entries than k, all forced entries are returned). Ties
// prefer the lower index. The result is sorted ascending. k < 1 is treated
// as 1 so that the forced sink column and diagonal are never lost.
func TopKForced(x []float64, k int, forced ...int) []int {
	k = max(k, 1)
	k = min(k, len(x))
	in := make([]bool, len(x))
	var out []int
	for _, f := range forced {
		if f >= 0 && f < len(x) && !in[f] {
			in[f] = true
			out = append(out, f)
		}
	}
	if need := k - len(out); need > 0 {
		// The first `need` non-forced entries of the order, selected in
		// expected O(n) (no sort of x: the result is sorted by index).
		cand := make([]rankEnt, 0, len(x)-len(out))
		for i, v := range x {
			if !in[i] {
				cand = append(cand, rankEnt{v, i})
			}
		}
		selectFirst(cand, need)
		for _, e := range cand[:need] {
			out = append(out, e.i)
		}
	}
	slices.Sort(out)
	return out
}

// VSSet is a vertical-slash selection on the block grid: Cols are key-block
// columns (column c stands for {(r, c) : r ≥ c}) and Offs are block offsets
// (offset o stands for {(r, r−o) : r ≥ o}). Both are sorted ascending.
type VSSet struct {
	Cols []int `json:"cols"`
	Offs []int `json:"offs"`
}

// SelectVS picks the top-nv columns of V (column 0 forced) and the top-ns
// offsets of S (offset 0 forced), docs/algorithm.md#budgets.
func SelectVS(vBlocks, sBlocks []float64, nv, ns int) VSSet {
	return VSSet{Cols: TopKForced(vBlocks, nv, 0), Offs: TopKForced(sBlocks, ns, 0)}
}

// addRow adds the VS blocks of row r to the builder in ascending column
// order (a merge of the columns ≤ r with the slash columns r−o, o ≤ r), so
// that a row holding only VS blocks needs no sort.
func (v *VSSet) addRow(b *listBuilder, r int) {
	// Offsets ≤ r, visited from the largest down, give ascending columns.
	hi := len(v.Offs)
	for hi > 0 && v.Offs[hi-1] > r {
		hi--
	}
	i, j := 0, hi-1
	for {
		ci, cj := -1, -1
		if i < len(v.Cols) && v.Cols[i] <= r {
			ci = v.Cols[i]
		}
		if j >= 0 {
			cj = r - v.Offs[j]
		}
		switch {
		case ci < 0 && cj < 0:
			return
		case cj < 0 || (ci >= 0 && ci <= cj):
			b.add(r, ci)
			i++
			if ci == cj {
				j--
			}
		default:
			b.add(r, cj)
			j--
		}
	}
}

// List expands the selection to a block list on an nb×nb grid.
func (v *VSSet) List(nb int) *BlockList {
	b := newListBuilderCap(nb, nb*(len(v.Cols)+len(v.Offs)))
	for r := 0; r < nb; r++ {
		v.addRow(b, r)
		b.endRow()
	}
	return b.finish()
}

// VSRatio returns the share of the pivot's exact map mass that its own VS
// set captures (docs/algorithm.md#exclusion, VSCoverage):
// (1/nb)·Σ_r Σ_{(r,c) ∈ VS, c ≤ r} Â[r,c], with the set de-duplicated.
//
// With compat = true it reproduces the release's over-count
// (docs/algorithm.md#compatibility-switches): every
// column c and every offset o contributes one entry per row r = 0..nb−1
// without de-duplication, and each non-causal entry (r < c, or r < o) is read
// as block (0,0), whose mass is Â[0,0] = 1.
func VSRatio(m *BlockMap, vs VSSet, compat bool) float64 {
	nb := m.NB
	if nb == 0 {
		return 0
	}
	var s float64
	if compat {
		a00 := m.At(0, 0)
		for _, c := range vs.Cols {
			for r := 0; r < nb; r++ {
				if c <= r {
					s += m.At(r, c)
				} else {
					s += a00
				}
			}
		}
		for _, o := range vs.Offs {
			for r := 0; r < nb; r++ {
				if o <= r {
					s += m.At(r, r-o)
				} else {
					s += a00
				}
			}
		}
		return s / float64(nb)
	}
	return m.Recall(vs.List(nb))
}
