package calib

import "fmt"

// AdjustedRandIndex returns the adjusted Rand index (Hubert & Arabie 1985)
// between two labelings of the same points: 1 for identical partitions (up
// to renaming), about 0 for independent ones, negative when worse than
// chance. Every label value is a class of its own, including Noise (−1), so
// callers that want to ignore noise must drop those points first. When the
// index is undefined (both partitions trivial in the same way, e.g. a single
// point or both all-singletons) it returns 1, as scikit-learn does.
func AdjustedRandIndex(a, b []int) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("adjusted Rand index: %d and %d labels", len(a), len(b))
	}
	n := len(a)
	type pair struct{ x, y int }
	cont := map[pair]int{}
	ra, rb := map[int]int{}, map[int]int{}
	for i := range n {
		cont[pair{a[i], b[i]}]++
		ra[a[i]]++
		rb[b[i]]++
	}
	c2 := func(k int) float64 { return float64(k) * float64(k-1) / 2 }
	index := 0.0
	for _, v := range cont {
		index += c2(v)
	}
	sa, sb := 0.0, 0.0
	for _, v := range ra {
		sa += c2(v)
	}
	for _, v := range rb {
		sb += c2(v)
	}
	total := c2(n)
	if total == 0 {
		return 1, nil
	}
	expected := sa * sb / total
	maxIndex := (sa + sb) / 2
	if maxIndex == expected {
		return 1, nil
	}
	return (index - expected) / (maxIndex - expected), nil
}
