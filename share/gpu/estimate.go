package gpu

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// Shape is the attention geometry of one prefill call.
type Shape struct {
	// NumHeads and NumKVHeads are Hq and Hkv (grouped GQA: query head h
	// reads KV head h / (Hq/Hkv)); HeadDim is D; N is the prompt length.
	NumHeads, NumKVHeads, HeadDim, N int
	// Scale is the score scale; 0 means 1/√D (the engine's choice).
	Scale float32
}

func (s Shape) check() error {
	if s.NumHeads < 1 || s.NumKVHeads < 1 || s.NumHeads%s.NumKVHeads != 0 || s.HeadDim < 1 || s.N < 1 {
		return fmt.Errorf("invalid shape %+v (need positive sizes, heads a multiple of KV heads)", s)
	}
	return nil
}

// Estimator computes the per-layer estimates a planner asks for
// (share.Needs) on the GPU:
//
//   - LastBlock: kernels.LastBlockEstimates at B = Needs.BlockSize (window
//     W = min(B, n)) gives V = vBlk, S = sBlk; kernels.CoverCounts on the
//     token-level v and s at γ gives Kv and Ks (share.TokenBudget).
//   - Pooled: kernels.PooledEstimate gives â.
//   - PooledMap: kernels.PooledBlockScores gives M.
//   - Window: kernels.LastBlockEstimates at B = Window gives the token-level
//     v and s of the last min(Window, n) queries; WinV = W·v and WinS = W·s
//     (the float64 reference is ref.WindowVS in internal/ref).
//
// Estimate records them and reads back only nb- or n-sized vectors per head
// (never an n×n matrix; M only for the query-aware heads) for a planner on
// the host; the GPU planner (Attention without Options.HostPlanner) reads
// them where they are. An Estimator keeps its buffers between calls and
// grows them only when a shape needs more (Reshape). It is not safe for
// concurrent use. Free it after the last batch that used it.
type Estimator struct {
	dev   *runtime.Device
	needs share.Needs
	shape Shape
	p     kernels.EstParams // B = Needs.BlockSize
	nb    int
	ar    arena

	ws, wws           *kernels.EstWorkspace
	wsP, wwsP         kernels.EstParams // the shapes the workspaces were made for
	v, s, vBlk, sBlk  *runtime.Tensor   // f32 [Hq, n], [Hq, n], [Hq, nb], [Hq, nb]
	counts            *runtime.Tensor   // i32 [Hq, 2]
	pooled            *runtime.Tensor   // f32 [Hq, nb]
	m                 *runtime.Tensor   // f32 [Hq, nb, nb]: M of every head
	wp                kernels.EstParams
	wv, wsl, wvb, wsb *runtime.Tensor // window estimates: f32 [Hq, n], [Hq, n], [Hq, nbw], [Hq, nbw]
}

// NewEstimator allocates the buffers for the estimates of needs
// (share.Needs.Validate must accept them; needs.Gamma is the γ of Kv and
// Ks) on a call of the given shape.
func NewEstimator(dev *runtime.Device, needs share.Needs, shape Shape) (*Estimator, error) {
	if err := needs.Validate(); err != nil {
		return nil, fmt.Errorf("gpu estimator: %w", err)
	}
	e := &Estimator{dev: dev, needs: needs, ar: arena{dev: dev}}
	if err := e.Reshape(shape); err != nil {
		e.Free()
		return nil, err
	}
	return e, nil
}

// Reshape points the estimator at a call of another shape, reusing its
// buffers when they are large enough and reallocating them otherwise. Work
// recorded for the previous shape must have completed.
func (e *Estimator) Reshape(shape Shape) error {
	if err := shape.check(); err != nil {
		return fmt.Errorf("gpu estimator: %w", err)
	}
	needs := e.needs
	p := kernels.EstParams{Hq: shape.NumHeads, Hkv: shape.NumKVHeads, D: shape.HeadDim, S: shape.N, B: needs.BlockSize, Scale: shape.Scale}
	e.shape, e.p, e.nb = shape, p, p.NB()
	hq, n, nb := shape.NumHeads, shape.N, p.NB()
	var err error
	view := func(dst **runtime.Tensor, name string, dt runtime.DType, size int) {
		if err == nil {
			*dst, err = e.ar.view(name, dt, size)
		}
	}
	if needs.LastBlock || needs.Pooled || needs.PooledMap {
		if e.ws, e.wsP, err = workspace(e.dev, e.ws, e.wsP, p); err != nil {
			return fmt.Errorf("gpu estimator: %w", err)
		}
	}
	if needs.LastBlock {
		view(&e.v, "est.v", runtime.F32, hq*n)
		view(&e.s, "est.s", runtime.F32, hq*n)
		view(&e.vBlk, "est.V", runtime.F32, hq*nb)
		view(&e.sBlk, "est.S", runtime.F32, hq*nb)
		view(&e.counts, "est.counts", runtime.I32, 2*hq)
	}
	if needs.Pooled {
		view(&e.pooled, "est.pooled", runtime.F32, hq*nb)
	}
	if needs.PooledMap {
		view(&e.m, "est.M", runtime.F32, hq*nb*nb)
	}
	if needs.Window > 0 {
		e.wp = p
		e.wp.B = needs.Window
		if err == nil {
			e.wws, e.wwsP, err = workspace(e.dev, e.wws, e.wwsP, e.wp)
		}
		nbw := e.wp.NB()
		view(&e.wv, "est.win_v", runtime.F32, hq*n)
		view(&e.wsl, "est.win_s", runtime.F32, hq*n)
		view(&e.wvb, "est.win_V", runtime.F32, hq*nbw)
		view(&e.wsb, "est.win_S", runtime.F32, hq*nbw)
	}
	if err != nil {
		return fmt.Errorf("gpu estimator: %w", err)
	}
	return nil
}

// workspace returns ws when it was made for shapes at least as large as p
// (same heads, head dim and block), else a new one for p.
func workspace(dev *runtime.Device, ws *kernels.EstWorkspace, made, p kernels.EstParams) (*kernels.EstWorkspace, kernels.EstParams, error) {
	if ws != nil && made.Hq == p.Hq && made.Hkv == p.Hkv && made.D == p.D && made.B == p.B && made.S >= p.S {
		return ws, made, nil
	}
	ws.Free()
	nw, err := kernels.NewEstWorkspace(dev, p)
	if err != nil {
		return nil, kernels.EstParams{}, err
	}
	return nw, p, nil
}

// outputs lists the tensors the estimator writes (for tests).
func (e *Estimator) outputs() []*runtime.Tensor {
	var out []*runtime.Tensor
	for _, t := range []*runtime.Tensor{e.v, e.s, e.vBlk, e.sBlk, e.counts, e.pooled, e.m, e.wv, e.wsl, e.wvb, e.wsb} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Free releases the estimator's device buffers.
func (e *Estimator) Free() {
	if e == nil {
		return
	}
	e.ar.free()
	e.ws.Free()
	e.wws.Free()
	e.ws, e.wws = nil, nil
}

// NB is the number of blocks per side, ⌈n/B⌉.
func (e *Estimator) NB() int { return e.nb }

// record records the estimation kernels of everything except M (and M too
// when withM).
func (e *Estimator) record(r *runtime.Recorder, q, k *runtime.Tensor, withM bool) error {
	if e.needs.LastBlock {
		if err := kernels.LastBlockEstimates(r, e.ws, e.v, e.s, e.vBlk, e.sBlk, q, k, e.p); err != nil {
			return err
		}
		if err := kernels.CoverCounts(r, e.ws, e.counts, e.v, e.s, float32(e.needs.Gamma), e.p); err != nil {
			return err
		}
	}
	if e.needs.Pooled {
		if err := kernels.PooledEstimate(r, e.ws, e.pooled, q, k, e.p); err != nil {
			return err
		}
	}
	if e.needs.Window > 0 {
		if err := kernels.LastBlockEstimates(r, e.wws, e.wv, e.wsl, e.wvb, e.wsb, q, k, e.wp); err != nil {
			return err
		}
	}
	if withM && e.needs.PooledMap {
		return kernels.PooledBlockScores(r, e.ws, e.m, q, k, e.p)
	}
	return nil
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// download reads t and splits it into Hq rows of length w as float64.
func downloadRows(t *runtime.Tensor, hq, w int) ([][]float64, error) {
	x, err := t.DownloadF32()
	if err != nil {
		return nil, err
	}
	if len(x) < hq*w {
		return nil, fmt.Errorf("tensor %s: %d values, want %d", t.Name(), len(x), hq*w)
	}
	rows := make([][]float64, hq)
	for h := range rows {
		rows[h] = f64(x[h*w : (h+1)*w])
	}
	return rows, nil
}

// Estimate records the estimation kernels of one layer on r, submits r
// (together with whatever r already holds), and reads the estimates back.
// q is [n, Hq, D] f16 (RoPE applied) and k is [n, Hkv, D] f16 (exactly n
// rows: pass a view of a longer KV cache). When the needs include PooledMap,
// sel (may be nil: every head) picks the query-aware heads; their M rows are
// gathered into one buffer and read back in a second submit (only when at
// least one head is selected).
func (e *Estimator) Estimate(r *runtime.Recorder, layer int, q, k *runtime.Tensor, sel share.QueryAwareSelector) (*share.LayerEstimates, error) {
	wrap := func(err error) error { return fmt.Errorf("gpu estimates of layer %d: %w", layer, err) }
	if !e.needs.LastBlock && !e.needs.Pooled && !e.needs.PooledMap && e.needs.Window == 0 {
		return e.read(layer)
	}
	if err := e.record(r, q, k, false); err != nil {
		return nil, wrap(err)
	}
	if err := r.Submit(); err != nil {
		return nil, wrap(err)
	}
	est, err := e.read(layer)
	if err != nil {
		return nil, wrap(err)
	}
	if e.needs.PooledMap {
		var heads []int
		if sel != nil {
			if heads, err = sel.QueryAwareHeads(est); err != nil {
				return nil, wrap(err)
			}
		} else {
			heads = make([]int, e.shape.NumHeads)
			for h := range heads {
				heads[h] = h
			}
		}
		if err := e.pooledMaps(r, est, heads, q, k); err != nil {
			return nil, wrap(err)
		}
	}
	return est, nil
}

// read downloads the estimates other than M (recorded and completed).
func (e *Estimator) read(layer int) (*share.LayerEstimates, error) {
	hq, n, nb := e.shape.NumHeads, e.shape.N, e.nb
	est := &share.LayerEstimates{Layer: layer, N: n, NB: nb, BlockSize: e.needs.BlockSize, Heads: make([]share.HeadEstimates, hq)}
	if e.needs.LastBlock {
		vb, err := downloadRows(e.vBlk, hq, nb)
		if err != nil {
			return nil, err
		}
		sb, err := downloadRows(e.sBlk, hq, nb)
		if err != nil {
			return nil, err
		}
		cnt, err := e.counts.DownloadI32()
		if err != nil {
			return nil, err
		}
		for h := range est.Heads {
			he := &est.Heads[h]
			he.V, he.S = vb[h], sb[h]
			he.Kv, he.Ks = int(cnt[2*h]), int(cnt[2*h+1])
		}
	}
	if e.needs.Pooled {
		a, err := downloadRows(e.pooled, hq, nb)
		if err != nil {
			return nil, err
		}
		for h := range est.Heads {
			est.Heads[h].Pooled = a[h]
		}
	}
	if e.needs.Window > 0 {
		wv, err := downloadRows(e.wv, hq, n)
		if err != nil {
			return nil, err
		}
		ws, err := downloadRows(e.wsl, hq, n)
		if err != nil {
			return nil, err
		}
		w := float64(e.wp.W())
		for h := range est.Heads {
			for j := range wv[h] {
				wv[h][j] *= w
				ws[h][j] *= w
			}
			est.Heads[h].WinV, est.Heads[h].WinS = wv[h], ws[h]
		}
	}
	return est, nil
}

// pooledMaps computes M for every head, gathers the rows of heads into one
// buffer, reads them back and stores them in est.
func (e *Estimator) pooledMaps(r *runtime.Recorder, est *share.LayerEstimates, heads []int, q, k *runtime.Tensor) error {
	if len(heads) == 0 {
		return nil
	}
	nb := e.nb
	if err := kernels.PooledBlockScores(r, e.ws, e.m, q, k, e.p); err != nil {
		return err
	}
	sel, err := e.ar.view("est.M (selected heads)", runtime.F32, len(heads)*nb*nb)
	if err != nil {
		return err
	}
	sz := uint64(nb * nb * 4)
	for x, h := range heads {
		if h < 0 || h >= e.shape.NumHeads {
			return fmt.Errorf("query-aware head %d outside [0, %d)", h, e.shape.NumHeads)
		}
		if err := r.CopyBytes(sel, uint64(x)*sz, e.m, uint64(h)*sz, sz); err != nil {
			return err
		}
	}
	if err := r.Submit(); err != nil {
		return err
	}
	rows, err := downloadRows(sel, len(heads), nb*nb)
	if err != nil {
		return err
	}
	for x, h := range heads {
		est.Heads[h].M = &share.BlockMap{NB: nb, Data: rows[x]}
	}
	return nil
}
