package calib

import (
	"cmp"
	"fmt"
	"math"
)

// HeadID names one query head of one layer, both 0-based. It is the
// [layer, query_head] pair of the cluster file (docs/algorithm.md#cluster-file).
type HeadID struct {
	Layer int `json:"layer"`
	Head  int `json:"head"`
}

// String formats the head as "(layer,head)".
func (h HeadID) String() string { return fmt.Sprintf("(%d,%d)", h.Layer, h.Head) }

// Compare orders heads by (layer, head), the order in which the online phase
// visits them; it returns -1, 0 or +1.
func (h HeadID) Compare(o HeadID) int {
	if c := cmp.Compare(h.Layer, o.Layer); c != 0 {
		return c
	}
	return cmp.Compare(h.Head, o.Head)
}

// HeadMap is the exact block attention map Â of one head (docs/algorithm.md#notation):
// NB×NB, row-major, lower triangular, every causal row summing to 1. It may be
// an average over several calibration prompts.
type HeadMap struct {
	ID   HeadID
	NB   int       // blocks per side
	Data []float32 // NB*NB values, Data[r*NB+c] = Â[r,c]
}

// Validate checks the shape of the map and that its values are finite and
// non-negative. It does not require the rows to sum to exactly 1.
func (m HeadMap) Validate() error {
	if m.NB <= 0 {
		return fmt.Errorf("head %v: nb = %d, want > 0", m.ID, m.NB)
	}
	if len(m.Data) != m.NB*m.NB {
		return fmt.Errorf("head %v: %d values, want nb² = %d", m.ID, len(m.Data), m.NB*m.NB)
	}
	for i, v := range m.Data {
		if !(v >= 0) || math.IsInf(float64(v), 1) { // NaN fails v >= 0
			return fmt.Errorf("head %v: value %g at (%d,%d) is not finite and non-negative", m.ID, v, i/m.NB, i%m.NB)
		}
	}
	return nil
}

// Cluster is one cluster of heads. ID is 1-based, as in the cluster file.
// Members are sorted in (layer, head) order, so Members[0] is the head that
// becomes the pivot when every member is eligible.
type Cluster struct {
	ID      int      `json:"id"`
	Members []HeadID `json:"members"`
}
