package share

import (
	"fmt"
	"slices"
)

// BlockList is the per-head list of computed blocks in CSR form: row r
// (query block r) computes key blocks Cols[RowPtr[r]:RowPtr[r+1]]. Columns
// are sorted ascending, unique and causal (c ≤ r). This is the format the
// block-sparse kernel consumes (docs/algorithm.md#block-lists,
// docs/vulkan.md#block-sparse-attention).
type BlockList struct {
	// NB is the number of block rows (and columns), ⌈n/B⌉.
	NB int `json:"nb"`
	// RowPtr has NB+1 entries; RowPtr[0] = 0, RowPtr[NB] = len(Cols).
	RowPtr []int32 `json:"row_ptr"`
	// Cols holds the key-block columns of every row, row after row.
	Cols []int32 `json:"cols"`
}

// CausalBlocks returns nb(nb+1)/2, the number of causal blocks.
func CausalBlocks(nb int) int { return nb * (nb + 1) / 2 }

// NumBlocks returns the number of listed blocks.
func (l *BlockList) NumBlocks() int { return len(l.Cols) }

// Density returns listed blocks / causal blocks (0 for an empty grid).
func (l *BlockList) Density() float64 {
	cb := CausalBlocks(l.NB)
	if cb == 0 {
		return 0
	}
	return float64(len(l.Cols)) / float64(cb)
}

// Row returns the sorted columns of row r (a view, not a copy).
func (l *BlockList) Row(r int) []int32 { return l.Cols[l.RowPtr[r]:l.RowPtr[r+1]] }

// Contains reports whether block (r, c) is listed.
func (l *BlockList) Contains(r, c int) bool {
	if r < 0 || r >= l.NB {
		return false
	}
	_, ok := slices.BinarySearch(l.Row(r), int32(c))
	return ok
}

// Validate checks the CSR invariants: lengths, monotone row pointers,
// strictly ascending causal columns.
func (l *BlockList) Validate() error {
	if l.NB < 0 {
		return fmt.Errorf("share: block list: negative nb %d", l.NB)
	}
	if len(l.RowPtr) != l.NB+1 {
		return fmt.Errorf("share: block list: len(RowPtr) = %d, want nb+1 = %d", len(l.RowPtr), l.NB+1)
	}
	if l.RowPtr[0] != 0 || int(l.RowPtr[l.NB]) != len(l.Cols) {
		return fmt.Errorf("share: block list: RowPtr[0] = %d and RowPtr[nb] = %d, want 0 and %d", l.RowPtr[0], l.RowPtr[l.NB], len(l.Cols))
	}
	for r := 0; r < l.NB; r++ {
		if l.RowPtr[r+1] < l.RowPtr[r] {
			return fmt.Errorf("share: block list: RowPtr decreases at row %d", r)
		}
		row := l.Row(r)
		for i, c := range row {
			if c < 0 || int(c) > r {
				return fmt.Errorf("share: block list: row %d has non-causal column %d", r, c)
			}
			if i > 0 && row[i-1] >= c {
				return fmt.Errorf("share: block list: row %d columns not strictly ascending at %d", r, i)
			}
		}
	}
	return nil
}

// DenseList returns the list of every causal block of an nb×nb grid.
func DenseList(nb int) *BlockList {
	l := &BlockList{NB: nb, RowPtr: make([]int32, nb+1), Cols: make([]int32, 0, CausalBlocks(nb))}
	for r := 0; r < nb; r++ {
		for c := 0; c <= r; c++ {
			l.Cols = append(l.Cols, int32(c))
		}
		l.RowPtr[r+1] = int32(len(l.Cols))
	}
	return l
}

// ListFromMask builds a list from a dense nb×nb boolean mask (row-major);
// non-causal entries are ignored.
func ListFromMask(nb int, mask []bool) *BlockList {
	b := newListBuilder(nb)
	for r := 0; r < nb; r++ {
		for c := 0; c <= r; c++ {
			if mask[r*nb+c] {
				b.add(r, c)
			}
		}
		b.endRow()
	}
	return b.finish()
}

// Mask expands the list into a dense nb×nb boolean mask (row-major).
func (l *BlockList) Mask() []bool {
	m := make([]bool, l.NB*l.NB)
	for r := 0; r < l.NB; r++ {
		for _, c := range l.Row(r) {
			m[r*l.NB+int(c)] = true
		}
	}
	return m
}

// listBuilder accumulates rows of a BlockList. Within a row, columns may be
// added in any order and repeatedly; non-causal columns are dropped.
// endRow sorts and de-duplicates the row.
type listBuilder struct {
	nb    int
	r     int
	stamp []int32 // stamp[c] == r+1 when c is already in row r
	l     *BlockList
	start int
}

func newListBuilder(nb int) *listBuilder { return newListBuilderCap(nb, 0) }

// newListBuilderCap preallocates room for capHint blocks (clamped to the
// causal count).
func newListBuilderCap(nb, capHint int) *listBuilder {
	capHint = min(max(capHint, nb), CausalBlocks(nb))
	return &listBuilder{
		nb:    nb,
		stamp: make([]int32, nb),
		l:     &BlockList{NB: nb, RowPtr: make([]int32, nb+1), Cols: make([]int32, 0, capHint)},
	}
}

// add inserts column c into the current row r (r must equal the row being
// built; it is passed for clarity and checked).
func (b *listBuilder) add(r, c int) {
	if r != b.r || c < 0 || c > r {
		return
	}
	if b.stamp[c] == int32(r+1) {
		return
	}
	b.stamp[c] = int32(r + 1)
	b.l.Cols = append(b.l.Cols, int32(c))
}

func (b *listBuilder) endRow() {
	if row := b.l.Cols[b.start:]; !slices.IsSorted(row) {
		slices.Sort(row)
	}
	b.l.RowPtr[b.r+1] = int32(len(b.l.Cols))
	b.start = len(b.l.Cols)
	b.r++
}

func (b *listBuilder) finish() *BlockList {
	for b.r < b.nb {
		b.endRow()
	}
	return b.l
}

// BlockMap is a dense nb×nb block attention map (row-major). For the exact
// map Â every causal row sums to 1 and non-causal entries are 0.
type BlockMap struct {
	NB   int
	Data []float64
}

// NewBlockMap returns a zero nb×nb map.
func NewBlockMap(nb int) *BlockMap { return &BlockMap{NB: nb, Data: make([]float64, nb*nb)} }

// At returns entry (r, c).
func (m *BlockMap) At(r, c int) float64 { return m.Data[r*m.NB+c] }

// Row returns row r (a view).
func (m *BlockMap) Row(r int) []float64 { return m.Data[r*m.NB : (r+1)*m.NB] }

// Validate checks the shape.
func (m *BlockMap) Validate() error {
	if m == nil {
		return fmt.Errorf("share: nil block map")
	}
	if m.NB < 0 || len(m.Data) != m.NB*m.NB {
		return fmt.Errorf("share: block map: len(Data) = %d, want nb² = %d", len(m.Data), m.NB*m.NB)
	}
	return nil
}

// Recall returns the mean over rows of the map's mass inside the list:
// (1/nb)·Σ_r Σ_{c ∈ list[r]} m[r, c]. For the exact map Â this is the
// attention recall of the list (docs/benchmarks.md#accuracy).
func (m *BlockMap) Recall(l *BlockList) float64 {
	if m.NB == 0 || l.NB != m.NB {
		return 0
	}
	var s float64
	for r := 0; r < m.NB; r++ {
		row := m.Row(r)
		for _, c := range l.Row(r) {
			s += row[c]
		}
	}
	return s / float64(m.NB)
}
