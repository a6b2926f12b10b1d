package calib

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// BlockSet is a set of causal blocks of an nb×nb map: BlockSet[r] lists the
// key-block columns kept in query-block row r, ascending, each ≤ r.
type BlockSet [][]int

// Count returns the number of blocks in the set.
func (s BlockSet) Count() int {
	n := 0
	for _, row := range s {
		n += len(row)
	}
	return n
}

// Density returns |s| divided by the nb(nb+1)/2 causal blocks.
func (s BlockSet) Density() float64 {
	nb := len(s)
	if nb == 0 {
		return 0
	}
	return float64(s.Count()) / float64(nb*(nb+1)/2)
}

// Cover returns cover(x, γ) of docs/algorithm.md#notation: the indices of the
// shortest prefix of x sorted by descending value whose sum reaches γ·Σx,
// the crossing entry included. Ties keep the lower index first. If rounding
// leaves the running sum short of γ·Σx, every non-zero entry is kept. The
// result is sorted ascending; it is empty when Σx = 0.
func Cover(x []float64, gamma float64) []int {
	total := 0.0
	for _, v := range x {
		total += v
	}
	if !(total > 0) {
		return nil
	}
	order := seq(len(x))
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(x[j], x[i]) })
	target := gamma * total
	sum := 0.0
	k := 0
	for k < len(order) && x[order[k]] > 0 {
		sum += x[order[k]]
		k++
		if sum >= target {
			break
		}
	}
	out := order[:k]
	slices.Sort(out)
	return out
}

func checkMap(m []float32, nb int) error {
	if nb < 1 || len(m) != nb*nb {
		return fmt.Errorf("block map: %d values for nb = %d, want nb²", len(m), nb)
	}
	return nil
}

// causalRow returns Â[r, 0..r] as float64, normalised by its actual sum
// (unchanged when the sum is zero).
func causalRow(m []float32, nb, r int) []float64 {
	row := make([]float64, r+1)
	s := 0.0
	for c := 0; c <= r; c++ {
		row[c] = float64(m[r*nb+c])
		s += row[c]
	}
	if s > 0 {
		for c := range row {
			row[c] /= s
		}
	}
	return row
}

// RowCover returns the per-row cover pattern of docs/algorithm.md#pivot-map:
// P[r] = cover(Â[r, 0..r], γ) for every row r, each row normalised by its
// actual sum first.
func RowCover(m []float32, nb int, gamma float64) (BlockSet, error) {
	if err := checkMap(m, nb); err != nil {
		return nil, err
	}
	p := make(BlockSet, nb)
	for r := range nb {
		p[r] = Cover(causalRow(m, nb, r), gamma)
	}
	return p, nil
}

// MassInside returns the mean over rows with positive mass of the share of
// Â[r, ·] (normalised by the row's actual sum) that falls on the blocks of s.
// Rows with zero mass are skipped; an all-zero map gives 0.
func MassInside(m []float32, nb int, s BlockSet) (float64, error) {
	if err := checkMap(m, nb); err != nil {
		return 0, err
	}
	if len(s) != nb {
		return 0, fmt.Errorf("mass inside: block set has %d rows, map has %d", len(s), nb)
	}
	sum, rows := 0.0, 0
	for r := range nb {
		tot, in := 0.0, 0.0
		for c := 0; c <= r; c++ {
			tot += float64(m[r*nb+c])
		}
		if !(tot > 0) {
			continue
		}
		for _, c := range s[r] {
			if c < 0 || c > r {
				return 0, fmt.Errorf("mass inside: block (%d,%d) is not causal", r, c)
			}
			in += float64(m[r*nb+c])
		}
		sum += in / tot
		rows++
	}
	if rows == 0 {
		return 0, nil
	}
	return sum / float64(rows), nil
}

// topWithForced returns the indices of the k largest entries of x (ties: lower
// index first), with index 0 always included, sorted ascending.
func topWithForced(x []float64, k int) []int {
	order := seq(len(x))
	slices.SortStableFunc(order, func(i, j int) int {
		switch {
		case i == 0 && j != 0:
			return -1
		case j == 0 && i != 0:
			return 1
		}
		return cmp.Compare(x[j], x[i])
	})
	out := slices.Clone(order[:min(k, len(order))])
	slices.Sort(out)
	return out
}

// VSFromMap derives a head's γ vertical-slash set from its exact block map,
// a block-level stand-in for the last-block estimates and budgets of
// docs/algorithm.md#last-block-estimates (our choice):
//   - vertical V[c] = Â[nb−1, c], which equals the block-pooled column mean of
//     the last query block exactly;
//   - slash S[o] = mean over rows r ≥ o of Â[r, r−o], normalised to sum 1
//     (the token-level slash cannot be recovered from a block map);
//   - nv = |cover(V, γ)| and ns = |cover(S, γ)|, clamped to
//     [minBlocks, maxBlocks] and to [1, nb] (maxBlocks ≤ 0 means nb), the
//     block analogue of the [min_budget, max_budget] clamp;
//   - columns = top-nv of V with column 0 forced in, offsets = top-ns of S
//     with offset 0 forced in, expanded to all causal blocks they touch.
//
// Callers that have the real token-level V and S (from the GPU run) should
// build the set themselves and pass it through PromptMaps.VS.
func VSFromMap(m []float32, nb int, gamma float64, minBlocks, maxBlocks int) (BlockSet, error) {
	if err := checkMap(m, nb); err != nil {
		return nil, err
	}
	v := causalRow(m, nb, nb-1)
	s := make([]float64, nb)
	tot := 0.0
	for o := range nb {
		for r := o; r < nb; r++ {
			s[o] += float64(m[r*nb+r-o])
		}
		s[o] /= float64(nb - o)
		tot += s[o]
	}
	if tot > 0 {
		for o := range s {
			s[o] /= tot
		}
	}
	if maxBlocks <= 0 {
		maxBlocks = nb
	}
	clamp := func(k int) int { return max(min(max(k, minBlocks), maxBlocks, nb), 1) }
	cols := topWithForced(v, clamp(len(Cover(v, gamma))))
	offs := topWithForced(s, clamp(len(Cover(s, gamma))))
	set := make(BlockSet, nb)
	for r := range nb {
		row := make([]int, 0, len(cols)+len(offs))
		for _, c := range cols {
			if c <= r {
				row = append(row, c)
			}
		}
		for _, o := range offs {
			if o <= r {
				row = append(row, r-o)
			}
		}
		slices.Sort(row)
		set[r] = slices.Compact(row)
	}
	return set, nil
}

// SelectOptions holds the shared-cluster selection parameters of
// docs/algorithm.md#shared-cluster-selection. Zero fields take the defaults in comments.
type SelectOptions struct {
	Gamma       float64 // cover threshold γ; default 0.95
	Kappa       float64 // minimum mean keep κ; default 0.9
	MinGain     float64 // minimum mean (keep − vs) g; default 0.02
	MinVSBlocks int     // floor of nv and ns in VSFromMap; default 8 (1024 tokens at B = 128)
	MaxVSBlocks int     // cap of nv and ns in VSFromMap; 0 means nb (no cap)
}

func (o SelectOptions) withDefaults() SelectOptions {
	if o.Gamma == 0 {
		o.Gamma = 0.95
	}
	if o.Kappa == 0 {
		o.Kappa = 0.9
	}
	if o.MinGain == 0 {
		o.MinGain = 0.02
	}
	if o.MinVSBlocks == 0 {
		o.MinVSBlocks = 8
	}
	return o
}

// PromptMaps holds the exact block maps of one held-out prompt.
type PromptMaps struct {
	NB   int
	Maps map[HeadID][]float32 // row-major NB×NB exact maps, at least of every cluster member
	// VS optionally gives each head's own γ-VS set (e.g. from the real
	// last-block estimates). Heads missing here get VSFromMap.
	VS map[HeadID]BlockSet
}

// ClusterSelection is the per-cluster report of the shared-cluster
// selection; Keep, VS and Dens are the "per_cluster" values of the
// metadata.
type ClusterSelection struct {
	ID       int     `json:"-"`
	Pivot    HeadID  `json:"-"`
	Keep     float64 `json:"keep"` // mean keep_h over later-layer members and prompts
	VS       float64 `json:"vs"`   // mean vs_h over the same pairs
	Gain     float64 `json:"-"`    // mean (keep_h − vs_h)
	Dens     float64 `json:"dens"` // mean over prompts of |P| / causal blocks
	Compared int     `json:"-"`    // (member, prompt) pairs compared; 0 when no member sits in a later layer than the pivot
	Shared   bool    `json:"-"`
}

// SelectShared evaluates every cluster on held-out prompts
// (docs/algorithm.md#shared-cluster-selection).
// For each prompt the pivot is the cluster's first member in (layer, head)
// order and P its per-row cover at γ. Every member h in a later layer than
// the pivot contributes keep_h (mean share of Â_h's row mass inside P) and
// vs_h (the same for h's own γ-VS set). A cluster is shared when
// mean keep ≥ κ and mean (keep − vs) ≥ g. A cluster without any later-layer
// member is never shared and reports zeros.
func SelectShared(clusters []Cluster, prompts []PromptMaps, opts SelectOptions) ([]ClusterSelection, error) {
	opts = opts.withDefaults()
	if len(prompts) == 0 {
		return nil, fmt.Errorf("select shared: no held-out prompts")
	}
	out := make([]ClusterSelection, 0, len(clusters))
	for _, cl := range clusters {
		if len(cl.Members) == 0 {
			return nil, fmt.Errorf("select shared: cluster %d has no members", cl.ID)
		}
		members := slices.Clone(cl.Members)
		slices.SortFunc(members, HeadID.Compare)
		pivot := members[0]
		sel := ClusterSelection{ID: cl.ID, Pivot: pivot}
		var keepSum, vsSum, densSum float64
		for pi, pm := range prompts {
			pmap, ok := pm.Maps[pivot]
			if !ok {
				return nil, fmt.Errorf("select shared: prompt %d has no map for pivot %v of cluster %d", pi, pivot, cl.ID)
			}
			p, err := RowCover(pmap, pm.NB, opts.Gamma)
			if err != nil {
				return nil, fmt.Errorf("select shared: cluster %d pivot %v prompt %d: %w", cl.ID, pivot, pi, err)
			}
			densSum += p.Density()
			for _, h := range members[1:] {
				if h.Layer <= pivot.Layer {
					continue
				}
				hm, ok := pm.Maps[h]
				if !ok {
					return nil, fmt.Errorf("select shared: prompt %d has no map for %v of cluster %d", pi, h, cl.ID)
				}
				keep, err := MassInside(hm, pm.NB, p)
				if err != nil {
					return nil, fmt.Errorf("select shared: cluster %d member %v prompt %d: %w", cl.ID, h, pi, err)
				}
				vsSet, ok := pm.VS[h]
				if !ok {
					if vsSet, err = VSFromMap(hm, pm.NB, opts.Gamma, opts.MinVSBlocks, opts.MaxVSBlocks); err != nil {
						return nil, fmt.Errorf("select shared: VS set of %v prompt %d: %w", h, pi, err)
					}
				}
				vs, err := MassInside(hm, pm.NB, vsSet)
				if err != nil {
					return nil, fmt.Errorf("select shared: VS mass of %v prompt %d: %w", h, pi, err)
				}
				keepSum += keep
				vsSum += vs
				sel.Compared++
			}
		}
		sel.Dens = densSum / float64(len(prompts))
		if sel.Compared > 0 {
			k := float64(sel.Compared)
			sel.Keep, sel.VS = keepSum/k, vsSum/k
			sel.Gain = sel.Keep - sel.VS
			sel.Shared = sel.Keep >= opts.Kappa && sel.Gain >= opts.MinGain
		}
		if math.IsNaN(sel.Keep) || math.IsNaN(sel.VS) {
			return nil, fmt.Errorf("select shared: cluster %d: non-finite scores", cl.ID)
		}
		out = append(out, sel)
	}
	return out, nil
}
