package share_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/share"
)

func randDist(r *rand.Rand, n int, zeros bool) []float64 {
	x := make([]float64, n)
	var s float64
	for i := range x {
		if zeros && r.IntN(4) == 0 {
			continue
		}
		x[i] = r.ExpFloat64()
		s += x[i]
	}
	if s == 0 {
		x[0], s = 1, 1
	}
	for i := range x {
		x[i] /= s
	}
	return x
}

func TestJSDProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 200; it++ {
		n := 1 + r.IntN(40)
		p, q, w := randDist(r, n, it%2 == 0), randDist(r, n, it%3 == 0), randDist(r, n, false)
		dpq, dqp := share.JSD(p, q), share.JSD(q, p)
		if math.IsNaN(dpq) || math.Abs(dpq-dqp) > 1e-12 {
			t.Fatalf("not symmetric or NaN: %v %v", dpq, dqp)
		}
		if dpq < 0 || dpq > share.JSDMax+1e-12 {
			t.Fatalf("out of [0, √ln2]: %v", dpq)
		}
		if d := share.JSD(p, p); d > 1e-7 {
			t.Fatalf("JSD(p,p) = %v", d)
		}
		// √JSD is a metric: triangle inequality.
		if share.JSD(p, w) > share.JSD(p, q)+share.JSD(q, w)+1e-9 {
			t.Fatalf("triangle inequality fails")
		}
	}
	// Disjoint supports reach the maximum √ln2.
	if d := share.JSD([]float64{1, 0}, []float64{0, 1}); math.Abs(d-math.Sqrt(math.Ln2)) > 1e-12 {
		t.Fatalf("disjoint JSD = %v, want √ln2", d)
	}
	// Compat mode: any zero gives NaN, and then every gate comparison fails.
	if d := share.JSDCompat([]float64{0.5, 0.5, 0}, []float64{0.4, 0.4, 0.2}); !math.IsNaN(d) {
		t.Fatalf("compat JSD with a zero = %v, want NaN", d)
	}
	if d := share.JSDCompat([]float64{0.5, 0.5}, []float64{0.4, 0.6}); math.IsNaN(d) || math.Abs(d-share.JSD([]float64{0.5, 0.5}, []float64{0.4, 0.6})) > 0 {
		t.Fatalf("compat JSD without zeros = %v", d)
	}
	if !math.IsNaN(share.JSD([]float64{1}, []float64{0.5, 0.5})) {
		t.Fatal("length mismatch should give NaN")
	}
}

func TestTokenBudgetAndBlockBudget(t *testing.T) {
	tests := []struct {
		x     []float64
		gamma float64
		want  int
	}{
		{[]float64{0.5, 0.3, 0.2}, 0.9, 3},    // 0.5, 0.8 ≤ 0.9 → 2, +1
		{[]float64{0.25, 0.5, 0.25}, 0.75, 3}, // 0.5, 0.75 ≤ 0.75 → 2, +1
		{[]float64{0.9, 0.05, 0.05}, 0.5, 1},  // none ≤ 0.5, +1
		{[]float64{0.25, 0.25, 0.25, 0.25}, 1, 4},
	}
	for _, tc := range tests {
		if got := share.TokenBudget(tc.x, tc.gamma); got != tc.want {
			t.Errorf("TokenBudget(%v, %v) = %d, want %d", tc.x, tc.gamma, got, tc.want)
		}
	}
	c := share.DefaultConfig() // B 128, MinBudget 1024 → floor 8 blocks
	for _, tc := range []struct{ k, nb, want int }{
		{0, 100, 8}, {1000, 100, 8}, {1100, 100, 9}, {128 * 50, 100, 51}, {1 << 20, 100, 100}, {10, 4, 4},
	} {
		if got := c.BlockBudget(tc.k, tc.nb); got != tc.want {
			t.Errorf("BlockBudget(%d, %d) = %d, want %d", tc.k, tc.nb, got, tc.want)
		}
	}
	c.MaxBudget = 2048 // cap 16 blocks
	if got := c.BlockBudget(1<<20, 100); got != 16 {
		t.Errorf("capped budget = %d, want 16", got)
	}
	if got := c.FloorBudget(5); got != 5 {
		t.Errorf("floor on a 5-block grid = %d, want 5", got)
	}
}

func TestCover(t *testing.T) {
	tests := []struct {
		x     []float64
		gamma float64
		want  []int
	}{
		{[]float64{0.125, 0.5, 0.375}, 0.875, []int{1, 2}},    // 0.5, 0.875 reaches γ
		{[]float64{0.125, 0.5, 0.375}, 0.625, []int{1, 2}},    // crossing entry included
		{[]float64{0.125, 0.5, 0.375}, 0.5, []int{1}},         // exactly reached
		{[]float64{0.0625, 0.25, 0.1875}, 0.875, []int{1, 2}}, // normalised by the row sum 0.5
		{[]float64{0.0625, 0.25, 0.1875}, 0.9, []int{0, 1, 2}},
		{[]float64{0, 0, 0}, 0.9, nil},                        // empty row
		{[]float64{0.2, 0, 0.8}, 1, []int{0, 2}},              // γ = 1 keeps the nonzero mass
		{[]float64{0.25, 0.25, 0.25, 0.25}, 0.5, []int{0, 1}}, // ties prefer the lower index
	}
	for _, tc := range tests {
		if got := share.Cover(tc.x, tc.gamma); !slices.Equal(got, tc.want) {
			t.Errorf("Cover(%v, %v) = %v, want %v", tc.x, tc.gamma, got, tc.want)
		}
	}
	// Rounding shortfall: a sum that never reaches γ·Σ keeps every nonzero.
	x := []float64{0.1, 0.2, 0.3, 0.4}
	if got := share.Cover(x, 1+1e-15); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("shortfall cover = %v", got)
	}
}

func TestQueryAwareCutExcludesCrossing(t *testing.T) {
	// nb = 2: rows [1,0] and [0.7,0.3]; γ·nb = 1.2 at γ = 0.6.
	m := &share.BlockMap{NB: 2, Data: []float64{1, 0, 0.7, 0.3}}
	l := share.QueryAwareCut(m, 0.6) // sorted: 1 (sum 1 ≤ 1.2) keep; 0.7 (1.7) crosses → stop
	if !l.Contains(0, 0) || l.Contains(1, 0) || l.Contains(1, 1) {
		t.Fatalf("cut = %+v", l)
	}
	l = share.QueryAwareCut(m, 0.85) // 1.7 ≤ 1.7 keeps (1,0); 0.3 crosses
	if !l.Contains(1, 0) || l.Contains(1, 1) {
		t.Fatalf("cut at 0.85 = %+v", l)
	}
	if d := share.QueryAwareCut(m, 1); d.NumBlocks() != 3 {
		t.Fatalf("γ = 1 keeps %d blocks, want all 3", d.NumBlocks())
	}
}

func TestTopKForced(t *testing.T) {
	x := []float64{0.01, 0.5, 0.2, 0.29}
	if got := share.TopKForced(x, 2, 0); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("got %v", got)
	}
	if got := share.TopKForced(x, 3, 0); !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("got %v", got)
	}
	if got := share.TopKForced(x, 0, 0); !slices.Equal(got, []int{0}) {
		t.Errorf("k = 0 keeps the forced entry: %v", got)
	}
	if got := share.TopKForced(x, 9); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("k > len: %v", got)
	}
}

// uniformRowsMap has Â[r,c] = 1/(r+1) for c ≤ r.
func uniformRowsMap(nb int) *share.BlockMap {
	m := share.NewBlockMap(nb)
	for r := 0; r < nb; r++ {
		for c := 0; c <= r; c++ {
			m.Data[r*nb+c] = 1 / float64(r+1)
		}
	}
	return m
}

// TestVSRatioCompatOvercount reproduces docs/algorithm.md#compatibility-switches: without
// de-duplication each column c adds c units and each offset o adds o units
// (non-causal entries read as Â[0,0] = 1), plus the duplicated blocks.
func TestVSRatioCompatOvercount(t *testing.T) {
	for _, tc := range []struct {
		nb   int
		cols []int
		offs []int
	}{
		{1024, []int{0, 900}, []int{0}}, // the example of docs/algorithm.md#compatibility-switches
		{64, []int{0, 5, 40}, []int{0, 3, 17}},
		{16, []int{0}, []int{0}},
	} {
		m := uniformRowsMap(tc.nb)
		vs := share.VSSet{Cols: tc.cols, Offs: tc.offs}
		dedup := share.VSRatio(m, vs, false)
		compat := share.VSRatio(m, vs, true)
		var extra float64
		for _, c := range tc.cols {
			extra += float64(c)
		}
		for _, o := range tc.offs {
			extra += float64(o)
		}
		for _, c := range tc.cols { // duplicated causal blocks (c+o, c)
			for _, o := range tc.offs {
				if c+o < tc.nb {
					extra += m.At(c+o, c)
				}
			}
		}
		want := dedup + extra/float64(tc.nb)
		if math.Abs(compat-want) > 1e-12 {
			t.Errorf("nb=%d: compat %v, want dedup %v + over-count %v", tc.nb, compat, dedup, extra/float64(tc.nb))
		}
		if dedup > 1+1e-12 {
			t.Errorf("nb=%d: dedup ratio %v > 1", tc.nb, dedup)
		}
	}
	// The single column at c = 900 of nb = 1024 adds ≈ 0.88 on its own.
	m := uniformRowsMap(1024)
	d := share.VSRatio(m, share.VSSet{Cols: []int{900}}, true) - share.VSRatio(m, share.VSSet{Cols: []int{900}}, false)
	if math.Abs(d-900.0/1024) > 1e-12 || d < 0.87 || d > 0.89 {
		t.Errorf("column 900 over-count = %v, want 900/1024 ≈ 0.88", d)
	}
}

func TestBlockListHelpers(t *testing.T) {
	d := share.DenseList(5)
	if d.NumBlocks() != 15 || d.Density() != 1 {
		t.Fatalf("dense list %d blocks density %v", d.NumBlocks(), d.Density())
	}
	checkListInvariants(t, "dense", d)
	vs := share.VSSet{Cols: []int{0, 3}, Offs: []int{0, 2}}
	l := vs.List(5)
	checkListInvariants(t, "vs", l)
	want := [][]int32{{0}, {0, 1}, {0, 2}, {0, 1, 3}, {0, 2, 3, 4}}
	for r, w := range want {
		if !slices.Equal(l.Row(r), w) {
			t.Errorf("row %d = %v, want %v", r, l.Row(r), w)
		}
	}
	back := share.ListFromMask(5, l.Mask())
	if !slices.Equal(back.Cols, l.Cols) || !slices.Equal(back.RowPtr, l.RowPtr) {
		t.Fatal("mask round trip differs")
	}
	bad := &share.BlockList{NB: 2, RowPtr: []int32{0, 1, 3}, Cols: []int32{1, 0, 1}}
	if bad.Validate() == nil {
		t.Fatal("non-causal column accepted")
	}
}

// TestTopKForcedMatchesSort checks the O(n) selection against the
// definition (forced entries, then the rest in sorted order) on random data
// with many ties.
func TestTopKForcedMatchesSort(t *testing.T) {
	naive := func(x []float64, k int, forced ...int) []int {
		k = min(max(k, 1), len(x))
		in := map[int]bool{}
		var out []int
		for _, f := range forced {
			if f >= 0 && f < len(x) && !in[f] {
				in[f] = true
				out = append(out, f)
			}
		}
		for _, j := range share.SortedDesc(x) {
			if len(out) >= k {
				break
			}
			if !in[j] {
				in[j] = true
				out = append(out, j)
			}
		}
		slices.Sort(out)
		return out
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for trial := 0; trial < 500; trial++ {
		n := 1 + rng.IntN(400)
		x := make([]float64, n)
		for i := range x {
			x[i] = float64(rng.IntN(1 + rng.IntN(20))) // heavy ties
		}
		k := rng.IntN(n + 2)
		forced := []int{0, rng.IntN(n), n + 5}
		if got, want := share.TopKForced(x, k, forced...), naive(x, k, forced...); !slices.Equal(got, want) {
			t.Fatalf("n=%d k=%d forced=%v: %v, want %v", n, k, forced, got, want)
		}
	}
}
