package gpu

import (
	"fmt"
	"time"

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
// (share.Needs) on the GPU and reads back only nb- or n-sized vectors per
// head (never an n×n matrix):
//
//   - LastBlock: kernels.LastBlockEstimates at B = Needs.BlockSize (window
//     W = min(B, n)) gives V = vBlk, S = sBlk; kernels.CoverCounts on the
//     token-level v and s at γ gives Kv and Ks (share.TokenBudget).
//   - Pooled: kernels.PooledEstimate gives â.
//   - PooledMap: kernels.PooledBlockScores gives M; only the rows of the
//     heads returned by the QueryAwareSelector are gathered on the GPU and
//     read back (all heads when no selector is given).
//   - Window: kernels.LastBlockEstimates at B = Window gives the token-level
//     v and s of the last min(Window, n) queries; WinV = W·v and WinS = W·s
//     (share.WindowVSRef).
//
// An Estimator serves one Shape and is not safe for concurrent use. Free it
// after the last Submit that used it.
type Estimator struct {
	dev   *runtime.Device
	needs share.Needs
	gamma float32
	shape Shape
	p     kernels.EstParams // B = Needs.BlockSize
	nb    int

	ws                *kernels.EstWorkspace
	v, s, vBlk, sBlk  *runtime.Tensor // f32 [Hq, n], [Hq, n], [Hq, nb], [Hq, nb]
	counts            *runtime.Tensor // i32 [Hq, 2]
	pooled            *runtime.Tensor // f32 [Hq, nb]
	m, mSel           *runtime.Tensor // f32 [Hq, nb, nb]: M of every head, gathered rows
	wp                kernels.EstParams
	wws               *kernels.EstWorkspace
	wv, wsl, wvb, wsb *runtime.Tensor // window estimates: f32 [Hq, n], [Hq, n], [Hq, nbw], [Hq, nbw]
	owned             []*runtime.Tensor
}

// NewEstimator allocates the buffers for the estimates of needs on a call
// of the given shape. gamma is the γ of Kv and Ks (share.Config.Gamma); it
// is read only when needs.LastBlock is set.
func NewEstimator(dev *runtime.Device, needs share.Needs, gamma float64, shape Shape) (*Estimator, error) {
	if err := shape.check(); err != nil {
		return nil, fmt.Errorf("gpu estimator: %w", err)
	}
	if needs.BlockSize < 1 {
		return nil, fmt.Errorf("gpu estimator: block size %d < 1", needs.BlockSize)
	}
	if needs.LastBlock && !(gamma > 0 && gamma <= 1) {
		return nil, fmt.Errorf("gpu estimator: gamma %v outside (0, 1]", gamma)
	}
	if needs.Window < 0 {
		return nil, fmt.Errorf("gpu estimator: window %d < 0", needs.Window)
	}
	p := kernels.EstParams{Hq: shape.NumHeads, Hkv: shape.NumKVHeads, D: shape.HeadDim, S: shape.N, B: needs.BlockSize, Scale: shape.Scale}
	e := &Estimator{dev: dev, needs: needs, gamma: float32(gamma), shape: shape, p: p, nb: p.NB()}
	hq, n, nb := shape.NumHeads, shape.N, p.NB()
	alloc := func(dst **runtime.Tensor, name string, dt runtime.DType, size int) error {
		t, err := dev.NewNamedTensor(name, dt, size)
		if err != nil {
			return fmt.Errorf("gpu estimator: %w", err)
		}
		*dst = t
		e.owned = append(e.owned, t)
		return nil
	}
	fail := func(err error) (*Estimator, error) {
		e.Free()
		return nil, err
	}
	var err error
	if needs.LastBlock || needs.Pooled || needs.PooledMap {
		if e.ws, err = kernels.NewEstWorkspace(dev, p); err != nil {
			return fail(fmt.Errorf("gpu estimator: %w", err))
		}
	}
	if needs.LastBlock {
		for _, a := range []struct {
			dst  **runtime.Tensor
			name string
			dt   runtime.DType
			size int
		}{
			{&e.v, "est.v", runtime.F32, hq * n},
			{&e.s, "est.s", runtime.F32, hq * n},
			{&e.vBlk, "est.V", runtime.F32, hq * nb},
			{&e.sBlk, "est.S", runtime.F32, hq * nb},
			{&e.counts, "est.counts", runtime.I32, 2 * hq},
		} {
			if err := alloc(a.dst, a.name, a.dt, a.size); err != nil {
				return fail(err)
			}
		}
	}
	if needs.Pooled {
		if err := alloc(&e.pooled, "est.pooled", runtime.F32, hq*nb); err != nil {
			return fail(err)
		}
	}
	if needs.PooledMap {
		if err := alloc(&e.m, "est.M", runtime.F32, hq*nb*nb); err != nil {
			return fail(err)
		}
		if err := alloc(&e.mSel, "est.M (selected heads)", runtime.F32, hq*nb*nb); err != nil {
			return fail(err)
		}
	}
	if needs.Window > 0 {
		e.wp = p
		e.wp.B = needs.Window
		if e.wws, err = kernels.NewEstWorkspace(dev, e.wp); err != nil {
			return fail(fmt.Errorf("gpu estimator: window: %w", err))
		}
		nbw := e.wp.NB()
		for _, a := range []struct {
			dst  **runtime.Tensor
			name string
			size int
		}{
			{&e.wv, "est.win_v", hq * n}, {&e.wsl, "est.win_s", hq * n},
			{&e.wvb, "est.win_V", hq * nbw}, {&e.wsb, "est.win_S", hq * nbw},
		} {
			if err := alloc(a.dst, a.name, runtime.F32, a.size); err != nil {
				return fail(err)
			}
		}
	}
	return e, nil
}

// Free releases the estimator's device buffers.
func (e *Estimator) Free() {
	if e == nil {
		return
	}
	for _, t := range e.owned {
		t.Free()
	}
	e.owned = nil
	e.ws.Free()
	e.wws.Free()
}

// NB is the number of blocks per side, ⌈n/B⌉.
func (e *Estimator) NB() int { return e.nb }

// record records the estimation kernels of everything except M.
func (e *Estimator) record(r *runtime.Recorder, q, k *runtime.Tensor) error {
	if e.needs.LastBlock {
		if err := kernels.LastBlockEstimates(r, e.ws, e.v, e.s, e.vBlk, e.sBlk, q, k, e.p); err != nil {
			return err
		}
		if err := kernels.CoverCounts(r, e.counts, e.v, e.s, e.gamma, e.p); err != nil {
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
	return nil
}

// submit submits r and returns the GPU time of its dispatches (zero unless
// r profiles).
func submit(r *runtime.Recorder) (time.Duration, error) {
	if err := r.Submit(); err != nil {
		return 0, err
	}
	var ns float64
	for _, t := range r.Timings() {
		if t.Nanos > 0 {
			ns += t.Nanos
		}
	}
	return time.Duration(ns), nil
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
// least one head is selected). The returned duration is the GPU time of the
// submits made here (zero unless r profiles, see Recorder.EnableProfiling);
// it includes anything r held before the call.
func (e *Estimator) Estimate(r *runtime.Recorder, layer int, q, k *runtime.Tensor, sel share.QueryAwareSelector) (*share.LayerEstimates, time.Duration, error) {
	hq, n, nb := e.shape.NumHeads, e.shape.N, e.nb
	est := &share.LayerEstimates{Layer: layer, N: n, NB: nb, BlockSize: e.needs.BlockSize, Heads: make([]share.HeadEstimates, hq)}
	if !e.needs.LastBlock && !e.needs.Pooled && !e.needs.PooledMap && e.needs.Window == 0 {
		return est, 0, nil
	}
	wrap := func(err error) error { return fmt.Errorf("gpu estimates of layer %d: %w", layer, err) }
	if err := e.record(r, q, k); err != nil {
		return nil, 0, wrap(err)
	}
	gpu, err := submit(r)
	if err != nil {
		return nil, 0, wrap(err)
	}
	if e.needs.LastBlock {
		vb, err := downloadRows(e.vBlk, hq, nb)
		if err != nil {
			return nil, 0, wrap(err)
		}
		sb, err := downloadRows(e.sBlk, hq, nb)
		if err != nil {
			return nil, 0, wrap(err)
		}
		cnt, err := e.counts.DownloadI32()
		if err != nil {
			return nil, 0, wrap(err)
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
			return nil, 0, wrap(err)
		}
		for h := range est.Heads {
			est.Heads[h].Pooled = a[h]
		}
	}
	if e.needs.Window > 0 {
		wv, err := downloadRows(e.wv, hq, n)
		if err != nil {
			return nil, 0, wrap(err)
		}
		ws, err := downloadRows(e.wsl, hq, n)
		if err != nil {
			return nil, 0, wrap(err)
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
	if e.needs.PooledMap {
		var heads []int
		if sel != nil {
			if heads, err = sel.QueryAwareHeads(est); err != nil {
				return nil, 0, wrap(err)
			}
		} else {
			heads = make([]int, hq)
			for h := range heads {
				heads[h] = h
			}
		}
		t, err := e.pooledMaps(r, est, heads, q, k)
		if err != nil {
			return nil, 0, wrap(err)
		}
		gpu += t
	}
	return est, gpu, nil
}

// pooledMaps computes M for every head, gathers the rows of heads into
// mSel, reads them back and stores them in est.
func (e *Estimator) pooledMaps(r *runtime.Recorder, est *share.LayerEstimates, heads []int, q, k *runtime.Tensor) (time.Duration, error) {
	if len(heads) == 0 {
		return 0, nil
	}
	nb := e.nb
	if err := kernels.PooledBlockScores(r, e.ws, e.m, q, k, e.p); err != nil {
		return 0, err
	}
	sz := uint64(nb * nb * 4)
	for x, h := range heads {
		if h < 0 || h >= e.shape.NumHeads {
			return 0, fmt.Errorf("query-aware head %d outside [0, %d)", h, e.shape.NumHeads)
		}
		if err := r.CopyBytes(e.mSel, uint64(x)*sz, e.m, uint64(h)*sz, sz); err != nil {
			return 0, err
		}
	}
	gpu, err := submit(r)
	if err != nil {
		return 0, err
	}
	sel, err := e.mSel.View(0, len(heads)*nb*nb)
	if err != nil {
		return 0, err
	}
	rows, err := downloadRows(sel, len(heads), nb*nb)
	if err != nil {
		return 0, err
	}
	for x, h := range heads {
		est.Heads[h].M = &share.BlockMap{NB: nb, Data: rows[x]}
	}
	return gpu, nil
}
