package calib

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Linkage criteria accepted by Linkage.
const (
	// LinkageWard is Ward's minimum-variance criterion with SciPy's height
	// convention: merging clusters s and t costs
	// √(2·|s||t|/(|s|+|t|))·‖c_s − c_t‖, which grows with cluster size and so
	// gives the size-dependent thresholds (10, 40) of the release's file
	// name and the third-party script a meaning
	// (docs/algorithm.md#clustering). The default.
	LinkageWard = "ward"
	// LinkageAverage is UPGMA: the mean Euclidean distance between members.
	LinkageAverage = "average"
	// LinkageComplete is the largest Euclidean distance between members.
	LinkageComplete = "complete"
)

// Merge is one step of a dendrogram, in SciPy's linkage-matrix convention:
// A and B are cluster ids, leaves are 0…N−1 and the cluster formed by merge
// i has id N+i; A < B.
type Merge struct {
	A, B   int
	Height float64
	Size   int // members of the merged cluster
}

// Dendrogram is the full agglomerative hierarchy of N points: N−1 merges in
// non-decreasing height order.
type Dendrogram struct {
	N       int
	Linkage string
	Merges  []Merge
	// leaf pairs (one representative leaf of each side) in Merges order,
	// used to cut without rebuilding the id tree.
	pairs [][2]int
}

// condensed stores the strict upper triangle of a symmetric n×n matrix.
type condensed struct {
	n int
	d []float64
}

func (c condensed) idx(i, j int) int {
	if i > j {
		i, j = j, i
	}
	return c.n*i - i*(i+1)/2 + j - i - 1
}

func (c condensed) at(i, j int) float64     { return c.d[c.idx(i, j)] }
func (c condensed) set(i, j int, v float64) { c.d[c.idx(i, j)] = v }

// Linkage builds the dendrogram of the rows of x (Euclidean distances) with
// the nearest-neighbour-chain algorithm and Lance–Williams updates: O(n²)
// memory (one float64 per pair) and O(n²) distance updates. All three
// criteria are reducible, so the result equals the naive greedy algorithm's
// up to ties. Ties are broken deterministically: a chain prefers its
// previous element, otherwise the lowest index; merges of equal height keep
// the order in which the chain found them.
func Linkage(x [][]float64, linkage string) (*Dendrogram, error) {
	if linkage == "" {
		linkage = LinkageWard
	}
	switch linkage {
	case LinkageWard, LinkageAverage, LinkageComplete:
	default:
		return nil, fmt.Errorf("linkage %q: want %q, %q or %q", linkage, LinkageWard, LinkageAverage, LinkageComplete)
	}
	n := len(x)
	if n == 0 {
		return nil, errors.New("linkage: no points")
	}
	dim := len(x[0])
	for i, r := range x {
		if len(r) != dim {
			return nil, fmt.Errorf("linkage: point %d has dimension %d, want %d", i, len(r), dim)
		}
		for _, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("linkage: point %d has a non-finite coordinate", i)
			}
		}
	}
	d := condensed{n: n, d: make([]float64, n*(n-1)/2)}
	k := 0
	for i := range n {
		xi := x[i]
		for j := i + 1; j < n; j++ {
			s := 0.0
			for t, v := range x[j] {
				e := xi[t] - v
				s += e * e
			}
			d.d[k] = math.Sqrt(s)
			k++
		}
	}
	size := make([]int, n)
	active := make([]bool, n)
	for i := range n {
		size[i], active[i] = 1, true
	}
	type raw struct {
		x, y int
		h    float64
	}
	raws := make([]raw, 0, n-1)
	chain := make([]int, 0, n)
	for range n - 1 {
		if len(chain) == 0 {
			for i := range n {
				if active[i] {
					chain = append(chain, i)
					break
				}
			}
		}
		var a, b int
		var h float64
		for {
			a = chain[len(chain)-1]
			b, h = -1, math.Inf(1)
			if len(chain) > 1 {
				b = chain[len(chain)-2]
				h = d.at(a, b)
			}
			for i := range n {
				if i == a || !active[i] {
					continue
				}
				if v := d.at(a, i); v < h {
					b, h = i, v
				}
			}
			if len(chain) > 1 && b == chain[len(chain)-2] {
				break
			}
			chain = append(chain, b)
		}
		chain = chain[:len(chain)-2]
		if a > b {
			a, b = b, a
		}
		raws = append(raws, raw{a, b, h})
		// The merged cluster lives on at b; a is retired.
		na, nb := float64(size[a]), float64(size[b])
		for i := range n {
			if !active[i] || i == a || i == b {
				continue
			}
			dia, dib := d.at(i, a), d.at(i, b)
			var v float64
			switch linkage {
			case LinkageWard:
				ni := float64(size[i])
				v = math.Sqrt(max(0, ((ni+na)*dia*dia+(ni+nb)*dib*dib-ni*h*h)/(ni+na+nb)))
			case LinkageAverage:
				v = (na*dia + nb*dib) / (na + nb)
			case LinkageComplete:
				v = max(dia, dib)
			}
			d.set(i, b, v)
		}
		active[a] = false
		size[b] += size[a]
	}
	// Stable sort by height, then label the merges SciPy-style.
	slices.SortStableFunc(raws, func(p, q raw) int {
		switch {
		case p.h < q.h:
			return -1
		case p.h > q.h:
			return 1
		}
		return 0
	})
	dg := &Dendrogram{N: n, Linkage: linkage, Merges: make([]Merge, 0, n-1), pairs: make([][2]int, 0, n-1)}
	uf := newUnionFind(n)
	id := make([]int, n) // cluster id of each root
	sz := make([]int, n)
	for i := range n {
		id[i], sz[i] = i, 1
	}
	for m, r := range raws {
		ra, rb := uf.find(r.x), uf.find(r.y)
		ia, ib := id[ra], id[rb]
		if ia > ib {
			ia, ib = ib, ia
		}
		s := sz[ra] + sz[rb]
		root := uf.union(ra, rb)
		id[root], sz[root] = n+m, s
		dg.Merges = append(dg.Merges, Merge{A: ia, B: ib, Height: r.h, Size: s})
		dg.pairs = append(dg.pairs, [2]int{r.x, r.y})
	}
	return dg, nil
}

type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return &unionFind{p}
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

// union joins the sets of roots a and b and returns the new root (the
// smaller index, for determinism).
func (u *unionFind) union(a, b int) int {
	if a > b {
		a, b = b, a
	}
	u.parent[b] = a
	return a
}

// labelsAfter applies the first m merges and returns flat labels 0…K−1,
// numbered in order of each cluster's lowest point index.
func (d *Dendrogram) labelsAfter(m int) []int {
	uf := newUnionFind(d.N)
	for _, p := range d.pairs[:m] {
		uf.union(uf.find(p[0]), uf.find(p[1]))
	}
	labels := make([]int, d.N)
	next := map[int]int{}
	for i := range d.N {
		r := uf.find(i)
		l, ok := next[r]
		if !ok {
			l = len(next)
			next[r] = l
		}
		labels[i] = l
	}
	return labels
}

// CutDistance returns flat cluster labels keeping every merge of height ≤ t
// (SciPy's fcluster criterion "distance"). Labels are 0…K−1, numbered in
// order of each cluster's lowest point index.
func (d *Dendrogram) CutDistance(t float64) []int {
	m := 0
	for m < len(d.Merges) && d.Merges[m].Height <= t {
		m++
	}
	return d.labelsAfter(m)
}

// CutCount returns flat labels for exactly k clusters (1 ≤ k ≤ N), applying
// the N−k lowest merges. Labels are numbered as in CutDistance.
func (d *Dendrogram) CutCount(k int) ([]int, error) {
	if k < 1 || k > d.N {
		return nil, fmt.Errorf("cut: %d clusters requested for %d points", k, d.N)
	}
	return d.labelsAfter(d.N - k), nil
}

// Noise is the label of points in no cluster.
const Noise = -1

// ApplyMinSize marks every point whose cluster has fewer than minSize
// members as Noise and renumbers the remaining clusters 0…K'−1 in order of
// first appearance. Negative input labels are treated as noise already.
func ApplyMinSize(labels []int, minSize int) []int {
	count := map[int]int{}
	for _, l := range labels {
		count[l]++
	}
	out := make([]int, len(labels))
	next := map[int]int{}
	for i, l := range labels {
		if l < 0 || count[l] < minSize {
			out[i] = Noise
			continue
		}
		nl, ok := next[l]
		if !ok {
			nl = len(next)
			next[l] = nl
		}
		out[i] = nl
	}
	return out
}

// L2Normalise returns copies of the rows of x scaled to unit Euclidean
// norm; all-zero rows stay zero.
func L2Normalise(x [][]float64) [][]float64 {
	out := make([][]float64, len(x))
	for i, r := range x {
		s := 0.0
		for _, v := range r {
			s += v * v
		}
		o := make([]float64, len(r))
		if s > 0 {
			inv := 1 / math.Sqrt(s)
			for j, v := range r {
				o[j] = v * inv
			}
		}
		out[i] = o
	}
	return out
}
