package model

import (
	"context"
	"fmt"
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
	PromptTokens    int
	Prefill         time.Duration // prompt processing, until its logits are ready
	FirstToken      time.Duration // from the start of the call to the first sampled token
	GeneratedTokens int
	Decode          time.Duration // time spent in decode steps after the first token
	StoppedByStop   bool
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

// Generate prefills prompt after the tokens already in the cache and then
// samples up to opts.MaxTokens tokens, calling emit for each (emit may
// return an error to stop). Cancelling ctx stops between steps.
func (e *Engine) Generate(ctx context.Context, prompt []int, opts SampleOptions, emit func(id int) error) (GenStats, error) {
	var st GenStats
	if opts.MaxTokens == 0 {
		opts.MaxTokens = 256
	}
	if opts.MaxTokens < 0 {
		return st, fmt.Errorf("generate: max tokens %d is negative", opts.MaxTokens)
	}
	if len(prompt) == 0 {
		return st, fmt.Errorf("generate: empty prompt")
	}
	// Hold the engine for the whole generation: another call between two
	// decode steps would append to the KV cache and overwrite the logits.
	if err := e.acquire(); err != nil {
		return st, err
	}
	defer e.release()
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	start := time.Now()
	st.PromptTokens = len(prompt)
	if err := e.prefillLocked(ctx, prompt, deviceLogits, nil); err != nil {
		return st, err
	}
	st.Prefill = time.Since(start)
	var decodeStart time.Time
	for i := 0; i < opts.MaxTokens; i++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		tok, err := e.sample(opts, rng)
		if err != nil {
			return st, err
		}
		if i == 0 {
			st.FirstToken = time.Since(start)
			decodeStart = time.Now()
		}
		if slices.Contains(opts.StopIDs, tok) {
			st.StoppedByStop = true
			break
		}
		st.GeneratedTokens++
		if err := emit(tok); err != nil {
			return st, err
		}
		if i == opts.MaxTokens-1 {
			break
		}
		if e.pos >= e.opts.Context {
			return st, fmt.Errorf("generate: %w after %d tokens (context %d)", ErrContextFull, e.pos, e.opts.Context)
		}
		if err := e.prefillLocked(ctx, []int{tok}, deviceLogits, nil); err != nil {
			return st, err
		}
	}
	if !decodeStart.IsZero() {
		st.Decode = time.Since(decodeStart)
	}
	return st, nil
}

// sample picks the next token from the logits on the device.
func (e *Engine) sample(opts SampleOptions, rng *rand.Rand) (int, error) {
	v := e.cfg.VocabSize
	lg := view(e.logits, 0, 1, v)
	if opts.Temperature <= 0 {
		idx := view(e.argmax, 0, 1)
		if err := e.dev.Run(func(r *runtime.Recorder) error { return kernels.Argmax(r, idx, lg) }); err != nil {
			return 0, err
		}
		out, err := idx.DownloadI32()
		if err != nil {
			return 0, err
		}
		return int(out[0]), nil
	}
	k := min(kernels.DefaultTopK, v)
	vals, err := e.dev.NewTensor(runtime.F32, 1, k)
	if err != nil {
		return 0, err
	}
	defer vals.Free()
	idx, err := e.dev.NewTensor(runtime.I32, 1, k)
	if err != nil {
		return 0, err
	}
	defer idx.Free()
	if err := e.dev.Run(func(r *runtime.Recorder) error { return kernels.TopK(r, vals, idx, lg, k) }); err != nil {
		return 0, err
	}
	vs, err := vals.DownloadF32()
	if err != nil {
		return 0, err
	}
	is, err := idx.DownloadI32()
	if err != nil {
		return 0, err
	}
	return kernels.SampleTopP(vs, is, opts.Temperature, opts.TopP, rng), nil
}
