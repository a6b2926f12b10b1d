package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// SampleOptions configures Generate.
type SampleOptions struct {
	// MaxTokens is the most tokens to generate (default 256).
	MaxTokens int
	// Temperature 0 means greedy decoding (argmax on the GPU); otherwise the
	// top-k candidates (k = kernels.DefaultTopK, selected on the GPU) are
	// sampled with this temperature and nucleus TopP on the host.
	Temperature float64
	// TopP is the nucleus mass (0 or 1: no nucleus cut).
	TopP float64
	// Seed seeds the sampler (the same seed gives the same text).
	Seed uint64
	// StopIDs end generation when sampled (the stop token is not emitted).
	StopIDs []int
}

// GenStats describes one Generate call.
type GenStats struct {
	PromptTokens int
	// Prefill is the prompt processing, until the first token is sampled
	// (sampling runs in the same GPU batch as the prompt's last layer).
	Prefill         time.Duration
	FirstToken      time.Duration // from the start of the call to the first sampled token
	GeneratedTokens int
	Decode          time.Duration // time spent in decode steps after the first token
	// StoppedByStop is set when a stop token ended generation.
	StoppedByStop bool
	// StoppedByContext is set when the KV cache filled up: generation ends
	// there normally (not an error), with the tokens generated so far.
	StoppedByContext bool
	// Counters are the submissions and host waits of the call.
	Counters runtime.Counters
}

// PrefillTokensPerSecond is the prompt processing rate.
func (s GenStats) PrefillTokensPerSecond() float64 {
	if s.Prefill <= 0 {
		return 0
	}
	return float64(s.PromptTokens) / s.Prefill.Seconds()
}

// DecodeTokensPerSecond is the generation rate after the first token.
func (s GenStats) DecodeTokensPerSecond() float64 {
	if s.Decode <= 0 || s.GeneratedTokens < 2 {
		return 0
	}
	return float64(s.GeneratedTokens-1) / s.Decode.Seconds()
}

// Validate checks the options: MaxTokens ≥ 0, Temperature finite and ≥ 0,
// TopP in [0, 1].
func (o SampleOptions) Validate() error {
	switch {
	case o.MaxTokens < 0:
		return fmt.Errorf("generate: max tokens %d is negative", o.MaxTokens)
	case math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0) || o.Temperature < 0:
		return fmt.Errorf("generate: temperature %v must be a finite number ≥ 0", o.Temperature)
	case math.IsNaN(o.TopP) || o.TopP < 0 || o.TopP > 1:
		return fmt.Errorf("generate: top-p %v must be in [0, 1]", o.TopP)
	}
	return nil
}

// Generate prefills prompt after the tokens already in the cache and then
// samples up to opts.MaxTokens tokens, calling emit for each (emit may
// return an error to stop). Each step is one GPU batch that ends with the
// sampler and one host wait that reads back the sampled token (greedy) or
// the top-k candidates. Cancelling ctx (or Close) stops within one GPU wait
// slice. Reaching the end of the context stops generation normally
// (GenStats.StoppedByContext).
func (e *Engine) Generate(ctx context.Context, prompt []int, opts SampleOptions, emit func(id int) error) (st GenStats, err error) {
	if opts.MaxTokens == 0 {
		opts.MaxTokens = 256
	}
	if err := opts.Validate(); err != nil {
		return st, err
	}
	if len(prompt) == 0 {
		return st, fmt.Errorf("generate: empty prompt")
	}
	// Hold the engine for the whole generation: another call between two
	// decode steps would append to the KV cache and overwrite the logits.
	ctx, release, err := e.acquire(ctx)
	if err != nil {
		return st, err
	}
	defer release()
	// The deferred functions below set fields of the named result.
	c0 := e.dev.Counters()
	defer func() { st.Counters = e.dev.Counters().Sub(c0) }()
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	start := time.Now()
	st.PromptTokens = len(prompt)
	tok, err := e.step(ctx, prompt, opts, rng)
	if err != nil {
		return st, err
	}
	st.Prefill = time.Since(start)
	st.FirstToken = st.Prefill
	decodeStart := time.Now()
	defer func() { st.Decode = time.Since(decodeStart) }()
	// The next token: one step at a time, or greedy with two in flight.
	next := func(tok int) (int, error) { return e.step(ctx, []int{tok}, opts, rng) }
	if opts.Temperature <= 0 && !e.opts.SyncDecode && !e.opts.FreshDecode {
		chain := e.newDecodeChain(opts.MaxTokens)
		next = func(int) (int, error) { return chain.step(ctx) }
	}
	for i := 0; ; i++ {
		if slices.Contains(opts.StopIDs, tok) {
			st.StoppedByStop = true
			return st, nil
		}
		st.GeneratedTokens++
		if err := emit(tok); err != nil {
			return st, err
		}
		if i == opts.MaxTokens-1 {
			return st, nil
		}
		if e.Pos() >= e.opts.Context {
			st.StoppedByContext = true
			return st, nil
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if tok, err = next(tok); err != nil {
			return st, err
		}
	}
}

// step runs tokens through the model and samples the next token on the
// GPU, in one batch.
func (e *Engine) step(ctx context.Context, tokens []int, opts SampleOptions, rng *rand.Rand) (int, error) {
	k := e.topIdx.Len()
	greedy := opts.Temperature <= 0
	s := topKSampler
	if greedy {
		s = argmaxSampler
	}
	if err := e.prefillLocked(ctx, tokens, deviceLogits, nil, s); err != nil {
		return 0, err
	}
	ids := e.sampleHost.Int32s(2 * k)
	if greedy {
		return int(ids[0]), nil
	}
	vals := e.sampleHost.Float32s(2 * k)[k:]
	return kernels.SampleTopP(vals, ids[:k], opts.Temperature, opts.TopP, rng), nil
}
