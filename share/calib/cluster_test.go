package calib

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestLinkageHandComputed checks the dendrogram of the 1-D points
// 0, 1, 3, 7 against hand-computed merges for every linkage.
//
//	pair distances: d01=1 d02=3 d03=7 d12=2 d13=6 d23=4
//	complete: {0,1}@1; {2,{01}}@max(3,2)=3;   {3,…}@max(7,6,4)=7
//	average:  {0,1}@1; {2,{01}}@(3+2)/2=2.5;  {3,…}@(7+6+4)/3=17/3
//	ward:     {0,1}@1; {2,{01}}@√(2·2·1/3)·|0.5−3|=√(4/3)·2.5;
//	          {3,…}@√(2·3·1/4)·|4/3−7|=√1.5·17/3
func TestLinkageHandComputed(t *testing.T) {
	pts := [][]float64{{0}, {1}, {3}, {7}}
	tests := []struct {
		linkage string
		want    []Merge
	}{
		{LinkageComplete, []Merge{{0, 1, 1, 2}, {2, 4, 3, 3}, {3, 5, 7, 4}}},
		{LinkageAverage, []Merge{{0, 1, 1, 2}, {2, 4, 2.5, 3}, {3, 5, 17.0 / 3, 4}}},
		{LinkageWard, []Merge{{0, 1, 1, 2}, {2, 4, math.Sqrt(4.0/3) * 2.5, 3}, {3, 5, math.Sqrt(1.5) * 17 / 3, 4}}},
	}
	for _, tc := range tests {
		t.Run(tc.linkage, func(t *testing.T) {
			dg, err := Linkage(pts, tc.linkage)
			if err != nil {
				t.Fatal(err)
			}
			if len(dg.Merges) != len(tc.want) {
				t.Fatalf("%d merges", len(dg.Merges))
			}
			for i, m := range dg.Merges {
				w := tc.want[i]
				if m.A != w.A || m.B != w.B || m.Size != w.Size || math.Abs(m.Height-w.Height) > 1e-12 {
					t.Errorf("merge %d = %+v, want %+v", i, m, w)
				}
			}
			if got := dg.CutDistance(1); !slices.Equal(got, []int{0, 0, 1, 2}) {
				t.Errorf("cut at 1: %v", got)
			}
			if got := dg.CutDistance(0.5); !slices.Equal(got, []int{0, 1, 2, 3}) {
				t.Errorf("cut at 0.5: %v", got)
			}
			if got, _ := dg.CutCount(2); !slices.Equal(got, []int{0, 0, 0, 1}) {
				t.Errorf("cut to 2: %v", got)
			}
			if got, _ := dg.CutCount(1); !slices.Equal(got, []int{0, 0, 0, 0}) {
				t.Errorf("cut to 1: %v", got)
			}
		})
	}
}

// naiveLinkage is the textbook O(n³) greedy algorithm computing each
// criterion from the member sets directly.
func naiveLinkage(x [][]float64, linkage string) (heights []float64, partitions [][]int) {
	n := len(x)
	dist := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += (a[i] - b[i]) * (a[i] - b[i])
		}
		return math.Sqrt(s)
	}
	clusters := make([][]int, n)
	for i := range n {
		clusters[i] = []int{i}
	}
	cost := func(p, q []int) float64 {
		switch linkage {
		case LinkageComplete:
			m := 0.0
			for _, i := range p {
				for _, j := range q {
					m = max(m, dist(x[i], x[j]))
				}
			}
			return m
		case LinkageAverage:
			s := 0.0
			for _, i := range p {
				for _, j := range q {
					s += dist(x[i], x[j])
				}
			}
			return s / float64(len(p)*len(q))
		default:
			cp, cq := make([]float64, len(x[0])), make([]float64, len(x[0]))
			for _, i := range p {
				for k, v := range x[i] {
					cp[k] += v / float64(len(p))
				}
			}
			for _, j := range q {
				for k, v := range x[j] {
					cq[k] += v / float64(len(q))
				}
			}
			np, nq := float64(len(p)), float64(len(q))
			return math.Sqrt(2*np*nq/(np+nq)) * dist(cp, cq)
		}
	}
	labels := func() []int {
		l := make([]int, n)
		for ci, c := range clusters {
			for _, i := range c {
				l[i] = ci
			}
		}
		return l
	}
	for len(clusters) > 1 {
		bi, bj, bh := 0, 1, math.Inf(1)
		for i := range clusters {
			for j := i + 1; j < len(clusters); j++ {
				if h := cost(clusters[i], clusters[j]); h < bh {
					bi, bj, bh = i, j, h
				}
			}
		}
		clusters[bi] = append(clusters[bi], clusters[bj]...)
		clusters = slices.Delete(clusters, bj, bj+1)
		heights = append(heights, bh)
		partitions = append(partitions, labels())
	}
	return heights, partitions
}

// TestLinkageMatchesNaive compares the NN-chain result with the naive
// algorithm on random points: the same heights and, at every level, the
// same partition.
func TestLinkageMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x := make([][]float64, 40)
	for i := range x {
		x[i] = []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
	}
	for _, link := range []string{LinkageWard, LinkageAverage, LinkageComplete} {
		t.Run(link, func(t *testing.T) {
			dg, err := Linkage(x, link)
			if err != nil {
				t.Fatal(err)
			}
			hs, parts := naiveLinkage(x, link)
			for m, h := range hs {
				if math.Abs(dg.Merges[m].Height-h) > 1e-9 {
					t.Fatalf("merge %d height %g, naive %g", m, dg.Merges[m].Height, h)
				}
				got, _ := dg.CutCount(len(x) - m - 1)
				if ari, _ := AdjustedRandIndex(got, parts[m]); ari != 1 {
					t.Fatalf("level %d: partition differs from naive (ARI %g)", m, ari)
				}
			}
			for m := 1; m < len(dg.Merges); m++ {
				if dg.Merges[m].Height < dg.Merges[m-1].Height {
					t.Fatalf("heights not sorted at %d", m)
				}
			}
			if last := dg.Merges[len(dg.Merges)-1]; last.Size != len(x) || last.B >= 2*len(x)-1 || last.A >= last.B {
				t.Fatalf("last merge %+v", last)
			}
		})
	}
}

// TestLinkageTiesDeterministic uses the corners of a square (all ties) and
// checks that the result does not change between calls.
func TestLinkageTiesDeterministic(t *testing.T) {
	x := [][]float64{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 0}, {1, 1}}
	for _, link := range []string{LinkageWard, LinkageAverage, LinkageComplete} {
		a, _ := Linkage(x, link)
		for range 5 {
			b, _ := Linkage(x, link)
			if !slices.Equal(a.Merges, b.Merges) {
				t.Fatalf("%s: %v vs %v", link, a.Merges, b.Merges)
			}
		}
		// Duplicates merge first, at height 0.
		if a.Merges[0].Height != 0 || a.Merges[1].Height != 0 {
			t.Fatalf("%s: first merges %v", link, a.Merges[:2])
		}
	}
}

func TestLinkage1024Fast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([][]float64, 1024)
	for i := range x {
		x[i] = make([]float64, 64)
		for k := range x[i] {
			x[i][k] = rng.NormFloat64()
		}
	}
	x = L2Normalise(x)
	for _, link := range []string{LinkageWard, LinkageAverage, LinkageComplete} {
		t0 := time.Now()
		dg, err := Linkage(x, link)
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(t0)
		t.Logf("%s n=1024: %v", link, el)
		if el > 5*time.Second {
			t.Errorf("%s took %v", link, el)
		}
		if len(dg.Merges) != 1023 {
			t.Fatalf("%d merges", len(dg.Merges))
		}
	}
}

func TestLinkageErrors(t *testing.T) {
	tests := []struct {
		name    string
		x       [][]float64
		linkage string
	}{
		{"empty", nil, LinkageWard},
		{"unknown linkage", [][]float64{{1}}, "single"},
		{"ragged", [][]float64{{1, 2}, {1}}, LinkageWard},
		{"nan", [][]float64{{1}, {math.NaN()}}, LinkageAverage},
	}
	for _, tc := range tests {
		if _, err := Linkage(tc.x, tc.linkage); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	dg, _ := Linkage([][]float64{{1}}, "")
	if dg.Linkage != LinkageWard || len(dg.Merges) != 0 {
		t.Errorf("single point: %+v", dg)
	}
	if _, err := dg.CutCount(2); err == nil {
		t.Error("cut to 2 of 1 point accepted")
	}
}

func TestApplyMinSize(t *testing.T) {
	tests := []struct {
		labels []int
		min    int
		want   []int
	}{
		{[]int{0, 0, 1, 2, 2, 2}, 1, []int{0, 0, 1, 2, 2, 2}},
		{[]int{0, 0, 1, 2, 2, 2}, 2, []int{0, 0, -1, 1, 1, 1}},
		{[]int{0, 0, 1, 2, 2, 2}, 3, []int{-1, -1, -1, 0, 0, 0}},
		{[]int{3, 1, 3, 1, -1}, 2, []int{0, 1, 0, 1, -1}},
		{[]int{0, 1}, 5, []int{-1, -1}},
	}
	for _, tc := range tests {
		if got := ApplyMinSize(tc.labels, tc.min); !slices.Equal(got, tc.want) {
			t.Errorf("ApplyMinSize(%v, %d) = %v, want %v", tc.labels, tc.min, got, tc.want)
		}
	}
}

func TestL2Normalise(t *testing.T) {
	got := L2Normalise([][]float64{{3, 4}, {0, 0}})
	if math.Abs(got[0][0]-0.6) > 1e-15 || math.Abs(got[0][1]-0.8) > 1e-15 || !slices.Equal(got[1], []float64{0, 0}) {
		t.Fatalf("got %v", got)
	}
}
