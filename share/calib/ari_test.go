package calib

import (
	"math"
	"testing"
)

// Known values; the non-trivial ones match scikit-learn's
// adjusted_rand_score and hand computation from the contingency table.
func TestAdjustedRandIndex(t *testing.T) {
	tests := []struct {
		name string
		a, b []int
		want float64
	}{
		{"identical", []int{0, 0, 1, 1}, []int{0, 0, 1, 1}, 1},
		{"renamed", []int{0, 0, 1, 1}, []int{1, 1, 0, 0}, 1},
		{"crossed", []int{0, 0, 1, 1}, []int{0, 1, 0, 1}, -0.5},
		{"split one", []int{0, 0, 1, 1}, []int{0, 0, 1, 2}, 4.0 / 7},
		{"all vs singletons", []int{0, 0, 0, 0}, []int{0, 1, 2, 3}, 0},
		{"sklearn doc", []int{0, 0, 0, 1, 1, 1}, []int{0, 0, 1, 1, 2, 2}, 0.8 / 3.3},
		{"noise is a label", []int{-1, -1, 0, 0}, []int{5, 5, 7, 7}, 1},
		{"both singletons", []int{0, 1, 2}, []int{2, 1, 0}, 1},
		{"single point", []int{3}, []int{4}, 1},
		{"empty", nil, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AdjustedRandIndex(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("ARI = %.15g, want %.15g", got, tc.want)
			}
			rev, _ := AdjustedRandIndex(tc.b, tc.a)
			if math.Abs(rev-got) > 1e-12 {
				t.Fatalf("not symmetric: %g vs %g", got, rev)
			}
		})
	}
	if _, err := AdjustedRandIndex([]int{0}, []int{0, 1}); err == nil {
		t.Error("length mismatch accepted")
	}
}
