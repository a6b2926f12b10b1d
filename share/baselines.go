package share

import (
	"fmt"
	"slices"
	"time"
)

// Dense is the planner that lists every causal block of every head (the
// exactness reference). It reads no estimates; PlanLayer accepts nil.
type Dense struct {
	blockSize int
	st        callState
	stats     *Stats
}

// NewDense returns a dense planner on a grid of blockSize tokens.
func NewDense(blockSize int) (*Dense, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return nil, fmt.Errorf("share: new dense planner: %w", err)
	}
	return &Dense{blockSize: blockSize}, nil
}

// Name implements Planner.
func (d *Dense) Name() string { return "dense" }

// Needs implements Planner: nothing.
func (d *Dense) Needs() Needs { return Needs{BlockSize: d.blockSize} }

// Begin implements Planner.
func (d *Dense) Begin(n, numLayers, numHeads, numKVHeads int) error {
	if err := d.st.begin("dense", n, numLayers, numHeads, numKVHeads, d.blockSize); err != nil {
		return err
	}
	d.stats = newStats("dense", n, d.st.nb, d.blockSize, numLayers, numHeads, numKVHeads)
	return nil
}

// PlanLayer implements Planner; est is ignored and may be nil.
func (d *Dense) PlanLayer(layer int, est *LayerEstimates) (*LayerPlan, error) {
	start := time.Now()
	if err := d.st.checkLayer("dense", layer, est, false); err != nil {
		return nil, err
	}
	nb := d.st.nb
	list := DenseList(nb) // shared by every head; lists are read-only
	plan := &LayerPlan{Layer: layer, N: d.st.n, NB: nb, BlockSize: d.blockSize, Heads: make([]HeadPlan, d.st.numHeads)}
	for h := range plan.Heads {
		plan.Heads[h] = HeadPlan{Method: MethodDense, List: list}
	}
	d.st.nextLayer++
	d.stats.finishLayer(plan, make([]HeadStat, len(plan.Heads)), time.Since(start))
	return plan, nil
}

// ObserveMap implements Planner; the dense planner requests no maps.
func (d *Dense) ObserveMap(layer, head int, m *BlockMap) error {
	return fmt.Errorf("share: dense: ObserveMap(%d, %d): no map was requested", layer, head)
}

// Stats implements Planner.
func (d *Dense) Stats() *Stats { return d.stats }

// VSConfig configures the MInference vertical-slash baseline
// (docs/algorithm.md#vertical-slash). Sizes are in tokens; the selection is mapped to
// the BlockSize grid by the rule of docs/algorithm.md#mapping-to-the-block-grid.
type VSConfig struct {
	// BlockSize is the grid block B (128).
	BlockSize int `json:"block_size"`
	// LastQ is the estimate window: the last min(LastQ, n) queries (64).
	LastQ int `json:"last_q"`
	// VerticalSize is the number of vertical token columns kept (1000).
	VerticalSize int `json:"vertical_size"`
	// SlashSize is the number of slash token offsets kept (6096).
	SlashSize int `json:"slash_size"`
	// ForcedColumns forces columns 0…ForcedColumns−1 in (30: sinks).
	ForcedColumns int `json:"forced_columns"`
	// ForcedDiagonals forces offsets 0…ForcedDiagonals−1 in (100: local).
	ForcedDiagonals int `json:"forced_diagonals"`
	// Tile is MInference's native row tile (64); each block row is split in
	// tiles of min(Tile, BlockSize) rows for the slash mapping.
	Tile int `json:"tile"`
}

// DefaultVSConfig returns MInference's defaults for a head without a config
// entry: (1000, 6096) on the 128-block grid, window 64, 30 forced sink
// columns, 100 forced diagonals.
func DefaultVSConfig() VSConfig {
	return VSConfig{BlockSize: 128, LastQ: 64, VerticalSize: 1000, SlashSize: 6096, ForcedColumns: 30, ForcedDiagonals: 100, Tile: 64}
}

// Validate checks the configuration.
func (c *VSConfig) Validate() error {
	if err := checkBlockSize(c.BlockSize); err != nil {
		return fmt.Errorf("share: invalid vertical-slash config: %w", err)
	}
	if c.LastQ < 1 || c.Tile < 1 {
		return fmt.Errorf("share: invalid vertical-slash config: last_q %d and tile %d must be ≥ 1", c.LastQ, c.Tile)
	}
	if c.VerticalSize < 0 || c.SlashSize < 0 || c.ForcedColumns < 0 || c.ForcedDiagonals < 0 {
		return fmt.Errorf("share: invalid vertical-slash config: negative size")
	}
	return nil
}

// VerticalSlash is the MInference vertical-slash baseline with fixed
// budgets, selected at token level from the last LastQ queries (WinV/WinS)
// and mapped to the block grid.
type VerticalSlash struct {
	cfg   VSConfig
	st    callState
	stats *Stats
}

// NewVerticalSlash returns the MInference-style planner.
func NewVerticalSlash(cfg VSConfig) (*VerticalSlash, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("share: new vertical-slash planner: %w", err)
	}
	return &VerticalSlash{cfg: cfg}, nil
}

// Config returns the planner's configuration.
func (v *VerticalSlash) Config() VSConfig { return v.cfg }

// Name implements Planner.
func (v *VerticalSlash) Name() string { return "vertical-slash" }

// Needs implements Planner: WinV and WinS over the last LastQ queries.
func (v *VerticalSlash) Needs() Needs { return Needs{BlockSize: v.cfg.BlockSize, Window: v.cfg.LastQ} }

// Begin implements Planner.
func (v *VerticalSlash) Begin(n, numLayers, numHeads, numKVHeads int) error {
	if err := v.st.begin("vertical-slash", n, numLayers, numHeads, numKVHeads, v.cfg.BlockSize); err != nil {
		return err
	}
	v.stats = newStats("vertical-slash", n, v.st.nb, v.cfg.BlockSize, numLayers, numHeads, numKVHeads)
	cfg := v.cfg
	v.stats.VSConfig = &cfg
	return nil
}

// PlanLayer implements Planner.
func (v *VerticalSlash) PlanLayer(layer int, est *LayerEstimates) (*LayerPlan, error) {
	start := time.Now()
	if err := v.st.checkLayer("vertical-slash", layer, est, true); err != nil {
		return nil, err
	}
	n, nb := v.st.n, v.st.nb
	plan := &LayerPlan{Layer: layer, N: n, NB: nb, BlockSize: v.cfg.BlockSize, Heads: make([]HeadPlan, v.st.numHeads)}
	stats := make([]HeadStat, v.st.numHeads)
	for h := range plan.Heads {
		he := &est.Heads[h]
		if len(he.WinV) != n || len(he.WinS) != n {
			return nil, fmt.Errorf("share: vertical-slash: layer %d head %d: len(WinV) = %d, len(WinS) = %d, want n = %d", layer, h, len(he.WinV), len(he.WinS), n)
		}
		cols, offs := v.SelectTokens(he.WinV, he.WinS)
		plan.Heads[h] = HeadPlan{Method: MethodVerticalSlash, List: MapVSToBlocks(n, v.cfg.BlockSize, v.cfg.Tile, cols, offs)}
		stats[h].Nv, stats[h].Ns = len(cols), len(offs)
	}
	v.st.nextLayer++
	v.stats.finishLayer(plan, stats, time.Since(start))
	return plan, nil
}

// SelectTokens applies MInference's token-level selection (docs/algorithm.md#vertical-slash)
// to the window estimates of one head: the top v = min(n, max(VerticalSize,
// 30)) columns with columns 0…ForcedColumns−1 forced, and the top
// s = min(n, max(SlashSize, 50)) offsets among the full diagonals
// o ≤ n − L (the L−1 partial far diagonals are dropped) with offsets
// 0…ForcedDiagonals−1 forced. Both results are sorted ascending.
func (v *VerticalSlash) SelectTokens(winV, winS []float64) (cols, offs []int) {
	n := len(winV)
	l := min(v.cfg.LastQ, n)
	nv := min(n, max(v.cfg.VerticalSize, 30))
	ns := min(n, max(v.cfg.SlashSize, 50))
	forced := make([]int, 0, max(v.cfg.ForcedColumns, v.cfg.ForcedDiagonals))
	for j := 0; j < min(v.cfg.ForcedColumns, nv); j++ {
		forced = append(forced, j)
	}
	cols = TopKForced(winV, nv, forced...)
	full := winS[:n-l+1]
	forced = forced[:0]
	for o := 0; o < min(v.cfg.ForcedDiagonals, ns, len(full)); o++ {
		forced = append(forced, o)
	}
	offs = TopKForced(full, min(ns, len(full)), forced...)
	return cols, offs
}

// MapVSToBlocks maps token-level vertical columns and slash offsets to the
// block grid (docs/algorithm.md#mapping-to-the-block-grid): block (r, c)
// is on if a kept column j has j/B = c ≤ r, or if, for some row tile of
// block row r (tiles of min(tile, B) rows; the two 64-row halves at B = 128), the key range
// [a−o, b−1−o] of a kept offset o over the tile's rows [a, b) meets block c.
// The cost is O(nb²·B/tile + n) per head, independent of the budgets.
func MapVSToBlocks(n, blockSize, tile int, cols, offs []int) *BlockList {
	nb := NumBlocks(n, blockSize)
	t := min(tile, blockSize)
	// prefix[o+1] = number of kept offsets ≤ o.
	prefix := make([]int, n+1)
	for _, o := range offs {
		if o >= 0 && o < n {
			prefix[o+1]++
		}
	}
	for o := 0; o < n; o++ {
		prefix[o+1] += prefix[o]
	}
	count := func(lo, hi int) int { // kept offsets in [lo, hi]
		lo = max(lo, 0)
		hi = min(hi, n-1)
		if lo > hi {
			return 0
		}
		return prefix[hi+1] - prefix[lo]
	}
	vcols := make([]int, 0, len(cols))
	for _, j := range cols {
		if j >= 0 && j < n {
			vcols = append(vcols, j/blockSize)
		}
	}
	slices.Sort(vcols)
	vcols = slices.Compact(vcols)
	b := newListBuilder(nb)
	for r := 0; r < nb; r++ {
		for _, c := range vcols {
			if c > r {
				break
			}
			b.add(r, c)
		}
		rowEnd := min((r+1)*blockSize, n)
		for a := r * blockSize; a < rowEnd; a += t {
			e := min(a+t, rowEnd) // rows [a, e)
			for c := 0; c <= r; c++ {
				// offset o meets block c iff a−o ≤ cB+B−1 and e−1−o ≥ cB.
				if count(a-c*blockSize-blockSize+1, e-1-c*blockSize) > 0 {
					b.add(r, c)
				}
			}
		}
		b.endRow()
	}
	return b.finish()
}

// ObserveMap implements Planner; the vertical-slash planner requests no
// maps.
func (v *VerticalSlash) ObserveMap(layer, head int, m *BlockMap) error {
	return fmt.Errorf("share: vertical-slash: ObserveMap(%d, %d): no map was requested", layer, head)
}

// Stats implements Planner.
func (v *VerticalSlash) Stats() *Stats { return v.stats }

// Compile-time interface checks.
var (
	_ Planner            = (*SharePrefill)(nil)
	_ Planner            = (*Dense)(nil)
	_ Planner            = (*VerticalSlash)(nil)
	_ QueryAwareSelector = (*SharePrefill)(nil)
)
