package calib

import (
	"fmt"
	"math/bits"
)

// Pattern is a binary block pattern of an nb×nb map stored as a bitset
// (bit r·nb+c set when block (r,c) is kept).
type Pattern struct {
	NB   int
	bits []uint64
}

// NewPattern converts a block set to a bitset pattern.
func NewPattern(s BlockSet) Pattern {
	nb := len(s)
	p := Pattern{NB: nb, bits: make([]uint64, (nb*nb+63)/64)}
	for r, row := range s {
		for _, c := range row {
			k := r*nb + c
			p.bits[k/64] |= 1 << (k % 64)
		}
	}
	return p
}

// PatternFromMap returns the per-row cover pattern (RowCover at γ) of an
// exact block map as a bitset.
func PatternFromMap(m []float32, nb int, gamma float64) (Pattern, error) {
	s, err := RowCover(m, nb, gamma)
	if err != nil {
		return Pattern{}, err
	}
	return NewPattern(s), nil
}

// Jaccard returns |a∩b| / |a∪b|, or 1 when both patterns are empty.
func Jaccard(a, b Pattern) (float64, error) {
	if a.NB != b.NB {
		return 0, fmt.Errorf("jaccard: patterns of sizes %d and %d", a.NB, b.NB)
	}
	var in, un int
	for i, x := range a.bits {
		y := b.bits[i]
		in += bits.OnesCount64(x & y)
		un += bits.OnesCount64(x | y)
	}
	if un == 0 {
		return 1, nil
	}
	return float64(in) / float64(un), nil
}

// JaccardReport is the sanity check of docs/algorithm.md#jaccard-check.
type JaccardReport struct {
	Within      float64 `json:"within"`       // mean Jaccard over pairs in the same cluster
	Across      float64 `json:"across"`       // mean Jaccard over pairs in different clusters
	WithinPairs int     `json:"within_pairs"` // number of same-cluster pairs
	AcrossPairs int     `json:"across_pairs"` // number of cross-cluster pairs
}

// JaccardCheck computes the mean within-cluster and across-cluster Jaccard
// similarity of the binary patterns of clustered heads; labels[i] is the
// cluster of patterns[i] and Noise points are skipped. A mean over zero
// pairs is reported as 0. Clusters that capture real structure show Within
// well above Across.
func JaccardCheck(patterns []Pattern, labels []int) (JaccardReport, error) {
	var rep JaccardReport
	if len(patterns) != len(labels) {
		return rep, fmt.Errorf("jaccard check: %d patterns and %d labels", len(patterns), len(labels))
	}
	var ws, as float64
	for i := range patterns {
		if labels[i] < 0 {
			continue
		}
		for j := i + 1; j < len(patterns); j++ {
			if labels[j] < 0 {
				continue
			}
			v, err := Jaccard(patterns[i], patterns[j])
			if err != nil {
				return rep, fmt.Errorf("jaccard check: heads %d and %d: %w", i, j, err)
			}
			if labels[i] == labels[j] {
				ws += v
				rep.WithinPairs++
			} else {
				as += v
				rep.AcrossPairs++
			}
		}
	}
	if rep.WithinPairs > 0 {
		rep.Within = ws / float64(rep.WithinPairs)
	}
	if rep.AcrossPairs > 0 {
		rep.Across = as / float64(rep.AcrossPairs)
	}
	return rep, nil
}
