package calib

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCover(t *testing.T) {
	tests := []struct {
		name  string
		x     []float64
		gamma float64
		want  []int
	}{
		{"crossing entry included", []float64{0.2, 0.5, 0.3}, 0.6, []int{1, 2}},
		{"exact hit stops", []float64{0.2, 0.5, 0.3}, 0.8, []int{1, 2}},
		{"just above needs all", []float64{0.2, 0.5, 0.3}, 0.81, []int{0, 1, 2}},
		{"ties keep lower index", []float64{0.25, 0.25, 0.25, 0.25}, 0.5, []int{0, 1}},
		{"unnormalised row", []float64{2, 0, 6, 2}, 0.7, []int{0, 2}},
		{"zeros never kept", []float64{0, 1, 0}, 1, []int{1}},
		{"rounding keeps all non-zero", []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0}, 1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"all zero", []float64{0, 0}, 0.9, nil},
		{"gamma zero keeps top", []float64{0.1, 0.9}, 0, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cover(tc.x, tc.gamma); !slices.Equal(got, tc.want) {
				t.Fatalf("Cover(%v, %g) = %v, want %v", tc.x, tc.gamma, got, tc.want)
			}
		})
	}
}

// sinkDiag returns the map with half of every row on column 0 and half on
// the diagonal (row 0 has everything on (0,0)).
func sinkDiag(nb int) []float32 {
	m := make([]float32, nb*nb)
	m[0] = 1
	for r := 1; r < nb; r++ {
		m[r*nb] = 0.5
		m[r*nb+r] = 0.5
	}
	return m
}

// scatter returns a map whose rows put random weights on up to k random
// causal columns: a pattern no vertical-slash set captures.
func scatter(nb, k int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	m := make([]float32, nb*nb)
	for r := range nb {
		cols := rng.Perm(r + 1)[:min(k, r+1)]
		s := 0.0
		w := make([]float64, len(cols))
		for i := range w {
			w[i] = 0.2 + rng.Float64()
			s += w[i]
		}
		for i, c := range cols {
			m[r*nb+c] = float32(w[i] / s)
		}
	}
	return m
}

func TestRowCoverAndMass(t *testing.T) {
	m := []float32{
		1, 0, 0,
		0.6, 0.4, 0,
		0.1, 0.2, 0.7,
	}
	p, err := RowCover(m, 3, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	want := BlockSet{{0}, {0, 1}, {1, 2}}
	if !slices.EqualFunc(p, want, slices.Equal) {
		t.Fatalf("RowCover = %v, want %v", p, want)
	}
	if c, d := p.Count(), p.Density(); c != 5 || d != 5.0/6 {
		t.Fatalf("count %d density %g", c, d)
	}
	got, err := MassInside(m, 3, BlockSet{{0}, {1}, {0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (1 + 0.4 + 0.8) / 3; math.Abs(got-want) > 1e-6 {
		t.Fatalf("MassInside = %g, want %g", got, want)
	}
	if _, err := MassInside(m, 3, BlockSet{{0}, {2}, {0}}); err == nil {
		t.Error("non-causal block accepted")
	}
	if _, err := MassInside(m, 3, BlockSet{{0}}); err == nil {
		t.Error("short block set accepted")
	}
	if _, err := RowCover(m, 2, 0.9); err == nil {
		t.Error("wrong nb accepted")
	}
}

func TestVSFromMap(t *testing.T) {
	const nb = 16
	vs, err := VSFromMap(sinkDiag(nb), nb, 0.95, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for r, row := range vs {
		if !slices.Contains(row, 0) || !slices.Contains(row, r) {
			t.Fatalf("row %d = %v lacks the sink or the diagonal", r, row)
		}
		if !slices.IsSorted(row) || slices.Max(row) > r {
			t.Fatalf("row %d = %v not sorted or not causal", r, row)
		}
	}
	if mass, _ := MassInside(sinkDiag(nb), nb, vs); math.Abs(mass-1) > 1e-9 {
		t.Fatalf("VS captures %g of a sink+diagonal map, want 1", mass)
	}
	// Budgets are clamped to [minBlocks, nb].
	full, _ := VSFromMap(sinkDiag(nb), nb, 0.95, 100, 0)
	if full.Count() != nb*(nb+1)/2 {
		t.Fatalf("min budget nb gives %d blocks, want all %d", full.Count(), nb*(nb+1)/2)
	}
	// A cap of one block keeps only column 0 and offset 0.
	tiny, _ := VSFromMap(scatter(nb, 3, 5), nb, 0.95, 1, 1)
	for r, row := range tiny {
		want := []int{0, r}
		if r == 0 {
			want = []int{0}
		}
		if !slices.Equal(row, want) {
			t.Fatalf("capped row %d = %v, want %v", r, row, want)
		}
	}
}

func TestSelectShared(t *testing.T) {
	const nb = 32
	h := func(l, hd int) HeadID { return HeadID{l, hd} }
	clusters := []Cluster{
		{ID: 1, Members: []HeadID{h(4, 1), h(0, 2), h(2, 5)}}, // identical scattered maps: shared (pivot (0,2))
		{ID: 2, Members: []HeadID{h(0, 3), h(1, 3), h(2, 3)}}, // sink+diagonal: keep 1 but VS already has it
		{ID: 3, Members: []HeadID{h(0, 4), h(1, 4), h(2, 4)}}, // unrelated scatters: low keep
		{ID: 4, Members: []HeadID{h(3, 0), h(3, 1)}},          // one layer only: nothing to compare
	}
	prompt := func(nb int, seed uint64) PromptMaps {
		pm := PromptMaps{NB: nb, Maps: map[HeadID][]float32{}}
		same := scatter(nb, 3, seed)
		for _, id := range clusters[0].Members {
			pm.Maps[id] = same
		}
		for _, id := range clusters[1].Members {
			pm.Maps[id] = sinkDiag(nb)
		}
		for i, id := range clusters[2].Members {
			pm.Maps[id] = scatter(nb, 3, seed+uint64(10+i))
		}
		for _, id := range clusters[3].Members {
			pm.Maps[id] = same
		}
		return pm
	}
	prompts := []PromptMaps{prompt(nb, 1), prompt(24, 2)}
	opts := SelectOptions{MinVSBlocks: 2, MaxVSBlocks: 4}
	got, err := SelectShared(clusters, prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantShared := []bool{true, false, false, false}
	for i, s := range got {
		t.Logf("cluster %d pivot %v keep %.3f vs %.3f gain %.3f dens %.3f n %d shared %v", s.ID, s.Pivot, s.Keep, s.VS, s.Gain, s.Dens, s.Compared, s.Shared)
		if s.Shared != wantShared[i] {
			t.Errorf("cluster %d shared = %v, want %v", s.ID, s.Shared, wantShared[i])
		}
	}
	if got[0].Pivot != h(0, 2) || got[0].Compared != 4 || got[0].Keep < 0.95 || got[0].Gain < 0.3 {
		t.Errorf("cluster 1: %+v", got[0])
	}
	if got[1].Keep != 1 || math.Abs(got[1].VS-1) > 1e-9 || got[1].Gain > 1e-9 {
		t.Errorf("cluster 2: %+v", got[1])
	}
	if got[2].Keep > 0.6 {
		t.Errorf("cluster 3 keep %g, want low", got[2].Keep)
	}
	if got[3].Compared != 0 || got[3].Keep != 0 || got[3].Dens == 0 {
		t.Errorf("cluster 4: %+v", got[3])
	}

	// A supplied VS set overrides VSFromMap: with only the sink column the
	// sink+diagonal cluster gains half of every row and becomes shared.
	for i := range prompts {
		prompts[i].VS = map[HeadID]BlockSet{}
		for _, id := range clusters[1].Members {
			s := make(BlockSet, prompts[i].NB)
			for r := range s {
				s[r] = []int{0}
			}
			prompts[i].VS[id] = s
		}
	}
	got, err = SelectShared(clusters[1:2], prompts, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Shared || got[0].VS > 0.6 {
		t.Errorf("with sink-only VS: %+v", got[0])
	}

	// Thresholds: κ above the achievable keep turns sharing off.
	got, _ = SelectShared(clusters[:1], prompts, SelectOptions{Kappa: 1.01, MaxVSBlocks: 4})
	if got[0].Shared {
		t.Error("κ > 1 still shares")
	}
	got, _ = SelectShared(clusters[:1], prompts, SelectOptions{MinGain: 0.99, MaxVSBlocks: 4})
	if got[0].Shared {
		t.Error("min gain 0.99 still shares")
	}
}

func TestSelectSharedErrors(t *testing.T) {
	cl := []Cluster{{ID: 1, Members: []HeadID{{0, 0}, {1, 0}}}}
	if _, err := SelectShared(cl, nil, SelectOptions{}); err == nil {
		t.Error("no prompts accepted")
	}
	pm := PromptMaps{NB: 4, Maps: map[HeadID][]float32{{0, 0}: sinkDiag(4)}}
	if _, err := SelectShared(cl, []PromptMaps{pm}, SelectOptions{}); err == nil {
		t.Error("missing member map accepted")
	}
	if _, err := SelectShared([]Cluster{{ID: 2}}, []PromptMaps{pm}, SelectOptions{}); err == nil {
		t.Error("empty cluster accepted")
	}
}
