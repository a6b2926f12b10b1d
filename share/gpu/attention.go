package gpu

import (
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// Options configures an Attention.
type Options struct {
	// DenseBelow makes prompts of fewer than DenseBelow tokens use dense
	// flash attention for the whole call. Prompts shorter than one block
	// and calls that append to a non-empty cache (q0 ≠ 0, e.g. decode
	// steps) always do.
	DenseBelow int
	// Profile collects the GPU time of the estimation and of the attention
	// of every layer (Recorder.EnableProfiling) and stores it with
	// Stats.SetGPUTime. It adds submits: one before the estimation of each
	// layer and one after its attention.
	Profile bool
	// Gamma is the γ of the token budgets Kv and Ks, used only when the
	// planner reads last-block estimates and has no Config() share.Config
	// method (SharePrefill and FlexPrefill have one and their γ wins).
	Gamma float64
	// OnPlan, if set, is called with every layer plan right after
	// PlanLayer (logging, tests). The plan must not be modified.
	OnPlan func(plan *share.LayerPlan)
}

// Attention runs a share.Planner inside model.Engine prefill: per layer it
// computes the estimates the planner needs on the GPU, plans, uploads one
// CSR block list for all heads, runs kernels.SparseAttention, and computes
// the exact block maps the planner requests (kernels.BlockMap with the
// sparse pass's log-sum-exp) before the next layer. It implements
// model.Attention. One Attention serves one engine; it is not safe for
// concurrent use.
type Attention struct {
	planner share.Planner
	opts    Options
	needs   share.Needs
	gamma   float64
	sel     share.QueryAwareSelector

	// Per call.
	dev      *runtime.Device
	layers   int
	shape    Shape
	q0       int
	nb       int
	fallback string // reason of the dense fallback; "" when planned
	est      *Estimator
	rowPtr   *runtime.Tensor // i32 [Hq·nb+1]
	cols     *runtime.Tensor // i32 [Hq·nb(nb+1)/2]
	lse      *runtime.Tensor // f32 [Hq, n]
	mapHeads *runtime.Tensor // i32 [mapCap]
	maps     *runtime.Tensor // f32 [mapCap, nb, nb]
	mapCap   int
	owned    []*runtime.Tensor

	stats   *share.Stats
	planned *share.Stats
	calls   CallCounts
}

// CallCounts counts the prefill calls an Attention has served.
type CallCounts struct {
	// Planned calls ran the planner; Dense calls fell back to dense flash
	// attention (short prompt or q0 ≠ 0).
	Planned, Dense int
}

// New returns an Attention running planner. The planner's block size must
// be a power of two ≥ 8 (kernels.SparseAttention).
func New(planner share.Planner, opts Options) (*Attention, error) {
	if planner == nil {
		return nil, fmt.Errorf("share/gpu: nil planner")
	}
	if opts.DenseBelow < 0 {
		return nil, fmt.Errorf("share/gpu: DenseBelow %d < 0", opts.DenseBelow)
	}
	needs := planner.Needs()
	if b := needs.BlockSize; b < 8 || bits.OnesCount(uint(b)) != 1 {
		return nil, fmt.Errorf("share/gpu: planner %s: block size %d is not a power of two ≥ 8", planner.Name(), b)
	}
	a := &Attention{planner: planner, opts: opts, needs: needs, gamma: opts.Gamma}
	if c, ok := planner.(interface{ Config() share.Config }); ok {
		a.gamma = c.Config().Gamma
	}
	if needs.LastBlock && !(a.gamma > 0 && a.gamma <= 1) {
		return nil, fmt.Errorf("share/gpu: planner %s reads Kv/Ks but has no Config(); set Options.Gamma in (0, 1] (now %v)", planner.Name(), opts.Gamma)
	}
	if needs.PooledMap {
		a.sel, _ = planner.(share.QueryAwareSelector)
	}
	return a, nil
}

// Planner returns the planner.
func (a *Attention) Planner() share.Planner { return a.planner }

// Stats returns the statistics of the last prefill call: the planner's
// (with GPU times when Options.Profile) or, for a dense fallback, a record
// whose Note gives the reason and whose heads are all dense. Nil before the
// first call.
func (a *Attention) Stats() *share.Stats { return a.stats }

// PlannedStats returns the statistics of the last call that ran the
// planner (decode steps fall back to dense and do not replace it).
func (a *Attention) PlannedStats() *share.Stats { return a.planned }

// Calls returns how many calls were planned and how many fell back.
func (a *Attention) Calls() CallCounts { return a.calls }

// Begin implements model.Attention.
func (a *Attention) Begin(e *model.Engine, q0, n int) error {
	cfg := e.Config()
	return a.begin(e.Device(), cfg.NumLayers, Shape{NumHeads: cfg.NumHeads, NumKVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, N: n}, q0)
}

// begin is Begin without an engine.
func (a *Attention) begin(dev *runtime.Device, layers int, shape Shape, q0 int) error {
	a.release()
	if err := shape.check(); err != nil {
		return fmt.Errorf("share/gpu: begin: %w", err)
	}
	if layers < 1 || q0 < 0 {
		return fmt.Errorf("share/gpu: begin: %d layers, q0 = %d", layers, q0)
	}
	a.dev, a.layers, a.shape, a.q0 = dev, layers, shape, q0
	b, n := a.needs.BlockSize, shape.N
	a.nb = share.NumBlocks(n, b)
	switch {
	case q0 != 0:
		a.fallback = fmt.Sprintf("dense fallback: q0 = %d ≠ 0 (the call appends to a non-empty cache)", q0)
	case n < b:
		a.fallback = fmt.Sprintf("dense fallback: n = %d is shorter than one block (B = %d)", n, b)
	case n < a.opts.DenseBelow:
		a.fallback = fmt.Sprintf("dense fallback: n = %d < DenseBelow = %d", n, a.opts.DenseBelow)
	default:
		a.fallback = ""
	}
	if a.fallback != "" {
		a.calls.Dense++
		a.stats = a.fallbackStats()
		return nil
	}
	if err := a.planner.Begin(n, layers, shape.NumHeads, shape.NumKVHeads); err != nil {
		return fmt.Errorf("share/gpu: begin: %w", err)
	}
	a.calls.Planned++
	a.stats = a.planner.Stats()
	a.planned = a.stats
	if err := a.alloc(); err != nil {
		a.release()
		return fmt.Errorf("share/gpu: begin: %w", err)
	}
	return nil
}

// alloc makes the per-call buffers: estimates, the CSR sized for the worst
// case (every causal block of every head), the LSE and the block maps.
func (a *Attention) alloc() error {
	var err error
	if a.est, err = NewEstimator(a.dev, a.needs, a.gamma, a.shape); err != nil {
		return err
	}
	hq, n, nb := a.shape.NumHeads, a.shape.N, a.nb
	// Block maps: as many heads per dispatch as fit 64 MiB and the
	// device's storage-buffer range.
	lim := min(uint64(64<<20), uint64(a.dev.Info().MaxStorageBufferRange))
	a.mapCap = max(1, min(hq, int(lim/uint64(4*nb*nb))))
	for _, t := range []struct {
		dst  **runtime.Tensor
		name string
		dt   runtime.DType
		size int
	}{
		{&a.rowPtr, "share/gpu row pointers", runtime.I32, hq*nb + 1},
		{&a.cols, "share/gpu columns", runtime.I32, hq * share.CausalBlocks(nb)},
		{&a.lse, "share/gpu lse", runtime.F32, hq * n},
		{&a.mapHeads, "share/gpu map heads", runtime.I32, a.mapCap},
		{&a.maps, "share/gpu block maps", runtime.F32, a.mapCap * nb * nb},
	} {
		x, err := a.dev.NewNamedTensor(t.name, t.dt, t.size)
		if err != nil {
			return err
		}
		*t.dst = x
		a.owned = append(a.owned, x)
	}
	return nil
}

// release frees the per-call buffers.
func (a *Attention) release() {
	for _, t := range a.owned {
		t.Free()
	}
	a.owned = nil
	a.est.Free()
	a.est = nil
	a.rowPtr, a.cols, a.lse, a.mapHeads, a.maps = nil, nil, nil, nil, nil
}

// End implements model.Attention: it summarizes the statistics. The per-call
// buffers stay allocated (recorded work may still use them) until the next
// Begin or Close.
func (a *Attention) End(*runtime.Recorder) error {
	if a.stats != nil {
		a.stats.Summarize()
	}
	return nil
}

// Close frees any buffers left by a call that did not reach End.
func (a *Attention) Close() { a.release() }

func (a *Attention) fallbackStats() *share.Stats {
	s := &share.Stats{
		Planner: a.planner.Name(), Note: a.fallback, N: a.shape.N, NB: a.nb, BlockSize: a.needs.BlockSize,
		NumLayers: a.layers, NumHeads: a.shape.NumHeads, NumKVHeads: a.shape.NumKVHeads,
		Layers: make([]share.LayerStat, a.layers),
	}
	for l := range s.Layers {
		hs := make([]share.HeadStat, a.shape.NumHeads)
		for h := range hs {
			hs[h] = share.HeadStat{Head: h, Method: share.MethodDense, Reason: "dense fallback", Density: 1}
		}
		s.Layers[l] = share.LayerStat{Layer: l, Heads: hs, MeanDensity: 1}
	}
	return s
}

// Layer implements model.Attention.
func (a *Attention) Layer(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	if err := a.layer(r, l, q, k, v, o, p); err != nil {
		return fmt.Errorf("share/gpu: %s layer %d: %w", a.planner.Name(), l, err)
	}
	return nil
}

func (a *Attention) layer(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	if a.dev == nil {
		return fmt.Errorf("Layer before Begin")
	}
	if p.Hq != a.shape.NumHeads || p.Hkv != a.shape.NumKVHeads || p.D != a.shape.HeadDim || p.Sq != a.shape.N || p.Q0 != a.q0 {
		return fmt.Errorf("attention parameters %v do not match the call (Hq=%d Hkv=%d D=%d n=%d q0=%d)", p, a.shape.NumHeads, a.shape.NumKVHeads, a.shape.HeadDim, a.shape.N, a.q0)
	}
	if a.fallback != "" {
		return a.dense(r, l, q, k, v, o, p)
	}
	if p.Skv != a.shape.N {
		return fmt.Errorf("Skv = %d, want n = %d", p.Skv, a.shape.N)
	}
	var estT, attT time.Duration
	if a.opts.Profile {
		// Flush the engine's work so that the timings below are ours.
		if err := r.Submit(); err != nil {
			return err
		}
		r.EnableProfiling()
	}
	n, hq, hkv, d := a.shape.N, a.shape.NumHeads, a.shape.NumKVHeads, a.shape.HeadDim
	kv, err := k.View(0, n, hkv, d)
	if err != nil {
		return err
	}
	a.est.p.Scale, a.est.wp.Scale = p.Scale, p.Scale
	est, t, err := a.est.Estimate(r, l, q, kv, a.sel)
	if err != nil {
		return err
	}
	estT += t
	plan, err := a.planner.PlanLayer(l, est)
	if err != nil {
		return err
	}
	if a.opts.OnPlan != nil {
		a.opts.OnPlan(plan)
	}
	rowPtr, cols, err := BuildCSR(plan, hq, a.nb)
	if err != nil {
		return err
	}
	// The CSR buffers may still be read by the previous layer's recorded
	// attention: run it before overwriting them.
	if r.Count() > 0 {
		if err := r.Submit(); err != nil {
			return err
		}
	}
	if err := a.rowPtr.UploadI32(rowPtr); err != nil {
		return err
	}
	if err := a.cols.UploadBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(cols))), 4*len(cols)), 0); err != nil {
		return err
	}
	if err := kernels.SparseAttention(r, o, a.lse, q, k, v, a.rowPtr, a.cols, p, a.needs.BlockSize); err != nil {
		return err
	}
	heads := plan.MapHeads()
	if len(heads) == 0 && a.opts.Profile {
		if attT, err = submit(r); err != nil {
			return err
		}
	}
	ep := kernels.EstParams{Hq: hq, Hkv: hkv, D: d, S: n, B: a.needs.BlockSize, Scale: p.Scale}
	for start := 0; start < len(heads); start += a.mapCap {
		chunk := heads[start:min(len(heads), start+a.mapCap)]
		t, err := a.blockMaps(r, l, chunk, q, kv, ep)
		if err != nil {
			return err
		}
		attT += t
	}
	if a.opts.Profile {
		if err := a.stats.SetGPUTime(l, estT, attT); err != nil {
			return err
		}
	}
	return nil
}

// blockMaps computes the exact block maps of heads (at most mapCap) with the
// LSE of the sparse pass recorded on r, reads them back and hands them to
// the planner.
func (a *Attention) blockMaps(r *runtime.Recorder, l int, heads []int, q, k *runtime.Tensor, ep kernels.EstParams) (time.Duration, error) {
	nb := a.nb
	idx := make([]int32, len(heads))
	for i, h := range heads {
		idx[i] = int32(h)
	}
	hv, err := a.mapHeads.View(0, len(heads))
	if err != nil {
		return 0, err
	}
	// Earlier chunks were submitted, so nothing pending reads mapHeads.
	if err := hv.UploadI32(idx); err != nil {
		return 0, err
	}
	out, err := a.maps.View(0, len(heads)*nb*nb)
	if err != nil {
		return 0, err
	}
	if err := kernels.BlockMap(r, out, q, k, a.lse, hv, ep); err != nil {
		return 0, err
	}
	t, err := submit(r)
	if err != nil {
		return 0, err
	}
	rows, err := downloadRows(out, len(heads), nb*nb)
	if err != nil {
		return 0, err
	}
	for i, h := range heads {
		if err := a.planner.ObserveMap(l, h, &share.BlockMap{NB: nb, Data: rows[i]}); err != nil {
			return 0, err
		}
	}
	return t, nil
}

// dense records dense flash attention for a fallback call.
func (a *Attention) dense(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	if a.opts.Profile {
		if err := r.Submit(); err != nil {
			return err
		}
		r.EnableProfiling()
	}
	if err := kernels.FlashAttention(r, o, nil, q, k, v, p); err != nil {
		return err
	}
	if a.opts.Profile {
		t, err := submit(r)
		if err != nil {
			return err
		}
		a.stats.Layers[l].AttentionGPU = t
	}
	return nil
}

// BuildCSR concatenates the per-head lists of plan into the layout of
// kernels.SparseAttention: rowPtr i32 [Hq·nb+1] with row r of head h at
// index h·nb+r (absolute offsets into cols), cols the columns of every row
// (sorted ascending, causal, so the diagonal is last when present). Every
// list is validated against the nb×nb grid.
func BuildCSR(plan *share.LayerPlan, numHeads, nb int) (rowPtr, cols []int32, err error) {
	if plan == nil || len(plan.Heads) != numHeads {
		return nil, nil, fmt.Errorf("plan has %d heads, want %d", headsOf(plan), numHeads)
	}
	if plan.NB != nb {
		return nil, nil, fmt.Errorf("plan grid nb = %d, want %d", plan.NB, nb)
	}
	total := 0
	for h := range plan.Heads {
		l := plan.Heads[h].List
		if l == nil {
			return nil, nil, fmt.Errorf("head %d has no block list", h)
		}
		if l.NB != nb {
			return nil, nil, fmt.Errorf("head %d: list grid nb = %d, want %d", h, l.NB, nb)
		}
		if err := l.Validate(); err != nil {
			return nil, nil, fmt.Errorf("head %d: %w", h, err)
		}
		total += len(l.Cols)
	}
	rowPtr = make([]int32, numHeads*nb+1)
	cols = make([]int32, 0, max(total, 1))
	for h := range plan.Heads {
		l := plan.Heads[h].List
		base := int32(len(cols))
		for r := 0; r < nb; r++ {
			rowPtr[h*nb+r] = base + l.RowPtr[r]
		}
		cols = append(cols, l.Cols...)
	}
	rowPtr[numHeads*nb] = int32(len(cols))
	if len(cols) == 0 {
		cols = append(cols, -1) // the kernel needs a non-empty buffer; unused
	}
	return rowPtr, cols, nil
}

func headsOf(p *share.LayerPlan) int {
	if p == nil {
		return 0
	}
	return len(p.Heads)
}

// Compile-time interface check.
var _ model.Attention = (*Attention)(nil)
