package calib

import (
	"math"
	"testing"
)

func TestJaccard(t *testing.T) {
	a := NewPattern(BlockSet{{0}, {0, 1}})
	b := NewPattern(BlockSet{{0}, {1}})
	c := NewPattern(BlockSet{{}, {}})
	tests := []struct {
		name string
		x, y Pattern
		want float64
	}{
		{"subset", a, b, 2.0 / 3},
		{"self", a, a, 1},
		{"both empty", c, c, 1},
		{"one empty", a, c, 0},
	}
	for _, tc := range tests {
		got, err := Jaccard(tc.x, tc.y)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %g, %v; want %g", tc.name, got, err, tc.want)
		}
	}
	if _, err := Jaccard(a, NewPattern(BlockSet{{0}})); err == nil {
		t.Error("size mismatch accepted")
	}

	d := NewPattern(BlockSet{{0}, {0}})
	rep, err := JaccardCheck([]Pattern{a, b, d, c}, []int{0, 0, 1, Noise})
	if err != nil {
		t.Fatal(err)
	}
	// within: J(a,b) = 2/3; across: J(a,d) = 2/3, J(b,d) = 1/3.
	if rep.WithinPairs != 1 || rep.AcrossPairs != 2 || math.Abs(rep.Within-2.0/3) > 1e-12 || math.Abs(rep.Across-0.5) > 1e-12 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := JaccardCheck([]Pattern{a}, nil); err == nil {
		t.Error("length mismatch accepted")
	}
}

// TestJaccardCheckFamilies checks that true families of synthetic heads at
// one nb have a much higher within- than across-family Jaccard similarity.
func TestJaccardCheckFamilies(t *testing.T) {
	maps, truth := synthHeads(6, 21)
	var pats []Pattern
	var labels []int
	for _, m := range maps {
		// Re-pool every map to 48×48 blocks so that patterns are comparable.
		p, err := Pool(m.Data, m.NB, PoolOptions{Grid: 48, Scale: ScaleNone})
		if err != nil {
			t.Fatal(err)
		}
		m32 := make([]float32, len(p))
		for i, v := range p {
			m32[i] = float32(v)
		}
		pat, err := PatternFromMap(m32, 48, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		pats = append(pats, pat)
		labels = append(labels, truth[m.ID])
	}
	rep, err := JaccardCheck(pats, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("within %.3f (%d pairs) across %.3f (%d pairs)", rep.Within, rep.WithinPairs, rep.Across, rep.AcrossPairs)
	if !(rep.Within > rep.Across+0.2) {
		t.Errorf("within %g not well above across %g", rep.Within, rep.Across)
	}
}
