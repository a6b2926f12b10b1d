package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// Attention computes a layer's attention during prefill. The default is dense
// causal flash attention; sparse planners (package share) implement it to
// choose, per query head, which key blocks each query block attends.
//
// The engine records a prefill into command batches that run while the host
// records the next layer: a fast implementation records everything on r and
// never waits for the GPU. Device memory its recorded work uses must stay
// allocated until the next Begin (called only once every batch of the
// previous call has completed) or until the engine is closed.
type Attention interface {
	// Begin is called once per prefill call, before layer 0, with the number
	// of new tokens n and the position q0 of the first one. Decode steps
	// (q0 > 0 and at most a few tokens) do not reach the Attention.
	Begin(e *Engine, q0, n int) error
	// Layer records attention for layer l. q is [n, Hq, D] f16 with RoPE
	// applied; k and v are the layer's whole KV caches [ctx, Hkv, D] f16 whose
	// first q0+n rows are valid; o is [n, Hq, D] f16. p describes the call
	// (Sq = n, Skv = q0+n, Q0 = q0, causal). An implementation may Submit r
	// (e.g. to read estimates back) and keep recording on it, at the cost of
	// a host wait.
	Layer(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error
	// End is called after the last layer of a call that succeeded so far,
	// before the call's final batch is submitted: it may record more work
	// into r (e.g. copy statistics to a host buffer), which has completed
	// when the engine call returns.
	End(r *runtime.Recorder) error
}

// DenseAttention is exact causal flash attention for every head.
type DenseAttention struct{}

// Begin implements Attention.
func (DenseAttention) Begin(*Engine, int, int) error { return nil }

// Layer implements Attention.
func (DenseAttention) Layer(r *runtime.Recorder, _ int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	return kernels.FlashAttention(r, o, nil, q, k, v, p)
}

// End implements Attention.
func (DenseAttention) End(*runtime.Recorder) error { return nil }

// EngineOptions configures NewEngine.
type EngineOptions struct {
	// Context is the KV-cache length in tokens (default: the model's
	// max_position_embeddings, capped at 8192 unless set explicitly).
	Context int
	// ChunkTokens is how many tokens the norms and matmuls of a prefill
	// process at once (a multiple of 128). The default is as many as the
	// longest prefill has, up to what fits chunkBudget (256 MiB) of chunk
	// activations: larger chunks give the matmuls more workgroups (a model
	// with a small hidden size leaves most of a GPU idle at 512 rows) and
	// fewer dispatches, and use more memory.
	ChunkTokens int
	// MaxPrefill is the longest single Prefill call the activations are
	// planned for (default: Context).
	MaxPrefill int
	// Attention computes prefill attention; nil means DenseAttention. If it
	// has a Close method, the engine's Close calls it.
	Attention Attention
	// Progress, if set, is called during loading and long prefills with the
	// work done and the total (in layers × chunks or tensors).
	Progress func(stage string, done, total int)
	// AllowNonFinite loads weights holding NaN or ±Inf, or values that
	// overflow f16, instead of failing with an error naming the tensor.
	AllowNonFinite bool
	// Quantize stores the floating-point embedding table, projection
	// matrices and LM head quantized ("" or QuantNone: f16; QuantQ8_0: Q8_0, see PlanWeights).
	Quantize Quantization
	// F16Weights stores every matrix as f16, dequantizing quantized GGUF
	// tensors at load, as before the quantized kernels (for tests and
	// comparisons; it overrides Quantize).
	F16Weights bool
	// Logf, if set, receives one-line notes (such as quantized types the
	// device runs no kernel for, which are dequantized to f16 at load).
	Logf func(format string, args ...any)
	// DecodeBucket is the KV-length granularity of the recorded one-token
	// decode step (default 1024): its attention grid covers caches up to
	// the next power of two (from 64) below DecodeBucket tokens and up to
	// the next multiple of DecodeBucket past it, and the step is recorded
	// again when the cache grows past that. Smaller buckets fit the grid
	// closer to the cache and record more often.
	DecodeBucket int
	// FreshDecode records every decode step anew instead of submitting a
	// recorded one again (the same commands; for comparison and debugging).
	FreshDecode bool
	// SyncDecode makes greedy generation wait for each decode step before
	// starting the next, as sampled generation does, instead of keeping
	// two steps in flight (the same tokens; for comparison and debugging).
	SyncDecode bool
}

type layerDev struct {
	attnNorm, mlpNorm *runtime.Tensor // f32 [H]
	wq, wk, wv, wo    *runtime.Tensor // f16 [out, in]
	bq, bk, bv, bo    *runtime.Tensor // f32 or nil
	// wqkv stacks wq, wk and wv ([Hq·D + 2·Hkv·D, H] f16; wq, wk and wv
	// are views of it) and bqkv their biases, when stackQKV allows; nil
	// otherwise.
	wqkv, bqkv *runtime.Tensor
	wg, wu, wd *runtime.Tensor // f16
	// wgu stacks wg over wu ([2·F, H] f16; wg and wu are views of it) when
	// stackGateUp allows; nil otherwise.
	wgu            *runtime.Tensor
	kCache, vCache *runtime.Tensor // f16 [ctx, Hkv, D]
}

// Engine runs one model on one device: weights resident on the device, a KV
// cache, prefill and decode. An Engine is not safe for concurrent use: calls
// from several goroutines must be serialised by the caller (a mutex guards
// against misuse and returns ErrBusy).
type Engine struct {
	dev  *runtime.Device
	cfg  *Config
	opts EngineOptions

	embed, lmHead, finalNorm, invFreq *runtime.Tensor
	layers                            []layerDev

	// Activations, sized for MaxPrefill tokens and ChunkTokens chunks.
	x, q, o                   *runtime.Tensor // f32 [n,H], f16 [n,Hq·D], f16 [n,Hq·D]
	xn, kt, vt, gate, up, act *runtime.Tensor // chunk temporaries (f16)
	tmp                       *runtime.Tensor // f32 [C, H]
	ids                       *runtime.Tensor // i32 [n]
	lastX                     *runtime.Tensor // f32 [C, H] final-normed rows
	logits                    *runtime.Tensor // f32 [C, V]
	argmax                    *runtime.Tensor // i32 [C]
	zeroPos                   *runtime.Tensor // i32 [1] = 0: prefill's base position for kernels.RopeKV and RopeQKV

	rec     *runtime.Recorder // the engine's recorder, reused by every call
	wt      WeightTypes       // the device type of every weight (PlanWeights)
	plan    MemoryPlan        // the memory NewEngine planned
	deq     *runtime.Tensor   // f16 scratch prefill dequantizes a quantized matrix into (nil: none)
	scratch *runtime.Tensor   // f32 split-KV scratch of decode attention (nil: no split)
	// Sampling: top-k candidates (or the argmax in topIdx[0]) and their
	// host copy, written in the batch of the step that made the logits.
	topVals, topIdx *runtime.Tensor // f32 [1, k], i32 [1, k]
	sampleHost      *runtime.HostBuffer
	idsHost         *runtime.HostBuffer // token ids of a call, copied in its first batch
	logitsHost      *runtime.HostBuffer // f32 [V]: the last position's logits
	dec             decoder             // the decode step (decode.go)

	// pos is the number of tokens in the KV cache. Calls hold busy; pos is
	// atomic so that Pos may be read during a call.
	pos  atomic.Int64
	busy chan struct{}

	mu          sync.Mutex // guards closed, cancel and lastPrefill
	closed      bool
	cancel      context.CancelFunc // cancels the call in flight
	lastPrefill PrefillStats
}

// PrefillStats describes one Prefill call.
type PrefillStats struct {
	Tokens   int
	Duration time.Duration
}

// ErrBusy is returned when an Engine is used from two goroutines at once.
var ErrBusy = errors.New("engine is busy: calls must not overlap")

// ErrClosed is returned by every call on an Engine after Close.
var ErrClosed = errors.New("engine is closed")

// ErrContextFull is wrapped when a prompt does not fit the KV cache.
var ErrContextFull = errors.New("context is full")

// MemoryPlan is the device memory an engine needs, by part, in bytes.
type MemoryPlan struct {
	Weights, KVCache, Activations, Total uint64
	// WeightTypes splits Weights by the type the tensors are stored in,
	// largest first.
	WeightTypes []TypeBytes
	// Dequant is the f16 scratch (part of Activations) that prefill
	// dequantizes a quantized matrix into before multiplying: as large as
	// the largest quantized layer matrix, 0 when none is quantized.
	Dequant uint64
}

// String describes the plan in one line: "weights 4.58 GiB (Q4_K 3.90
// GiB, Q6_K …) + KV cache … + activations … = …".
func (m MemoryPlan) String() string {
	w := gib(m.Weights)
	if len(m.WeightTypes) > 0 {
		parts := make([]string, len(m.WeightTypes))
		for i, t := range m.WeightTypes {
			parts[i] = t.Type.String() + " " + gib(t.Bytes)
		}
		w += " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("weights %s + KV cache %s + activations %s = %s",
		w, gib(m.KVCache), gib(m.Activations), gib(m.Total))
}

// CheckFits returns nil when the plan fits budget bytes of device memory
// (0: unknown, which fits), else an error wrapping
// runtime.ErrOutOfDeviceMemory that names the plan, the memory of the
// device and the context of contextLen tokens, and suggests a shorter
// context (and quantized weights while f16 weights are a quarter of the plan or more).
func (m MemoryPlan) CheckFits(budget uint64, device string, contextLen int) error {
	if budget == 0 || m.Total <= budget {
		return nil
	}
	hint := ""
	for _, t := range m.WeightTypes {
		if t.Type == gguf.F16 && t.Bytes > m.Total/4 {
			hint = ", or quantized weights (Q8_0 on load, or a quantized GGUF file)"
		}
	}
	return fmt.Errorf("%w: the model needs %s but device %q has %s; use a shorter context (now %d tokens)%s",
		runtime.ErrOutOfDeviceMemory, m, device, gib(budget), contextLen, hint)
}

func gib(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func (o *EngineOptions) defaults(cfg *Config) error {
	if o.Context == 0 {
		o.Context = cfg.MaxPositionEmbeddings
		if o.Context > 8192 {
			o.Context = 8192
		}
	}
	if o.Context < 1 {
		return fmt.Errorf("engine: context %d must be positive", o.Context)
	}
	if o.MaxPrefill == 0 || o.MaxPrefill > o.Context {
		o.MaxPrefill = o.Context
	}
	if o.ChunkTokens == 0 {
		fit := int(chunkBudget/chunkBytesPerToken(cfg)) &^ 127
		o.ChunkTokens = max(128, min(fit, (o.MaxPrefill+127)&^127))
	}
	if o.ChunkTokens%128 != 0 || o.ChunkTokens < 128 {
		return fmt.Errorf("engine: chunk size %d must be a positive multiple of 128", o.ChunkTokens)
	}
	if o.Attention == nil {
		o.Attention = DenseAttention{}
	}
	q, err := ParseQuantization(string(o.Quantize))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	o.Quantize = q
	if o.DecodeBucket == 0 {
		o.DecodeBucket = defaultDecodeBucket
	}
	if o.DecodeBucket < 1 {
		return fmt.Errorf("engine: decode bucket %d must be positive", o.DecodeBucket)
	}
	return nil
}

// chunkBudget bounds the chunk activations of the default ChunkTokens.
const chunkBudget = 256 << 20

// logitRows is the most positions whose logits are computed at once (the
// logits of every position, for perplexity, go in chunks of this many rows).
const logitRows = 512

// chunkBytesPerToken is the device memory of one token's chunk activations:
// the normed input, new keys and values, gate, up and SwiGLU rows (f16) and
// the projection row (f32).
func chunkBytesPerToken(cfg *Config) uint64 {
	h, kv, f := uint64(cfg.HiddenSize), uint64(cfg.KVDim()), uint64(cfg.IntermediateSize)
	return h*2 + 2*kv*2 + 3*f*2 + h*4
}

// PlanMemory computes the device memory NewEngine will allocate for the
// weights of cfg stored as wt (PlanWeights; nil: every matrix f16).
func PlanMemory(cfg *Config, wt WeightTypes, opts EngineOptions) (MemoryPlan, error) {
	if err := opts.defaults(cfg); err != nil {
		return MemoryPlan{}, err
	}
	h, qd, kv, v := uint64(cfg.HiddenSize), uint64(cfg.QDim()), uint64(cfg.KVDim()), uint64(cfg.VocabSize)
	L := uint64(cfg.NumLayers)
	var m MemoryPlan
	var scratch uint64
	m.Weights, m.WeightTypes, scratch = weightBytes(cfg, wt)
	m.Dequant = 2 * scratch
	m.KVCache = L * 2 * uint64(opts.Context) * kv * 2
	n, c := uint64(opts.MaxPrefill), uint64(max(1, min(opts.ChunkTokens, opts.MaxPrefill)))
	lr := min(c, logitRows)
	m.Activations = n*h*4 + 2*n*qd*2 + n*4 + c*chunkBytesPerToken(cfg) + lr*(h*4+v*4+4)
	// Decode attention's split-KV scratch: at most about 256 workgroups of
	// decodeRows·Hq·(D+1) partial results after a counter per KV head
	// rounded up to the 256-byte alignment (kernels.DecodeScratchMax).
	hq, hkv, d := uint64(cfg.NumHeads), uint64(cfg.NumKVHeads), uint64(cfg.HeadDim)
	m.Activations += ((256+hkv-1)/hkv*decodeRows*hq*(d+1) + hkv + 63) * 4
	m.Activations += m.Dequant
	m.Total = m.Weights + m.KVCache + m.Activations
	return m, nil
}

// NewEngine uploads the model in ck (described by cfg) to dev. Weights are
// stored as f16 (bf16 and f32 checkpoints are converted on upload: f16 keeps
// 3 more mantissa bits than bf16 and LLM weights are far below f16's 65504
// limit); norms and biases stay f32. The memory needed is computed first and a
// device that is too small gets an error with the numbers.
func NewEngine(dev *runtime.Device, cfg *Config, ck *Checkpoint, opts EngineOptions) (*Engine, error) {
	if err := opts.defaults(cfg); err != nil {
		return nil, err
	}
	if cfg.HeadDim%4 != 0 || cfg.HeadDim > 256 {
		return nil, fmt.Errorf("engine: head_dim %d is not supported (a multiple of 4, at most 256)", cfg.HeadDim)
	}
	wt, fallback, err := PlanWeights(cfg, ck, opts, QuantTypes(dev))
	if err != nil {
		return nil, err
	}
	if len(fallback) > 0 && opts.Logf != nil {
		opts.Logf("device %q runs no kernel for %v weights: they are dequantized to f16 at load", dev.Info().Name, fallback)
	}
	plan, _ := PlanMemory(cfg, wt, opts)
	if err := plan.CheckFits(dev.MemoryBudget(), dev.Info().Name, opts.Context); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e := &Engine{dev: dev, cfg: cfg, opts: opts, wt: wt, plan: plan, busy: make(chan struct{}, 1)}
	if err := e.load(ck); err != nil {
		e.free()
		return nil, err
	}
	if err := e.allocActivations(); err != nil {
		e.free()
		return nil, err
	}
	return e, nil
}

// Config is the model configuration.
func (e *Engine) Config() *Config { return e.cfg }

// Device is the engine's device.
func (e *Engine) Device() *runtime.Device { return e.dev }

// Context is the KV-cache length in tokens.
func (e *Engine) Context() int { return e.opts.Context }

// Pos is the number of tokens in the KV cache. It may be read during a call
// (it changes when a prefill or decode step completes).
func (e *Engine) Pos() int { return int(e.pos.Load()) }

// LastPrefill returns the statistics of the most recent completed Prefill
// (including decode steps). It may be read during a call.
func (e *Engine) LastPrefill() PrefillStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastPrefill
}

// Reset empties the KV cache (the next Prefill starts at position 0). It
// returns ErrBusy, changing nothing, while another call is using the engine,
// and ErrClosed after Close.
func (e *Engine) Reset() error {
	_, release, err := e.acquire(context.Background())
	if err != nil {
		return err
	}
	e.pos.Store(0)
	release()
	return nil
}

// SetTrace makes later calls log into t (nil: stop): host submissions and
// waits, and the GPU time of every dispatch (runtime.Trace). It returns
// ErrBusy while another call is using the engine, and ErrClosed after Close.
func (e *Engine) SetTrace(t *runtime.Trace) error {
	_, release, err := e.acquire(context.Background())
	if err != nil {
		return err
	}
	defer release()
	e.rec.SetTrace(t)
	return e.dec.setTrace(t)
}

// SetAttention replaces the prefill attention (nil: dense). It returns
// ErrBusy while another call is using the engine, and ErrClosed after Close.
func (e *Engine) SetAttention(a Attention) error {
	_, release, err := e.acquire(context.Background())
	if err != nil {
		return err
	}
	defer release()
	if a == nil {
		a = DenseAttention{}
	}
	e.opts.Attention = a
	return nil
}

func (e *Engine) progress(stage string, done, total int) {
	if e.opts.Progress != nil {
		e.opts.Progress(stage, done, total)
	}
}

func (e *Engine) load(ck *Checkpoint) error {
	cfg := e.cfg
	specs := cfg.ExpectedTensors()
	byName := map[string]TensorSpec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	done := 0
	// matrix reads matrix name into dst (f16; a view of the stacked q, k,
	// v or gate, up) and returns dst, or into a new tensor when dst is nil.
	matrix := func(name string, dst *runtime.Tensor) (*runtime.Tensor, error) {
		defer func() { done++; e.progress("loading weights", done, len(specs)) }()
		if typ := e.wt[name]; typ.BlockElems() > 1 && dst == nil {
			return e.uploadQuantized(ck, name, byName[name].Shape, typ)
		}
		t, err := ck.Tensor(name)
		if err != nil {
			return nil, fmt.Errorf("loading weights: %w", err)
		}
		if want := byName[name].Shape; !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("loading weights: %s: tensor %q has shape %v, expected %v", t.File, name, t.Shape, want)
		}
		if !e.opts.AllowNonFinite {
			if err := checkFinite(t, true); err != nil {
				return nil, fmt.Errorf("loading weights: %w", err)
			}
		}
		out := dst
		if out == nil {
			if out, err = e.dev.NewNamedTensor(name, runtime.F16, t.Shape...); err != nil {
				return nil, err
			}
		} else if out.Len() != t.NumElements() {
			return nil, fmt.Errorf("loading %s: %d elements into a stacked view of %d", name, t.NumElements(), out.Len())
		}
		switch t.DType {
		case F16:
			err = out.UploadBytes(t.Data, 0)
		case BF16, F32:
			dt := runtime.BF16
			if t.DType == F32 {
				dt = runtime.F32
			}
			var tmp *runtime.Tensor
			tmp, err = e.dev.NewNamedTensor(name+" (staging)", dt, t.Shape...)
			if err == nil {
				err = tmp.UploadBytes(t.Data, 0)
				if err == nil {
					err = e.dev.Run(func(r *runtime.Recorder) error { return kernels.Convert(r, out, tmp) })
				}
				tmp.Free()
			}
		default:
			err = fmt.Errorf("dtype %s", t.DType)
		}
		if err != nil {
			out.Free() // nothing for a view
			return nil, fmt.Errorf("loading %s from %s: %w", name, t.File, err)
		}
		return out, nil
	}
	// vector reads vector name into dst (f32; a view of the stacked
	// biases) and returns dst, or into a new tensor when dst is nil.
	vector := func(name string, dst *runtime.Tensor) (*runtime.Tensor, error) {
		defer func() { done++; e.progress("loading weights", done, len(specs)) }()
		t, err := ck.Tensor(name)
		if err != nil {
			return nil, fmt.Errorf("loading weights: %w", err)
		}
		if want := byName[name].Shape; !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("loading weights: %s: tensor %q has shape %v, expected %v", t.File, name, t.Shape, want)
		}
		if !e.opts.AllowNonFinite {
			if err := checkFinite(t, false); err != nil {
				return nil, fmt.Errorf("loading weights: %w", err)
			}
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("loading weights: %w", err)
		}
		out := dst
		if out == nil {
			if out, err = e.dev.NewNamedTensor(name, runtime.F32, len(v)); err != nil {
				return nil, err
			}
		} else if out.Len() != len(v) {
			return nil, fmt.Errorf("loading %s: %d elements into a stacked view of %d", name, len(v), out.Len())
		}
		if err := out.UploadF32(v); err != nil {
			out.Free() // nothing for a view
			return nil, err
		}
		return out, nil
	}
	var err error
	if e.embed, err = matrix(EmbedTokensName, nil); err != nil {
		return err
	}
	e.layers = make([]layerDev, cfg.NumLayers)
	for l := range e.layers {
		ld := &e.layers[l]
		n := func(s string) string { return LayerTensorName(l, s) }
		steps := []struct {
			dst  **runtime.Tensor
			name string
			vec  bool
			need bool
		}{
			{&ld.attnNorm, "input_layernorm.weight", true, true},
			{&ld.wq, "self_attn.q_proj.weight", false, true},
			{&ld.bq, "self_attn.q_proj.bias", true, cfg.QKVBias},
			{&ld.wk, "self_attn.k_proj.weight", false, true},
			{&ld.bk, "self_attn.k_proj.bias", true, cfg.QKVBias},
			{&ld.wv, "self_attn.v_proj.weight", false, true},
			{&ld.bv, "self_attn.v_proj.bias", true, cfg.QKVBias},
			{&ld.wo, "self_attn.o_proj.weight", false, true},
			{&ld.bo, "self_attn.o_proj.bias", true, cfg.OBias},
			{&ld.mlpNorm, "post_attention_layernorm.weight", true, true},
			{&ld.wg, "mlp.gate_proj.weight", false, true},
			{&ld.wu, "mlp.up_proj.weight", false, true},
			{&ld.wd, "mlp.down_proj.weight", false, true},
		}
		if err := e.stackQKV(l); err != nil {
			return err
		}
		if err := e.stackGateUp(l); err != nil {
			return err
		}
		for _, s := range steps {
			if !s.need {
				continue
			}
			// *s.dst is nil, or a view of the stacked q, k, v (stackQKV)
			// or gate, up (stackGateUp).
			if s.vec {
				*s.dst, err = vector(n(s.name), *s.dst)
			} else {
				*s.dst, err = matrix(n(s.name), *s.dst)
			}
			if err != nil {
				return err
			}
		}
		if ld.kCache, err = e.dev.NewNamedTensor(fmt.Sprintf("layer %d K cache", l), runtime.F16, e.opts.Context, cfg.NumKVHeads, cfg.HeadDim); err != nil {
			return err
		}
		if ld.vCache, err = e.dev.NewNamedTensor(fmt.Sprintf("layer %d V cache", l), runtime.F16, e.opts.Context, cfg.NumKVHeads, cfg.HeadDim); err != nil {
			return err
		}
	}
	if e.finalNorm, err = vector(FinalNormName, nil); err != nil {
		return err
	}
	if cfg.TieWordEmbeddings {
		e.lmHead = e.embed
	} else if e.lmHead, err = matrix(LMHeadName, nil); err != nil {
		return err
	}
	var sc *kernels.Llama3Scaling
	if rs := cfg.RopeScaling; rs != nil {
		sc = &kernels.Llama3Scaling{Factor: rs.Factor, LowFreqFactor: rs.LowFreqFactor,
			HighFreqFactor: rs.HighFreqFactor, OriginalMaxPositionEmbeddings: rs.OriginalMaxPositionEmbeddings}
	}
	// HF computes inv_freq in f32 step by step; RopeInvFreqF32 follows it.
	f := kernels.RopeInvFreqF32(cfg.RopeTheta, cfg.HeadDim, sc)
	if e.invFreq, err = e.dev.NewNamedTensor("rope inv_freq", runtime.F32, len(f)); err != nil {
		return err
	}
	return e.invFreq.UploadF32(f)
}

func (e *Engine) allocActivations() error {
	if err := e.allocDequant(); err != nil {
		return err
	}
	cfg := e.cfg
	n, c := e.opts.MaxPrefill, min(e.opts.ChunkTokens, e.opts.MaxPrefill)
	h, qd, kv, f, v := cfg.HiddenSize, cfg.QDim(), cfg.KVDim(), cfg.IntermediateSize, cfg.VocabSize
	type alloc struct {
		dst   **runtime.Tensor
		name  string
		dt    runtime.DType
		shape []int
	}
	for _, a := range []alloc{
		{&e.x, "residual stream", runtime.F32, []int{n, h}},
		{&e.q, "queries", runtime.F16, []int{n, qd}},
		{&e.o, "attention output", runtime.F16, []int{n, qd}},
		{&e.ids, "token ids", runtime.I32, []int{n}},
		{&e.xn, "normed chunk", runtime.F16, []int{c, h}},
		{&e.kt, "key chunk", runtime.F16, []int{c, kv}},
		{&e.vt, "value chunk", runtime.F16, []int{c, kv}},
		{&e.gate, "gate chunk", runtime.F16, []int{c, f}},
		{&e.up, "up chunk", runtime.F16, []int{c, f}},
		{&e.act, "swiglu chunk", runtime.F16, []int{c, f}},
		{&e.tmp, "projection chunk", runtime.F32, []int{c, h}},
		{&e.lastX, "final-normed rows", runtime.F32, []int{min(c, logitRows), h}},
		{&e.logits, "logits", runtime.F32, []int{min(c, logitRows), v}},
		{&e.argmax, "argmax", runtime.I32, []int{min(c, logitRows)}},
		{&e.zeroPos, "zero position", runtime.I32, []int{1}},
	} {
		t, err := e.dev.NewNamedTensor(a.name, a.dt, a.shape...)
		if err != nil {
			return fmt.Errorf("allocating activations: %w", err)
		}
		*a.dst = t
	}
	if err := e.zeroPos.UploadBytes(make([]byte, 4), 0); err != nil {
		return fmt.Errorf("allocating activations: %w", err)
	}
	k := min(kernels.DefaultTopK, v)
	var err error
	if e.topVals, err = e.dev.NewNamedTensor("top-k values", runtime.F32, 1, k); err != nil {
		return fmt.Errorf("allocating activations: %w", err)
	}
	if e.topIdx, err = e.dev.NewNamedTensor("top-k ids", runtime.I32, 1, k); err != nil {
		return fmt.Errorf("allocating activations: %w", err)
	}
	if sl := decodeScratch(e.dev, cfg, e.opts.Context); sl > 0 {
		if e.scratch, err = e.dev.NewNamedTensor("decode attention scratch", runtime.F32, sl); err != nil {
			return fmt.Errorf("allocating activations: %w", err)
		}
		// Zero before its first use: the split-KV kernel counts in it.
		if err := e.scratch.UploadBytes(make([]byte, e.scratch.Bytes()), 0); err != nil {
			return fmt.Errorf("zeroing the decode attention scratch: %w", err)
		}
	}
	for _, hb := range []struct {
		dst  **runtime.HostBuffer
		size int
	}{{&e.sampleHost, 8 * k}, {&e.idsHost, 4 * n}, {&e.logitsHost, 4 * v}} {
		if *hb.dst, err = e.dev.NewHostBuffer(uint64(hb.size)); err != nil {
			return fmt.Errorf("allocating host buffers: %w", err)
		}
	}
	if e.rec, err = e.dev.NewRecorder(); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return e.allocDecoder()
}

// decodeScratch is the f32 scratch length decode attention needs at most for
// up to decodeRows queries against a cache of up to ctx tokens (0: it never
// splits the KV range).
func decodeScratch(dev *runtime.Device, cfg *Config, ctx int) int {
	most := 0
	for sq := 1; sq <= min(decodeRows, ctx); sq++ {
		p := kernels.AttnParams{Hq: cfg.NumHeads, Hkv: cfg.NumKVHeads, D: cfg.HeadDim, Sq: sq, Skv: ctx, Q0: ctx - sq, Causal: true}
		if n, err := kernels.DecodeScratchMax(dev, p); err == nil {
			most = max(most, n)
		}
	}
	return most
}

// Close cancels the call in flight, if any, waits for it to return and for
// the GPU work it submitted, and frees everything the engine allocated on the
// device. Every call after Close returns ErrClosed; Close itself may be called
// again (it does nothing) and from any goroutine.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	if e.cancel != nil {
		e.cancel()
	}
	e.mu.Unlock()
	e.busy <- struct{}{} // the call in flight has returned; busy is never released again
	e.free()
}

// free releases the device objects (NewEngine's error path and Close).
func (e *Engine) free() {
	if e.rec != nil {
		e.rec.Release() // waits for submitted work
		e.rec = nil
	}
	e.freeDecoder()
	if c, ok := e.opts.Attention.(interface{ Close() }); ok {
		c.Close() // buffers an Attention keeps between calls
	}
	free := func(ts ...*runtime.Tensor) {
		for _, t := range ts {
			t.Free()
		}
	}
	for _, l := range e.layers {
		free(l.attnNorm, l.mlpNorm, l.wqkv, l.bqkv, l.wgu, l.wq, l.wk, l.wv, l.wo, l.bq, l.bk, l.bv, l.bo, l.wg, l.wu, l.wd, l.kCache, l.vCache)
	}
	e.layers = nil
	if e.lmHead != e.embed {
		free(e.lmHead)
	}
	free(e.embed, e.finalNorm, e.invFreq, e.deq, e.x, e.q, e.o, e.ids, e.xn, e.kt, e.vt, e.gate, e.up, e.act, e.tmp, e.lastX, e.logits, e.argmax, e.zeroPos, e.scratch, e.topVals, e.topIdx)
	for _, hb := range []*runtime.HostBuffer{e.sampleHost, e.idsHost, e.logitsHost} {
		hb.Free()
	}
}

// acquire starts a call: it fails with ErrClosed after Close and with ErrBusy
// while another call runs. The returned context is ctx, also cancelled by
// Close; release ends the call.
func (e *Engine) acquire(ctx context.Context) (context.Context, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, nil, ErrClosed
	}
	select {
	case e.busy <- struct{}{}:
	default:
		return nil, nil, ErrBusy
	}
	cctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	return cctx, func() {
		cancel()
		e.mu.Lock()
		e.cancel = nil
		e.mu.Unlock()
		<-e.busy
	}, nil
}

func view(t *runtime.Tensor, off int, shape ...int) *runtime.Tensor {
	v, err := t.View(off, shape...)
	if err != nil {
		panic(fmt.Sprintf("internal error: %v", err)) // offsets are chunk-aligned by construction
	}
	return v
}

// stackQKV allocates layer l's stacked q, k and v projections (wqkv, and
// bqkv with biases) and points wq, wk, wv (bq, bk, bv) at views of them, for
// load to fill; it does nothing when they cannot be stacked: weights
// quantized on the device, a view offset the device cannot bind, or an
// intermediate size below the stacked width (prefill's q|k|v rows go to the
// MLP's gate buffer, free at that point).
func (e *Engine) stackQKV(l int) error {
	cfg := e.cfg
	ld := &e.layers[l]
	h, qd, kv := cfg.HiddenSize, cfg.QDim(), cfg.KVDim()
	stride := qd + 2*kv
	for _, s := range []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"} {
		if e.wt[LayerTensorName(l, s)].BlockElems() > 1 {
			return nil
		}
	}
	align := e.dev.Alignment()
	if cfg.IntermediateSize < stride || uint64(qd*h*2)%align != 0 || uint64((qd+kv)*h*2)%align != 0 ||
		cfg.QKVBias && (uint64(qd*4)%align != 0 || uint64((qd+kv)*4)%align != 0) {
		return nil
	}
	var err error
	if ld.wqkv, err = e.dev.NewNamedTensor(fmt.Sprintf("layer %d q|k|v projections", l), runtime.F16, stride, h); err != nil {
		return err
	}
	// views points q, k and v at row ranges [0, qd), [qd, qd+kv) and
	// [qd+kv, qd+2kv) of t, rows of w elements (shape [rows, w], or [rows]
	// for w = 1).
	views := func(t *runtime.Tensor, w int, q, k, v **runtime.Tensor) error {
		shape := func(rows int) []int {
			if w == 1 {
				return []int{rows}
			}
			return []int{rows, w}
		}
		var err error
		if *q, err = t.View(0, shape(qd)...); err == nil {
			if *k, err = t.View(qd*w, shape(kv)...); err == nil {
				*v, err = t.View((qd+kv)*w, shape(kv)...)
			}
		}
		return err
	}
	if err := views(ld.wqkv, h, &ld.wq, &ld.wk, &ld.wv); err != nil {
		return fmt.Errorf("stacking layer %d's projections: %w", l, err)
	}
	if !cfg.QKVBias {
		return nil
	}
	if ld.bqkv, err = e.dev.NewNamedTensor(fmt.Sprintf("layer %d q|k|v biases", l), runtime.F32, stride); err != nil {
		return err
	}
	if err := views(ld.bqkv, 1, &ld.bq, &ld.bk, &ld.bv); err != nil {
		return fmt.Errorf("stacking layer %d's biases: %w", l, err)
	}
	return nil
}

// stackGateUp allocates layer l's stacked gate and up projections (wgu,
// gate rows over up rows) and points wg and wu at views of it, for load to
// fill; it does nothing when they cannot be stacked: weights quantized on
// the device, an up view offset the device cannot bind, or a stacked
// matrix larger than one storage-buffer binding (MatMulSwiGLU reads it
// whole). Prefill then computes the MLP's activation in one
// kernels.MatMulSwiGLU (where kernels.MatMulSwiGLUPreferred).
func (e *Engine) stackGateUp(l int) error {
	cfg := e.cfg
	ld := &e.layers[l]
	h, f := cfg.HiddenSize, cfg.IntermediateSize
	for _, s := range []string{"mlp.gate_proj.weight", "mlp.up_proj.weight"} {
		if e.wt[LayerTensorName(l, s)].BlockElems() > 1 {
			return nil
		}
	}
	if uint64(f*h*2)%e.dev.Alignment() != 0 || uint64(2*f)*uint64(h)*2 > e.dev.Info().MaxStorageBufferRange {
		return nil
	}
	var err error
	if ld.wgu, err = e.dev.NewNamedTensor(fmt.Sprintf("layer %d gate|up projections", l), runtime.F16, 2*f, h); err != nil {
		return err
	}
	if ld.wg, err = ld.wgu.View(0, f, h); err == nil {
		ld.wu, err = ld.wgu.View(f*h, f, h)
	}
	if err != nil {
		return fmt.Errorf("stacking layer %d's gate and up projections: %w", l, err)
	}
	return nil
}

// submitEvery is the prompt length from which prefill flushes a command
// batch after every layer (without waiting: the host records layer l+1 while
// the GPU runs layer l), and once more after the first layer's attention
// input, so that the GPU starts early. Shorter calls (decode steps) batch
// every layer.
const submitEvery = 256

// decodeRows is the most new tokens a call after the first (q0 > 0) may have
// to run as a decode step (Engine.decodePart: the mat-vec kernels and
// split-KV decode attention) instead of a prefill (kernels.GEMVMaxM).
const decodeRows = 4

// LogitsMode says which positions of a Prefill produce logits.
type LogitsMode int

const (
	// LastLogits computes logits for the last position only.
	LastLogits LogitsMode = iota
	// AllLogits computes logits for every position (for perplexity).
	AllLogits
	// deviceLogits computes the last position's logits and leaves them on
	// the device (row 0 of e.logits) for GPU sampling.
	deviceLogits
	// noLogits computes none (a part of a split prefill).
	noLogits LogitsMode = -1
)

// Prefill appends tokens to the KV cache and returns the logits of the last
// position. A prompt that does not fit the context is an error
// (ErrContextFull) naming both lengths. Cancelling ctx (or Close) stops it
// within one GPU wait slice (about 10 ms) of the layer in flight; the KV
// cache is then left at its previous position.
func (e *Engine) Prefill(ctx context.Context, tokens []int) ([]float32, error) {
	var last []float32
	err := e.prefill(ctx, tokens, LastLogits, func(row int, logits []float32) {
		last = logits
	})
	return last, err
}

// PrefillAll is Prefill that reports the logits of every position through fn
// (in order; the slice is reused between calls).
func (e *Engine) PrefillAll(ctx context.Context, tokens []int, fn func(pos int, logits []float32)) error {
	return e.prefill(ctx, tokens, AllLogits, fn)
}

func (e *Engine) prefill(ctx context.Context, tokens []int, mode LogitsMode, fn func(int, []float32)) error {
	ctx, release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return e.prefillLocked(ctx, tokens, mode, fn, noSampler)
}

// prefillLocked is prefill for a caller that holds the engine (acquire).
// s, if set, samples from the last part's logits on the GPU in the same
// batch (mode deviceLogits).
func (e *Engine) prefillLocked(ctx context.Context, tokens []int, mode LogitsMode, fn func(int, []float32), s sampler) error {
	n := len(tokens)
	if n == 0 {
		return fmt.Errorf("prefill: no tokens")
	}
	if pos := e.Pos(); pos+n > e.opts.Context {
		return fmt.Errorf("prefill: %w: %d tokens after %d in the cache exceed the context of %d tokens", ErrContextFull, n, pos, e.opts.Context)
	}
	// Split into MaxPrefill-sized calls (attention stays exact: each part sees the cache).
	for p := 0; p < n; p += e.opts.MaxPrefill {
		end := min(n, p+e.opts.MaxPrefill)
		m, smp := mode, s
		if mode != AllLogits && end < n {
			m, smp = noLogits, noSampler // only the last part's last position is wanted
		}
		base := p
		part := tokens[p:end]
		out := func(row int, l []float32) { fn(base+row, l) }
		var err error
		if len(part) <= decodeRows && e.Pos() > 0 {
			err = e.decodePart(ctx, part, m, out, smp) // decode.go
		} else {
			err = e.prefillPart(ctx, part, m, out, smp)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) prefillPart(ctx context.Context, tokens []int, mode LogitsMode, fn func(int, []float32), s sampler) (err error) {
	cfg := e.cfg
	start := time.Now()
	n := len(tokens)
	q0 := e.Pos()
	ids := e.idsHost.Int32s(n)
	r := e.rec
	// Batches of an earlier, cancelled call may still read idsHost.
	if err := r.WaitContext(ctx); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	if err := e.dec.wait(ctx); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for i, t := range tokens {
		ids[i] = int32(t)
	}
	if err := kernels.ValidateIDs(ids, cfg.VocabSize); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	defer func() {
		if err != nil {
			r.Discard() // flushed layers finish on their own; the next call waits for them
		}
	}()
	idv := view(e.ids, 0, n)
	if err := r.CopyFromHost(idv, 0, e.idsHost, 0, uint64(4*n)); err != nil {
		return err
	}
	h := cfg.HiddenSize
	C := min(e.opts.ChunkTokens, e.opts.MaxPrefill)
	x := view(e.x, 0, n, h)
	q := view(e.q, 0, n, cfg.NumHeads, cfg.HeadDim)
	o := view(e.o, 0, n, cfg.NumHeads, cfg.HeadDim)

	att := e.opts.Attention
	if err := att.Begin(e, q0, n); err != nil {
		return fmt.Errorf("prefill: attention: %w", err)
	}
	if err := kernels.Embed(r, x, e.embed, idv); err != nil {
		return err
	}
	chunks := func(fn func(c, m int) error) error {
		for c := 0; c < n; c += C {
			if err := fn(c, min(C, n-c)); err != nil {
				return err
			}
		}
		return nil
	}
	p := kernels.AttnParams{Hq: cfg.NumHeads, Hkv: cfg.NumKVHeads, D: cfg.HeadDim, Sq: n, Skv: q0 + n, Q0: q0, Causal: true}
	for l := range e.layers {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("prefill cancelled at layer %d: %w", l, err)
		}
		if err := r.Ready(ctx); err != nil {
			return fmt.Errorf("prefill layer %d: %w", l, err)
		}
		ld := &e.layers[l]
		err := chunks(func(c, m int) error { return e.attnInput(r, ld, c, m, q0) })
		if err != nil {
			return fmt.Errorf("prefill layer %d: %w", l, err)
		}
		// The GPU idles until the first batch is submitted: start it on
		// the embedding and the first projections while the host records
		// the rest of the first layer (its attention, which may plan).
		if l == 0 && n >= submitEvery {
			if err := r.Flush(); err != nil {
				return fmt.Errorf("prefill layer %d: %w", l, err)
			}
		}
		if err = att.Layer(r, l, q, ld.kCache, ld.vCache, o, p); err != nil {
			return fmt.Errorf("prefill layer %d attention: %w", l, err)
		}
		err = chunks(func(c, m int) error { return e.attnOutputAndMLP(r, ld, c, m) })
		if err != nil {
			return fmt.Errorf("prefill layer %d: %w", l, err)
		}
		// Long prompts flush per layer so that no command buffer runs for
		// seconds (driver watchdogs) and the GPU starts early; short ones
		// (decode) batch every layer.
		if n >= submitEvery {
			if err := r.Flush(); err != nil {
				return fmt.Errorf("prefill layer %d: %w", l, err)
			}
		}
		e.progress("prefill", l+1, len(e.layers))
	}
	if err := att.End(r); err != nil {
		return fmt.Errorf("prefill: attention: %w", err)
	}
	switch mode {
	case deviceLogits:
		if err := e.recordLogits(r, n-1, 1); err != nil {
			return err
		}
		if err := e.recordSampler(r, s, e.sampleHost); err != nil {
			return err
		}
		if err := r.SubmitContext(ctx); err != nil {
			return err
		}
	case LastLogits:
		v := cfg.VocabSize
		if err := e.recordLogits(r, n-1, 1); err != nil {
			return err
		}
		if err := r.CopyToHost(e.logitsHost, 0, e.logits, 0, uint64(4*v)); err != nil {
			return err
		}
		if err := r.SubmitContext(ctx); err != nil {
			return err
		}
		fn(n-1, slices.Clone(e.logitsHost.Float32s(v)))
	case AllLogits:
		v := cfg.VocabSize
		LR := min(C, logitRows)
		for c := 0; c < n; c += LR {
			m := min(LR, n-c)
			if err := e.recordLogits(r, c, m); err != nil {
				return err
			}
			if err := r.SubmitContext(ctx); err != nil {
				return err
			}
			logits, err := view(e.logits, 0, m, v).DownloadF32()
			if err != nil {
				return err
			}
			for i := 0; i < m; i++ {
				fn(c+i, logits[i*v:(i+1)*v])
			}
		}
	default:
		if err := r.SubmitContext(ctx); err != nil {
			return err
		}
	}
	e.pos.Store(int64(q0 + n))
	e.mu.Lock()
	e.lastPrefill = PrefillStats{Tokens: n, Duration: time.Since(start)}
	e.mu.Unlock()
	return nil
}

// attnInput records, for rows [c, c+m) of the prompt (positions q0+c …):
//
//	xn = RMSNorm(x)·w_attn
//	q = xn·Wqᵀ + bq,  k = xn·Wkᵀ + bk,  v = xn·Wvᵀ + bv
//	q, k = RoPE(q), RoPE(k)
//	K[q0+c …], V[q0+c …] = k, v   (the layer's f16 KV cache)
//
// With the projections stacked (stackQKV) the three products are one
// matmul and the last two lines one kernels.RopeQKV; otherwise they are
// three matmuls and one kernels.RopeKV.
func (e *Engine) attnInput(r *runtime.Recorder, ld *layerDev, c, m, q0 int) error {
	cfg := e.cfg
	h, qd, kv := cfg.HiddenSize, cfg.QDim(), cfg.KVDim()
	x, xn := view(e.x, c*h, m, h), view(e.xn, 0, m, h)
	q, k, v := view(e.q, c*qd, m, qd), view(e.kt, 0, m, kv), view(e.vt, 0, m, kv)
	o := e.ops(r)
	o.rmsNorm(xn, x, ld.attnNorm, float32(cfg.RMSNormEps))
	if ld.wqkv != nil && !e.dev.Tuning().PrefillQKVSeparate {
		// One matmul with the stacked projections into the (free) gate
		// buffer, then the rotations and the append from it.
		qkv := view(e.gate, 0, m, qd+2*kv)
		o.matMul(qkv, xn, ld.wqkv, ld.bqkv)
		o.do(func() error {
			return kernels.RopeQKV(r, q, qkv, e.invFreq, ld.kCache, ld.vCache, e.zeroPos, cfg.NumHeads, cfg.NumKVHeads, q0+c)
		})
		return o.err
	}
	o.matMul(q, xn, ld.wq, ld.bq)
	o.matMul(k, xn, ld.wk, ld.bk)
	o.matMul(v, xn, ld.wv, ld.bv)
	// RoPE of q in place, RoPE of k into the K cache and v into the V
	// cache, in one dispatch (the same bits as Rope and two copies).
	o.do(func() error {
		return kernels.RopeKV(r, q, k, v, e.invFreq, ld.kCache, ld.vCache, e.zeroPos, cfg.NumHeads, cfg.NumKVHeads, q0+c)
	})
	return o.err
}

// attnOutputAndMLP records, for rows [c, c+m), given the attention output
// a of the layer:
//
//	x += a·Woᵀ + bo
//	xn = RMSNorm(x)·w_mlp
//	x += (SiLU(xn·Wgᵀ) ⊙ xn·Wuᵀ)·Wdᵀ
//
// The two residual adds are folded into the o- and down-projections'
// epilogues (kernels.MatMulAdd) for more than kernels.GEMVMaxM rows. So is
// SwiGLU into one matmul with the stacked gate and up projections
// (stackGateUp, kernels.MatMulSwiGLU) unless Tuning.PrefillMLPSeparate is
// set or the device's plain matmul takes a kernel without a GLU mode
// (kernels.MatMulSwiGLUPreferred); otherwise the gate and up products go
// through the gate and up buffers.
func (e *Engine) attnOutputAndMLP(r *runtime.Recorder, ld *layerDev, c, m int) error {
	cfg := e.cfg
	h, qd, f := cfg.HiddenSize, cfg.QDim(), cfg.IntermediateSize
	x, a := view(e.x, c*h, m, h), view(e.o, c*qd, m, qd)
	tmp, xn := view(e.tmp, 0, m, h), view(e.xn, 0, m, h)
	act := view(e.act, 0, m, f)
	o := e.ops(r)
	o.matMulAdd(x, a, ld.wo, ld.bo, tmp)
	o.rmsNorm(xn, x, ld.mlpNorm, float32(cfg.RMSNormEps))
	if ld.wgu != nil && m > kernels.GEMVMaxM && !e.dev.Tuning().PrefillMLPSeparate && kernels.MatMulSwiGLUPreferred(e.dev, m, f, h) {
		o.do(func() error { return kernels.MatMulSwiGLU(r, act, xn, ld.wgu) })
	} else {
		gate, up := view(e.gate, 0, m, f), view(e.up, 0, m, f)
		o.matMul(gate, xn, ld.wg, nil)
		o.matMul(up, xn, ld.wu, nil)
		o.swiGLU(act, gate, up)
	}
	o.matMulAdd(x, act, ld.wd, nil, tmp)
	return o.err
}

// recordLogits records final-norm + lm_head for rows [c, c+m) of the
// residual stream into e.logits (the rows need not be chunk-aligned).
func (e *Engine) recordLogits(r *runtime.Recorder, c, m int) error {
	cfg := e.cfg
	h, v := cfg.HiddenSize, cfg.VocabSize
	lx := view(e.lastX, 0, m, h)
	if err := r.CopyBytes(lx, 0, e.x, uint64(c*h*4), uint64(m*h*4)); err != nil {
		return err
	}
	normed := view(e.tmp, 0, m, h)
	if err := kernels.RMSNorm(r, normed, lx, e.finalNorm, float32(cfg.RMSNormEps)); err != nil {
		return err
	}
	return e.lmHeadMatMul(r, view(e.logits, 0, m, v), normed)
}

// Decode appends one token and returns the logits for the next position.
func (e *Engine) Decode(ctx context.Context, token int) ([]float32, error) {
	return e.Prefill(ctx, []int{token})
}

// NLL returns the mean negative log-likelihood (natural log) of tokens[1:]
// given their prefixes, from one prefill of tokens starting at an empty cache.
func (e *Engine) NLL(ctx context.Context, tokens []int) (float64, error) {
	if len(tokens) < 2 {
		return 0, fmt.Errorf("nll: need at least 2 tokens")
	}
	if err := e.Reset(); err != nil {
		return 0, err
	}
	var sum float64
	err := e.PrefillAll(ctx, tokens, func(pos int, logits []float32) {
		if pos+1 >= len(tokens) {
			return
		}
		sum -= LogProb(logits, tokens[pos+1])
	})
	if err != nil {
		return 0, err
	}
	return sum / float64(len(tokens)-1), nil
}

// LogProb is the natural-log probability of token t under softmax(logits),
// computed in float64 with the maximum subtracted.
func LogProb(logits []float32, t int) float64 {
	mx := math.Inf(-1)
	for _, x := range logits {
		mx = math.Max(mx, float64(x))
	}
	var s float64
	for _, x := range logits {
		s += math.Exp(float64(x) - mx)
	}
	return float64(logits[t]) - mx - math.Log(s)
}
