package model

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// The decode step: a call of at most decodeRows tokens after the first
// (q0 > 0). Its commands read the step's token ids and cache position from
// a small device tensor (decoder.step) that the step's first command copies
// from host memory, so the same recorded commands serve every token: a
// one-token step is recorded once into a runtime.Replay and submitted again
// for each token, re-recorded only when its key changes (the KV-length
// bucket its attention grid covers, the logits it produces, its sampler).
// Steps of 2..decodeRows tokens, and every step with
// EngineOptions.FreshDecode, record the same commands into the engine's
// recorder instead. Per layer, with f16 weights (kernels.MatVecFusable),
// the step records 5 dispatches: RMSNorm with the q, k and v mat-vecs,
// RoPE and the KV append in their epilogue (kernels.NormMatVecRopeKV);
// split-KV attention, its splits merged in the same dispatch
// (kernels.DecodeAttentionAt); the o-projection with the residual add;
// RMSNorm with gate, up and SwiGLU; the down-projection with the residual
// add. Quantized weights the fused mat-vecs take (Q8_0, Q4_K, Q5_K, Q6_K)
// keep RoPE with the KV append apart (6 dispatches). A fused mat-vec takes
// one weight type: q, k and v of two types (Q4_K_M's Q6_K attn_v) take a
// dispatch per type, behind one barrier (7 dispatches); a gate and an up of
// two types take a dispatch each and SwiGLU apart. Matrices over
// normFuseMaxBytes take RMSNorm and the mat-vecs apart, per group (q/k/v,
// gate/up), and RoPE with the KV append (kernels.RopeKV) after them (12
// dispatches where both are); weights the fused mat-vecs do not take
// (Q4_0, Q5_0), the general kernels (14). The prefill attention (EngineOptions.Attention)
// is not used: its statistics keep describing the prompt.

// defaultDecodeBucket is the default EngineOptions.DecodeBucket.
const defaultDecodeBucket = 1024

// sampler is what a step records after the last position's logits.
type sampler int

const (
	noSampler     sampler = iota
	argmaxSampler         // greedy: the argmax's id to sampleHost
	topKSampler           // the top-k ids, then their values, to sampleHost
)

// decoder holds the decode step's state.
type decoder struct {
	replay *runtime.Replay
	key    decodeKey // what the replay's recording is for
	// step is i32: the token ids at [0, decodeRows), the number of tokens
	// already in the cache at posAt (aligned, so that it can be bound);
	// stepHost is its host copy, written before each step.
	step     *runtime.Tensor
	stepHost *runtime.HostBuffer
	posAt    int
	// fuseAdd: the o- and down-projections take MatVecAdd; fuseNorm: the
	// q/k/v and gate/up mat-vecs take the RMSNorm-fused kernels, each group
	// where normFits; fuseHead: so does the LM head.
	fuseAdd, fuseNorm, fuseHead bool
	// chain are the two alternating steps of the pipelined greedy
	// generation (decodeChain).
	chain [2]chainStage
}

// chainStage is one of the two one-token steps that pipelined greedy
// generation alternates. Its commands take the token from the device (the
// argmax the previous step left in topIdx[0]) and only the cache position
// from the host (posHost, written before each Start), and copy their own
// argmax to outHost, so that a step can be started before the host has read
// the token of the step before it.
type chainStage struct {
	replay  *runtime.Replay
	key     decodeKey
	posHost *runtime.HostBuffer // i32: the cache position of the step's token
	outHost *runtime.HostBuffer // i32: the step's argmax
}

// wait waits for every decode submission in flight.
func (dc *decoder) wait(ctx context.Context) error {
	if err := dc.replay.Wait(ctx); err != nil {
		return err
	}
	for i := range dc.chain {
		if err := dc.chain[i].replay.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// setTrace makes the decode steps' later recordings and submissions log
// into t (nil: stop).
func (dc *decoder) setTrace(t *runtime.Trace) error {
	if err := dc.replay.SetTrace(t); err != nil {
		return err
	}
	for i := range dc.chain {
		if err := dc.chain[i].replay.SetTrace(t); err != nil {
			return err
		}
	}
	return nil
}

// decodeKey identifies a recorded one-token step.
type decodeKey struct {
	maxSkv int // the longest cache its attention grid covers
	mode   LogitsMode
	sample sampler
}

// allocDecoder allocates the decode step's buffers and replay.
func (e *Engine) allocDecoder() error {
	dc := &e.dec
	dc.posAt = max(decodeRows, int(e.dev.Alignment()/4))
	var err error
	if dc.step, err = e.dev.NewNamedTensor("decode step ids and position", runtime.I32, dc.posAt+4); err != nil {
		return fmt.Errorf("allocating activations: %w", err)
	}
	if dc.stepHost, err = e.dev.NewHostBuffer(uint64(4 * (dc.posAt + 4))); err != nil {
		return fmt.Errorf("allocating host buffers: %w", err)
	}
	if dc.replay, err = e.dev.NewReplay(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	for i := range dc.chain {
		cs := &dc.chain[i]
		if cs.posHost, err = e.dev.NewHostBuffer(4); err != nil {
			return fmt.Errorf("allocating host buffers: %w", err)
		}
		if cs.outHost, err = e.dev.NewHostBuffer(4); err != nil {
			return fmt.Errorf("allocating host buffers: %w", err)
		}
		if cs.replay, err = e.dev.NewReplay(); err != nil {
			return fmt.Errorf("engine: %w", err)
		}
	}
	dc.fuseAdd, dc.fuseNorm, dc.fuseHead = e.decodeFusion(e.dev.Info().Type == runtime.TypeCPU)
	return nil
}

// decodeFusion chooses the decode step's fused kernels (decoder's fuseAdd,
// fuseNorm and fuseHead) from the weights, for a CPU device or not.
func (e *Engine) decodeFusion(cpu bool) (add, norm, head bool) {
	add, norm = true, false
	for _, l := range e.layers {
		add = add && kernels.MatVecFusable(e.dev, l.wq, l.wk, l.wv, l.wo, l.wg, l.wu, l.wd)
		norm = norm || e.normFits(l.wq, l.wk, l.wv) || e.normFits(l.wg, l.wu)
	}
	norm = norm && add
	head = kernels.MatVecFusable(e.dev, e.lmHead) && e.lmHead.Bytes() <= e.normFuseMax()
	// The RMSNorm-fused kernels normalise x again in every workgroup. A GPU
	// hides that under the weight stream; on a CPU device (lavapipe) it is
	// serial work as large as a small mat-vec's own, and decode got slower
	// (stories260K: 24 → 15 tokens/s on the 2-core dev box), so there the
	// norm runs once, apart. MatVecAdd adds no work and stays.
	if cpu {
		norm, head = false, false
	}
	return add, norm, head
}

// normFuseMaxBytes bounds the weight matrices whose mat-vecs take the
// RMSNorm-fused kernels. Each workgroup of those normalises the rows of x
// itself: a sum over x and a staging pass, each ending in a barrier, before
// its weights stream. Where a mat-vec is latency-bound (small matrices) the
// fusion saves a dispatch and its barrier: bench-lm-8k's (≤ 1.4 MiB) stay
// fused. On a large one the extra passes and cache traffic cost more: on an
// H100 (2026-12-07) the 8B Q4_K_M model's fused q/k/v (9 MiB q) took
// 29–38 µs a layer, and with the norm apart the 32-layer decode went from
// 155 to 167 tokens/s; fusing its gate and up too (33 MiB) was slower
// still (134). runtime.Tuning.DecodeNormFuseMiB replaces it.
const normFuseMaxBytes = 4 << 20

// normFuseMax is normFuseMaxBytes, or the device's
// Tuning.DecodeNormFuseMiB where set.
func (e *Engine) normFuseMax() uint64 {
	if m := e.dev.Tuning().DecodeNormFuseMiB; m > 0 {
		return uint64(m) << 20
	}
	return normFuseMaxBytes
}

// normFits reports whether the mat-vecs of ws (a layer's q, k and v, or
// its gate and up) take the RMSNorm-fused kernels: every matrix within
// normFuseMax. With fuseNorm, recordDecode asks it per group, so that
// a Q4_K_M 8B model fuses its 9 MiB q/k/v but not its 33 MiB gate and up.
func (e *Engine) normFits(ws ...*runtime.Tensor) bool {
	for _, w := range ws {
		if w.Bytes() > e.normFuseMax() {
			return false
		}
	}
	return true
}

// freeDecoder releases what allocDecoder allocated (after the replay's
// submission in flight).
func (e *Engine) freeDecoder() {
	dc := &e.dec
	if dc.replay != nil {
		dc.replay.Release()
		dc.replay = nil
	}
	for i := range dc.chain {
		cs := &dc.chain[i]
		if cs.replay != nil {
			cs.replay.Release()
			cs.replay = nil
		}
		cs.posHost.Free()
		cs.outHost.Free()
	}
	dc.step.Free()
	dc.stepHost.Free()
}

// decodeBucketEnd is the longest cache the step's attention grid covers
// for a cache of skv tokens, at most the context: skv rounded up to a power
// of two (at least minDecodeBucket) up to DecodeBucket, past it to a
// multiple of DecodeBucket. A one-token step is recorded again when the
// cache grows past it: log₂(DecodeBucket/64) times in the first
// DecodeBucket tokens, then every DecodeBucket tokens.
func (e *Engine) decodeBucketEnd(skv int) int {
	b := e.opts.DecodeBucket
	end := (skv + b - 1) / b * b
	if skv <= b {
		end = min(b, minDecodeBucket)
		for end < skv {
			end *= 2
		}
	}
	return min(e.opts.Context, end)
}

// minDecodeBucket is the smallest bucket end (a power of two).
const minDecodeBucket = 64

// decodePart runs a decode step: tokens (at most decodeRows) after the
// q0 > 0 tokens in the cache, then the logits of mode and the sampler s.
func (e *Engine) decodePart(ctx context.Context, tokens []int, mode LogitsMode, fn func(int, []float32), s sampler) error {
	start := time.Now()
	dc := &e.dec
	n, q0 := len(tokens), e.Pos()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("decode cancelled: %w", err)
	}
	// Batches of an earlier, cancelled call may still read stepHost.
	if err := e.rec.WaitContext(ctx); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if err := dc.wait(ctx); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	words := dc.stepHost.Int32s(dc.posAt + 1)
	for i, t := range tokens {
		words[i] = int32(t)
	}
	if err := kernels.ValidateIDs(words[:n], e.cfg.VocabSize); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	words[dc.posAt] = int32(q0)
	maxSkv := e.decodeBucketEnd(q0 + n)
	if n == 1 && !e.opts.FreshDecode && (mode == LastLogits || mode == deviceLogits) {
		key := decodeKey{maxSkv: maxSkv, mode: mode, sample: s}
		if !dc.replay.Recorded() || dc.key != key {
			err := dc.replay.Record(func(r *runtime.Recorder) error { return e.recordDecode(r, n, maxSkv, mode, s, nil) })
			if err != nil {
				return fmt.Errorf("decode: %w", err)
			}
			dc.key = key
		}
		if err := dc.replay.Submit(ctx); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
	} else {
		r := e.rec
		if err := e.recordDecode(r, n, maxSkv, mode, s, nil); err != nil {
			r.Discard()
			return fmt.Errorf("decode: %w", err)
		}
		if err := r.SubmitContext(ctx); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
	}
	v := e.cfg.VocabSize
	switch mode {
	case LastLogits:
		fn(n-1, slices.Clone(e.logitsHost.Float32s(v)))
	case AllLogits:
		logits, err := view(e.logits, 0, n, v).DownloadF32()
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		for i := 0; i < n; i++ {
			fn(i, logits[i*v:(i+1)*v])
		}
	}
	e.pos.Store(int64(q0 + n))
	e.mu.Lock()
	e.lastPrefill = PrefillStats{Tokens: n, Duration: time.Since(start)}
	e.mu.Unlock()
	return nil
}

// recordDecode records a decode step of n ≤ decodeRows tokens whose ids and
// cache position the GPU reads from dc.step (copied from dc.stepHost first),
// with attention planned for caches of up to maxSkv tokens: the layers, the
// logits of mode (LastLogits: the last position's, copied to logitsHost;
// deviceLogits: the last position's in row 0 of e.logits; AllLogits: every
// position's in rows 0..n-1) and the sampler s. With a chain stage cs (n = 1,
// deviceLogits, argmaxSampler), the token is instead the argmax in
// topIdx[0] that the step before left there, only the position comes from
// the host (cs.posHost), and the step's argmax goes to cs.outHost.
func (e *Engine) recordDecode(r *runtime.Recorder, n, maxSkv int, mode LogitsMode, s sampler, cs *chainStage) error {
	cfg, dc := e.cfg, &e.dec
	h, qd, kvd, f, v := cfg.HiddenSize, cfg.QDim(), cfg.KVDim(), cfg.IntermediateSize, cfg.VocabSize
	eps := float32(cfg.RMSNormEps)
	if cs == nil {
		if err := r.CopyFromHost(dc.step, 0, dc.stepHost, 0, uint64(4*(dc.posAt+1))); err != nil {
			return err
		}
	} else {
		if n != 1 || mode != deviceLogits || s != argmaxSampler {
			return fmt.Errorf("decode: a chained step takes one token, device logits and the argmax (got %d tokens, mode %d, sampler %d)", n, mode, s)
		}
		if err := r.CopyFromHost(dc.step, uint64(4*dc.posAt), cs.posHost, 0, 4); err != nil {
			return err
		}
		if err := r.CopyBytes(dc.step, 0, e.topIdx, 0, 4); err != nil {
			return err
		}
	}
	ids, pos := view(dc.step, 0, n), view(dc.step, dc.posAt, 1)
	x := view(e.x, 0, n, h)
	if err := kernels.Embed(r, x, e.embed, ids); err != nil {
		return err
	}
	q, qh := view(e.q, 0, n, qd), view(e.q, 0, n, cfg.NumHeads, cfg.HeadDim) // rows; heads
	k, vv := view(e.kt, 0, n, kvd), view(e.vt, 0, n, kvd)
	a := view(e.o, 0, n, qd)
	xn, tmp := view(e.xn, 0, n, h), view(e.tmp, 0, n, h)
	gate, up, act := view(e.gate, 0, n, f), view(e.up, 0, n, f), view(e.act, 0, n, f)
	// Attention at the positions pos[0] …: offsets for DecodeAttentionAt.
	p := kernels.AttnParams{Hq: cfg.NumHeads, Hkv: cfg.NumKVHeads, D: cfg.HeadDim, Sq: n, Skv: n, Q0: 0, Causal: true}
	for l := range e.layers {
		ld := &e.layers[l]
		o := e.ops(r)
		// q, k, v = RMSNorm(x)·w_attn·Wᵀ (+ b); RoPE; K, V appended (one
		// dispatch when fused and f16; quantized weights take the fused
		// mat-vecs, then RopeKV).
		normQKV := dc.fuseNorm && e.normFits(ld.wq, ld.wk, ld.wv)
		switch {
		case normQKV && allF16(ld.wq, ld.wk, ld.wv):
			o.do(func() error {
				return kernels.NormMatVecRopeKV(r, x, ld.attnNorm, eps,
					kernels.MatVecOut{Y: q, W: ld.wq, Bias: ld.bq},
					kernels.MatVecOut{W: ld.wk, Bias: ld.bk}, kernels.MatVecOut{W: ld.wv, Bias: ld.bv},
					e.invFreq, ld.kCache, ld.vCache, pos, cfg.NumHeads, cfg.NumKVHeads)
			})
		case normQKV:
			o.do(func() error {
				return kernels.NormMatVec(r, x, ld.attnNorm, eps,
					kernels.MatVecOut{Y: q, W: ld.wq, Bias: ld.bq},
					kernels.MatVecOut{Y: k, W: ld.wk, Bias: ld.bk},
					kernels.MatVecOut{Y: vv, W: ld.wv, Bias: ld.bv})
			})
			o.do(func() error {
				return kernels.RopeKV(r, qh, k, vv, e.invFreq, ld.kCache, ld.vCache, pos, cfg.NumHeads, cfg.NumKVHeads, 0)
			})
		default:
			o.rmsNorm(xn, x, ld.attnNorm, eps)
			o.matMul(q, xn, ld.wq, ld.bq)
			o.matMul(k, xn, ld.wk, ld.bk)
			o.matMul(vv, xn, ld.wv, ld.bv)
			o.do(func() error {
				return kernels.RopeKV(r, qh, k, vv, e.invFreq, ld.kCache, ld.vCache, pos, cfg.NumHeads, cfg.NumKVHeads, 0)
			})
		}
		o.do(func() error {
			return kernels.DecodeAttentionAt(r, a, nil, qh, ld.kCache, ld.vCache, e.scratch, pos, p, maxSkv)
		})
		// x += a·Woᵀ + bo; x += (SiLU(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ, xn = RMSNorm(x)·w_mlp.
		addProj := func(in, w, b *runtime.Tensor) { // x += in·Wᵀ (+ b)
			if dc.fuseAdd {
				o.do(func() error { return kernels.MatVecAdd(r, x, in, w, b) })
			} else {
				o.matMul(tmp, in, w, b)
				o.add(x, tmp)
			}
		}
		addProj(a, ld.wo, ld.bo)
		normMLP := dc.fuseNorm && e.normFits(ld.wg, ld.wu)
		switch {
		case normMLP && ld.wg.DType() == ld.wu.DType():
			o.do(func() error { return kernels.NormMatVecSwiGLU(r, act, x, ld.mlpNorm, eps, ld.wg, ld.wu) })
		case normMLP: // gate and up of different types: a dispatch each, then SwiGLU
			o.do(func() error {
				return kernels.NormMatVec(r, x, ld.mlpNorm, eps, kernels.MatVecOut{Y: gate, W: ld.wg}, kernels.MatVecOut{Y: up, W: ld.wu})
			})
			o.swiGLU(act, gate, up)
		default:
			o.rmsNorm(xn, x, ld.mlpNorm, eps)
			o.matMul(gate, xn, ld.wg, nil)
			o.matMul(up, xn, ld.wu, nil)
			o.swiGLU(act, gate, up)
		}
		addProj(act, ld.wd, nil)
		if o.err != nil {
			return fmt.Errorf("decode layer %d: %w", l, o.err)
		}
	}
	if mode == noLogits {
		return nil
	}
	// The logits: every row's, or the last row's into row 0.
	first, rows := n-1, 1
	if mode == AllLogits {
		first, rows = 0, n
	}
	if !dc.fuseHead {
		if err := e.recordLogits(r, first, rows); err != nil { // the prefill's path
			return err
		}
	} else {
		// Row first of x may start at an offset a view cannot take: it is
		// copied to the start of lastX (a view there would panic).
		src := view(e.x, 0, rows, h)
		if first > 0 {
			src = view(e.lastX, 0, 1, h)
			if err := r.CopyBytes(src, 0, e.x, uint64(first*h*4), uint64(h*4)); err != nil {
				return err
			}
		}
		logits := view(e.logits, 0, rows, v)
		if err := kernels.NormMatVec(r, src, e.finalNorm, eps, kernels.MatVecOut{Y: logits, W: e.lmHead}); err != nil {
			return err
		}
	}
	if mode == LastLogits {
		if err := r.CopyToHost(e.logitsHost, 0, e.logits, 0, uint64(4*v)); err != nil {
			return err
		}
	}
	host := e.sampleHost
	if cs != nil {
		host = cs.outHost
	}
	return e.recordSampler(r, s, host)
}

// recordSampler records s on the logits in row 0 of e.logits: the greedy
// token's id (to host, which is sampleHost or a chain stage's outHost), or
// the top-k ids and values (to sampleHost).
func (e *Engine) recordSampler(r *runtime.Recorder, s sampler, host *runtime.HostBuffer) error {
	lg := view(e.logits, 0, 1, e.cfg.VocabSize)
	k := e.topIdx.Len()
	switch s {
	case argmaxSampler:
		if err := kernels.Argmax(r, view(e.topIdx, 0, 1), lg); err != nil {
			return err
		}
		return r.CopyToHost(host, 0, e.topIdx, 0, 4)
	case topKSampler:
		if err := kernels.TopK(r, e.topVals, e.topIdx, lg, k); err != nil {
			return err
		}
		if err := r.CopyToHost(e.sampleHost, 0, e.topIdx, 0, uint64(4*k)); err != nil {
			return err
		}
		return r.CopyToHost(e.sampleHost, uint64(4*k), e.topVals, 0, uint64(4*k))
	}
	return nil
}

// decodeChain is greedy generation with two one-token steps in flight:
// while the host waits for step j's token, step j+1 — which takes its
// token from step j's argmax on the device — is already queued behind it,
// so the GPU does not idle for the host's wait, read-back and next
// submission. Generate's loop drives it (emit, stop ids, MaxTokens, the end
// of the context, cancellation) exactly as it drives one step at a time, so
// the tokens are the same; a step queued past the one that ends the
// generation writes the cache only beyond the position the engine reports,
// where the next call overwrites it, and it runs on: later calls wait for
// it (decoder.wait) before they touch what it uses, and any later
// submission begins behind it on the GPU.
type decodeChain struct {
	e     *Engine
	last  int // the last position a step is wanted for
	queue []chainJob
	next  int // the chain stage the next step takes
	pos   int // the position of the next step to start
}

// chainJob is a started step: its chain stage and the position of its token.
type chainJob struct{ stage, pos int }

// newDecodeChain starts a chain after a greedy step that sampled the
// generation's token 0 (its argmax still in topIdx[0]) for a generation of
// at most maxTokens tokens.
func (e *Engine) newDecodeChain(maxTokens int) *decodeChain {
	p0 := e.Pos() // the position of generated token i is p0+i
	// The step at p0+i makes token i+1, wanted while i+1 < maxTokens; each
	// needs a cache slot.
	return &decodeChain{e: e, last: min(p0+maxTokens-2, e.opts.Context-1), pos: p0}
}

// step returns the token after the one at the engine's position Pos(),
// having queued (up to two ahead) the steps that make it and the next.
func (c *decodeChain) step(ctx context.Context) (int, error) {
	e, dc := c.e, &c.e.dec
	t0 := time.Now()
	for len(c.queue) < 2 && c.pos <= c.last {
		if err := c.start(ctx); err != nil {
			return 0, fmt.Errorf("decode: %w", err)
		}
	}
	j := c.queue[0]
	if err := dc.chain[j.stage].replay.Wait(ctx); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	c.queue = c.queue[1:]
	e.pos.Store(int64(j.pos + 1))
	e.mu.Lock()
	e.lastPrefill = PrefillStats{Tokens: 1, Duration: time.Since(t0)}
	e.mu.Unlock()
	return int(dc.chain[j.stage].outHost.Int32s(1)[0]), nil
}

// start queues the step at c.pos on the next chain stage, recording the
// stage again when its KV-length bucket changes.
func (c *decodeChain) start(ctx context.Context) error {
	e := c.e
	cs := &e.dec.chain[c.next]
	if err := cs.replay.Wait(ctx); err != nil {
		return err
	}
	maxSkv := e.decodeBucketEnd(c.pos + 1)
	key := decodeKey{maxSkv: maxSkv, mode: deviceLogits, sample: argmaxSampler}
	if !cs.replay.Recorded() || cs.key != key {
		err := cs.replay.Record(func(r *runtime.Recorder) error {
			return e.recordDecode(r, 1, maxSkv, deviceLogits, argmaxSampler, cs)
		})
		if err != nil {
			return err
		}
		cs.key = key
	}
	cs.posHost.Int32s(1)[0] = int32(c.pos)
	if err := cs.replay.Start(ctx); err != nil {
		return err
	}
	c.queue = append(c.queue, chainJob{c.next, c.pos})
	c.next ^= 1
	c.pos++
	return nil
}

// allF16 reports whether every weight is f16 (the RoPE-fused q/k/v mat-vec
// takes f16 weights only).
func allF16(ws ...*runtime.Tensor) bool {
	for _, w := range ws {
		if w.DType() != runtime.F16 {
			return false
		}
	}
	return true
}
