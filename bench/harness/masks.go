package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// Mask is a per-head CSR list of causal key blocks per query block, the
// format every sparse method emits (docs/algorithm.md#block-lists) and kernels.SparseAttention
// reads: head h, query block r lists Cols[RowPtr[h·NB+r] : RowPtr[h·NB+r+1]]
// (sorted ascending, so the diagonal block r comes last).
type Mask struct {
	N, Block, Hq, NB int
	Density          float64 // requested; 1 = every causal block
	Seed             uint64
	RowPtr, Cols     []int32
}

// NumBlocks returns ⌈n/block⌉.
func NumBlocks(n, block int) int { return (n + block - 1) / block }

// RandomMask draws a random causal mask: in every (head, query block r) row,
// column block 0 and the diagonal block r always, plus distinct other blocks
// drawn uniformly from 1..r−1 so that the row lists round(density·(r+1))
// blocks (at least min(r+1, 2)). density ≥ 1 lists every causal block. The
// same arguments always give the same mask.
func RandomMask(seed uint64, n, block, hq int, density float64) *Mask {
	nb := NumBlocks(n, block)
	rng := rand.New(rand.NewPCG(seed, uint64(n)<<24^uint64(math.Round(density*1e6))))
	m := &Mask{N: n, Block: block, Hq: hq, NB: nb, Density: density, Seed: seed}
	m.RowPtr = make([]int32, 1, hq*nb+1)
	picked := map[int32]bool{}
	for h := 0; h < hq; h++ {
		for r := 0; r < nb; r++ {
			if density >= 1 {
				for c := 0; c <= r; c++ {
					m.Cols = append(m.Cols, int32(c))
				}
				m.RowPtr = append(m.RowPtr, int32(len(m.Cols)))
				continue
			}
			want := int(math.Round(density * float64(r+1)))
			want = min(r+1, max(want, min(r+1, 2)))
			start := len(m.Cols)
			m.Cols = append(m.Cols, 0)
			// Floyd's algorithm: extra distinct values from 1..r−1.
			if extra := want - 2; extra > 0 {
				clear(picked)
				lo, hi := 1, r-1 // inclusive
				for j := hi - extra + 1; j <= hi; j++ {
					t := int32(lo + rng.IntN(j-lo+1))
					if picked[t] {
						t = int32(j)
					}
					picked[t] = true
					m.Cols = append(m.Cols, t)
				}
			}
			if r > 0 {
				m.Cols = append(m.Cols, int32(r))
			}
			slices.Sort(m.Cols[start:])
			m.RowPtr = append(m.RowPtr, int32(len(m.Cols)))
		}
	}
	return m
}

// Validate checks the CSR invariants: monotone row pointers, causal sorted
// distinct columns.
func (m *Mask) Validate() error {
	if len(m.RowPtr) != m.Hq*m.NB+1 || m.RowPtr[0] != 0 || int(m.RowPtr[len(m.RowPtr)-1]) != len(m.Cols) {
		return fmt.Errorf("mask n=%d: row pointers do not cover the columns", m.N)
	}
	for i := 0; i < m.Hq*m.NB; i++ {
		r := i % m.NB
		if m.RowPtr[i+1] < m.RowPtr[i] || int(m.RowPtr[i+1]) > len(m.Cols) {
			return fmt.Errorf("mask n=%d: row pointers %d..%d of head %d row %d are out of order", m.N, m.RowPtr[i], m.RowPtr[i+1], i/m.NB, r)
		}
		row := m.Cols[m.RowPtr[i]:m.RowPtr[i+1]]
		for j, c := range row {
			if c < 0 || int(c) > r || (j > 0 && row[j-1] >= c) {
				return fmt.Errorf("mask n=%d: head %d row %d: columns %v are not sorted, distinct and causal", m.N, i/m.NB, r, row)
			}
		}
	}
	return nil
}

// CausalBlocks is Hq·nb(nb+1)/2.
func (m *Mask) CausalBlocks() int { return m.Hq * m.NB * (m.NB + 1) / 2 }

// Blocks counts listed blocks (all heads) and, among them, diagonal ones.
func (m *Mask) Blocks() (total, diagonal int) {
	for i := 0; i < m.Hq*m.NB; i++ {
		r := int32(i % m.NB)
		for _, c := range m.Cols[m.RowPtr[i]:m.RowPtr[i+1]] {
			total++
			if c == r {
				diagonal++
			}
		}
	}
	return total, diagonal
}

// ComputedDensity is listed blocks / causal blocks: the share of 128×128
// tiles the kernel computes.
func (m *Mask) ComputedDensity() float64 {
	t, _ := m.Blocks()
	return float64(t) / float64(m.CausalBlocks())
}

// ActualFLOPs is 4·B²·D·Σ_heads(full blocks + ½·diagonal blocks)
// (docs/benchmarks.md#throughput).
func (m *Mask) ActualFLOPs(d int) float64 {
	t, diag := m.Blocks()
	return 4 * float64(m.Block*m.Block) * float64(d) * (float64(t-diag) + 0.5*float64(diag))
}

// DenseFLOPs is the causal-halved dense count 2·Hq·n²·D (docs/benchmarks.md#throughput).
func DenseFLOPs(hq, n, d int) float64 { return 2 * float64(hq) * float64(n) * float64(n) * float64(d) }

// MaskEntry describes one exported mask in the manifest.
type MaskEntry struct {
	N               int     `json:"n"`
	NB              int     `json:"nb"`
	Density         float64 `json:"density"`
	Seed            uint64  `json:"seed"`
	Blocks          int     `json:"blocks"`
	DiagonalBlocks  int     `json:"diagonal_blocks"`
	CausalBlocks    int     `json:"causal_blocks"`
	ComputedDensity float64 `json:"computed_density"`
	RowPtr          string  `json:"row_ptr"` // file name of the int32 .npy [Hq·nb+1]
	Cols            string  `json:"cols"`    // file name of the int32 .npy [blocks]
}

// MaskManifest is masks.json in a mask directory.
type MaskManifest struct {
	Format string      `json:"format"`
	Block  int         `json:"block"`
	Hq     int         `json:"hq"`
	Hkv    int         `json:"hkv"`
	D      int         `json:"d"`
	Masks  []MaskEntry `json:"masks"`
}

// ManifestFormat documents the layout in every manifest.
const ManifestFormat = "per-head CSR of causal BxB blocks: head h, query block r lists cols[row_ptr[h*nb+r]:row_ptr[h*nb+r+1]] (absolute offsets, ascending, diagonal last); int32 little-endian .npy"

// MaskName is the file stem of a mask.
func MaskName(n int, density float64) string { return fmt.Sprintf("n%d_d%g", n, density) }

// Export writes the mask's two .npy files into dir and returns its entry.
func (m *Mask) Export(dir string) (MaskEntry, error) {
	name := MaskName(m.N, m.Density)
	e := MaskEntry{N: m.N, NB: m.NB, Density: m.Density, Seed: m.Seed, CausalBlocks: m.CausalBlocks(),
		RowPtr: name + "_row_ptr.npy", Cols: name + "_cols.npy"}
	e.Blocks, e.DiagonalBlocks = m.Blocks()
	e.ComputedDensity = float64(e.Blocks) / float64(e.CausalBlocks)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return e, err
	}
	if err := WriteNPYInt32(filepath.Join(dir, e.RowPtr), m.RowPtr); err != nil {
		return e, err
	}
	return e, WriteNPYInt32(filepath.Join(dir, e.Cols), m.Cols)
}

// WriteManifest writes dir/masks.json.
func WriteManifest(dir string, man *MaskManifest) error {
	man.Format = ManifestFormat
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "masks.json"), append(b, '\n'), 0o644)
}

// LoadMask reads one exported mask back.
func LoadMask(dir string, man *MaskManifest, e MaskEntry) (*Mask, error) {
	rp, err := ReadNPYInt32(filepath.Join(dir, e.RowPtr))
	if err != nil {
		return nil, err
	}
	cols, err := ReadNPYInt32(filepath.Join(dir, e.Cols))
	if err != nil {
		return nil, err
	}
	m := &Mask{N: e.N, Block: man.Block, Hq: man.Hq, NB: e.NB, Density: e.Density, Seed: e.Seed, RowPtr: rp, Cols: cols}
	return m, m.Validate()
}

// ReadManifest reads dir/masks.json.
func ReadManifest(dir string) (*MaskManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "masks.json"))
	if err != nil {
		return nil, err
	}
	var m MaskManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "masks.json"), err)
	}
	return &m, nil
}
