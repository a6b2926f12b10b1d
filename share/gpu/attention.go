package gpu

import (
	"fmt"
	"unsafe"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// Options configures an Attention.
type Options struct {
	// HostPlanner plans on the host with the planner itself (the reference
	// of the GPU planner): every layer submits its estimates, waits, reads
	// them back, plans, uploads the block lists and reads pivot maps back.
	// Planners other than share.SharePrefill, share.VerticalSlash and
	// share.Dense, and calls with more than kernels.PlanMaxHeads query
	// heads, always plan on the host.
	HostPlanner bool
	// OnPlan, if set, is called with every layer plan right after
	// PlanLayer (logging, tests). The plan must not be modified. Plans exist
	// only on the host, so OnPlan implies HostPlanner.
	OnPlan func(plan *share.LayerPlan)
}

// Attention runs a share.Planner inside model.Engine prefill. It implements
// model.Attention. One Attention serves one engine; it is not safe for
// concurrent use.
//
// By default the plan is made on the GPU (docs/architecture.md#per-layer-prefill-flow):
// every layer records the estimates, the planning kernels of
// runtime/kernels (gates, roles, budgets, vertical-slash selection, the
// query-aware cut, the union of each head's blocks and its compaction into
// one CSR block list), kernels.SparseAttention, and for pivot heads
// kernels.BlockMap and the row cover into the cluster's pattern — all on
// the engine's recorder, with no submit and no host wait. The statistics
// are copied to the host once per call (End) and decoded when asked for.
// With Options.HostPlanner the planner runs on the host, waiting for the GPU
// several times per layer.
type Attention struct {
	planner share.Planner
	opts    Options
	needs   share.Needs
	sel     share.QueryAwareSelector
	gpu     *gpuPlan // nil: host planner only

	// Per call; the buffers persist between calls and grow as needed.
	dev      *runtime.Device
	layers   int
	shape    Shape
	q0       int
	nb       int
	fallback string // reason of the dense fallback; "" when planned
	onGPU    bool   // this call plans on the GPU
	est      *Estimator
	ar       arena
	rowPtr   *runtime.Tensor // i32 [Hq·nb+1]
	cols     *runtime.Tensor // i32 [Hq·nb(nb+1)/2]
	lse      *runtime.Tensor // f32 [Hq, n]
	mapHeads *runtime.Tensor // i32 [mapCap] (host planner)
	maps     *runtime.Tensor // f32 [mapCap, nb, nb]
	mapCap   int

	stats   *share.Stats
	planned *share.Stats
	pending bool // the GPU planner's statistics wait in its host buffer
	calls   CallCounts

	// testHook, when set (tests only), runs at the end of every planned
	// layer on the GPU path.
	testHook func(r *runtime.Recorder, l int) error
}

// CallCounts counts the prefill calls an Attention has served.
type CallCounts struct {
	// Planned calls ran the planner; Dense calls fell back to dense flash
	// attention (short prompt or q0 ≠ 0).
	Planned, Dense int
}

// New returns an Attention running planner. The planner's needs must be
// valid (share.Needs.Validate) and its block size one that block-sparse
// attention takes (kernels.CheckBlockSize).
func New(planner share.Planner, opts Options) (*Attention, error) {
	if planner == nil {
		return nil, fmt.Errorf("share/gpu: nil planner")
	}
	needs := planner.Needs()
	if err := needs.Validate(); err != nil {
		return nil, fmt.Errorf("share/gpu: planner %s: %w", planner.Name(), err)
	}
	if err := kernels.CheckBlockSize(needs.BlockSize); err != nil {
		return nil, fmt.Errorf("share/gpu: planner %s: %w", planner.Name(), err)
	}
	a := &Attention{planner: planner, opts: opts, needs: needs}
	if needs.PooledMap {
		a.sel, _ = planner.(share.QueryAwareSelector)
	}
	if !opts.HostPlanner && opts.OnPlan == nil {
		a.gpu = newGPUPlan(planner)
	}
	return a, nil
}

// Planner returns the planner.
func (a *Attention) Planner() share.Planner { return a.planner }

// OnGPU reports whether the plans are made on the GPU (not on the host);
// calls with more than kernels.PlanMaxHeads query heads still plan on the
// host.
func (a *Attention) OnGPU() bool { return a.gpu != nil }

// Stats returns the statistics of the last prefill call: the planner's or,
// for a dense fallback, a record whose Note gives the reason and whose heads
// are all dense. Nil before the first call. On the GPU path they are decoded
// from the copy End recorded, so call it after the engine call returned.
func (a *Attention) Stats() *share.Stats {
	a.decode()
	return a.stats
}

// PlannedStats returns the statistics of the last call that ran the
// planner (decode steps fall back to dense and do not replace it).
func (a *Attention) PlannedStats() *share.Stats {
	a.decode()
	return a.planned
}

// decode turns the GPU planner's statistics into share.Stats once the call
// that wrote them has completed.
func (a *Attention) decode() {
	if !a.pending {
		return
	}
	a.pending = false
	st := a.gpu.decode(a)
	if a.stats == nil {
		a.stats = st
	}
	a.planned = st
}

// Calls returns how many calls were planned and how many fell back.
func (a *Attention) Calls() CallCounts { return a.calls }

// Begin implements model.Attention.
func (a *Attention) Begin(e *model.Engine, q0, n int) error {
	cfg := e.Config()
	return a.begin(e.Device(), cfg.NumLayers, Shape{NumHeads: cfg.NumHeads, NumKVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, N: n}, q0)
}

// begin is Begin without an engine.
func (a *Attention) begin(dev *runtime.Device, layers int, shape Shape, q0 int) error {
	a.decode() // the previous call has completed
	if err := shape.check(); err != nil {
		return fmt.Errorf("share/gpu: begin: %w", err)
	}
	if layers < 1 || q0 < 0 {
		return fmt.Errorf("share/gpu: begin: %d layers, q0 = %d", layers, q0)
	}
	if a.dev != nil && a.dev != dev {
		a.release()
	}
	a.dev, a.layers, a.shape, a.q0 = dev, layers, shape, q0
	a.ar.dev = dev
	b, n := a.needs.BlockSize, shape.N
	a.nb = share.NumBlocks(n, b)
	switch {
	case q0 != 0:
		a.fallback = fmt.Sprintf("dense fallback: q0 = %d ≠ 0 (the call appends to a non-empty cache)", q0)
	case n < b:
		a.fallback = fmt.Sprintf("dense fallback: n = %d is shorter than one block (B = %d)", n, b)
	default:
		a.fallback = ""
	}
	if a.fallback != "" {
		a.calls.Dense++
		a.stats = a.fallbackStats()
		return nil
	}
	a.onGPU = a.gpu != nil && shape.NumHeads <= kernels.PlanMaxHeads
	if !a.onGPU {
		if err := a.planner.Begin(n, layers, shape.NumHeads, shape.NumKVHeads); err != nil {
			return fmt.Errorf("share/gpu: begin: %w", err)
		}
	}
	if err := a.alloc(); err != nil {
		return fmt.Errorf("share/gpu: begin: %w", err)
	}
	if a.onGPU {
		if err := a.gpu.begin(a); err != nil {
			return fmt.Errorf("share/gpu: begin: %w", err)
		}
		a.stats = nil
	} else {
		a.stats = a.planner.Stats()
		a.planned = a.stats
	}
	a.calls.Planned++
	return nil
}

// alloc points the per-call buffers at the call's sizes: the estimates,
// the CSR sized for the worst case (every causal block of every head), the
// LSE and the block maps. Buffers grow; they are never freed between calls.
func (a *Attention) alloc() error {
	var err error
	if a.est == nil {
		a.est, err = NewEstimator(a.dev, a.needs, a.shape)
	} else {
		err = a.est.Reshape(a.shape)
	}
	if err != nil {
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
		if *t.dst, err = a.ar.view(t.name, t.dt, t.size); err != nil {
			return err
		}
	}
	return nil
}

// release frees the buffers.
func (a *Attention) release() {
	a.ar.free()
	a.est.Free()
	a.est = nil
	if a.gpu != nil {
		a.gpu.free()
	}
	a.rowPtr, a.cols, a.lse, a.mapHeads, a.maps = nil, nil, nil, nil, nil
}

// End implements model.Attention. On the GPU path it records the copy of
// the call's statistics to the host; otherwise it summarizes the planner's.
// The per-call buffers stay allocated (recorded work may still use them)
// until the next Begin or Close.
func (a *Attention) End(r *runtime.Recorder) error {
	if a.fallback == "" && a.onGPU && a.dev != nil {
		if err := a.gpu.end(r); err != nil {
			return fmt.Errorf("share/gpu: end: %w", err)
		}
		a.pending = true
		return nil
	}
	if a.stats != nil {
		a.stats.Summarize()
	}
	return nil
}

// Close frees the buffers (after decoding the last call's statistics, so
// Stats still answers). The Attention may serve calls again afterwards.
func (a *Attention) Close() {
	a.decode()
	a.release()
	a.dev = nil
}

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
		return fmt.Errorf("called before Begin")
	}
	if p.Hq != a.shape.NumHeads || p.Hkv != a.shape.NumKVHeads || p.D != a.shape.HeadDim || p.Sq != a.shape.N || p.Q0 != a.q0 {
		return fmt.Errorf("attention parameters %v do not match the call (Hq=%d Hkv=%d D=%d n=%d q0=%d)", p, a.shape.NumHeads, a.shape.NumKVHeads, a.shape.HeadDim, a.shape.N, a.q0)
	}
	if a.fallback != "" {
		return kernels.FlashAttention(r, o, nil, q, k, v, p)
	}
	if p.Skv != a.shape.N {
		return fmt.Errorf("key length Skv = %d, want n = %d", p.Skv, a.shape.N)
	}
	if l < 0 || l >= a.layers {
		return fmt.Errorf("layer %d outside [0, %d)", l, a.layers)
	}
	n, hkv, d := a.shape.N, a.shape.NumKVHeads, a.shape.HeadDim
	kv, err := k.View(0, n, hkv, d)
	if err != nil {
		return err
	}
	a.est.p.Scale, a.est.wp.Scale = p.Scale, p.Scale
	if a.onGPU {
		return a.gpu.layer(a, r, l, q, kv, k, v, o, p)
	}
	return a.hostLayer(r, l, q, kv, k, v, o, p)
}

// hostLayer plans layer l on the host: estimates are read back, the
// planner plans, the lists are uploaded and the pivots' maps read back.
func (a *Attention) hostLayer(r *runtime.Recorder, l int, q, kv, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	hq, hkv, d, n := a.shape.NumHeads, a.shape.NumKVHeads, a.shape.HeadDim, a.shape.N
	est, err := a.est.Estimate(r, l, q, kv, a.sel)
	if err != nil {
		return err
	}
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
	ep := kernels.EstParams{Hq: hq, Hkv: hkv, D: d, S: n, B: a.needs.BlockSize, Scale: p.Scale}
	for start := 0; start < len(heads); start += a.mapCap {
		chunk := heads[start:min(len(heads), start+a.mapCap)]
		if err := a.blockMaps(r, l, chunk, q, kv, ep); err != nil {
			return err
		}
	}
	return nil
}

// blockMaps computes the exact block maps of heads (at most mapCap) with the
// LSE of the sparse pass recorded on r, reads them back and hands them to
// the planner.
func (a *Attention) blockMaps(r *runtime.Recorder, l int, heads []int, q, k *runtime.Tensor, ep kernels.EstParams) error {
	nb := a.nb
	idx := make([]int32, len(heads))
	for i, h := range heads {
		idx[i] = int32(h)
	}
	hv, err := a.mapHeads.View(0, len(heads))
	if err != nil {
		return err
	}
	// Earlier chunks were submitted, so nothing pending reads mapHeads.
	if err := hv.UploadI32(idx); err != nil {
		return err
	}
	out, err := a.maps.View(0, len(heads)*nb*nb)
	if err != nil {
		return err
	}
	if err := kernels.BlockMap(r, out, q, k, a.lse, hv, ep); err != nil {
		return err
	}
	if err := r.Submit(); err != nil {
		return err
	}
	rows, err := downloadRows(out, len(heads), nb*nb)
	if err != nil {
		return err
	}
	for i, h := range heads {
		if err := a.planner.ObserveMap(l, h, &share.BlockMap{NB: nb, Data: rows[i]}); err != nil {
			return err
		}
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
