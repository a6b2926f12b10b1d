package shareprefill

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	sgpu "github.com/shareprefill/shareprefill/share/gpu"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// Tokenizer returns the model's tokenizer. It may be called at any time,
// also after Close.
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// Config returns a copy of the model's configuration. It may be called at
// any time, also after Close.
func (m *Model) Config() model.Config {
	c := *m.cfg
	c.EOSTokenIDs = slices.Clone(c.EOSTokenIDs)
	if c.RopeScaling != nil {
		rs := *c.RopeScaling
		c.RopeScaling = &rs
	}
	return c
}

// Device returns the device the model runs on. It may be called at any
// time; after Close, a device that Open created is closed too.
func (m *Model) Device() *runtime.Device { return m.dev }

// Context returns the length of the KV cache in tokens. It may be called at
// any time.
func (m *Model) Context() int { return m.eng.Context() }

// MemoryPlan returns the device memory the model was planned to take, with
// its weights by the type they are stored in (f16, or a quantized type for
// the matrices of a quantized GGUF file or of Options.Quantize). It may be
// called at any time.
func (m *Model) MemoryPlan() model.MemoryPlan { return m.eng.MemoryPlan() }

// Pos returns the number of tokens in the KV cache. It may be called at any
// time; during a call it changes when a prefill or decode step completes.
func (m *Model) Pos() int { return m.eng.Pos() }

// Reset empties the KV cache: the next Prefill starts at position 0.
func (m *Model) Reset() error {
	_, end, err := m.begin(context.Background())
	if err != nil {
		return err
	}
	defer end()
	return m.eng.Reset()
}

// Prefill appends ids to the KV cache and returns the logits of the last
// position (a new slice of Config().VocabSize values). One id after a
// prompt is a decode step. Ids that do not fit the free context are an
// error wrapping model.ErrContextFull, returned before any work; an id
// outside the vocabulary is an error naming it. Cancelling ctx, or Close,
// stops the prefill between layers and leaves the KV cache as it was.
// AttentionJSON then describes this prefill (a decode step keeps the
// statistics of the prompt before it).
func (m *Model) Prefill(ctx context.Context, ids []int) ([]float32, error) {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	logits, err := m.eng.Prefill(ctx, ids)
	m.markStale()
	return logits, err
}

// PrefillAll is Prefill that passes the logits of every position to fn, in
// order (pos counts from the first of ids; the slice is reused after fn
// returns).
func (m *Model) PrefillAll(ctx context.Context, ids []int, fn func(pos int, logits []float32)) error {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	err = m.eng.PrefillAll(ctx, ids, fn)
	m.markStale()
	return err
}

// NLL empties the KV cache, prefills ids and returns the mean negative
// log-likelihood (natural log) of ids[1:], each given the ids before it;
// exp(NLL) is the perplexity. It needs at least 2 ids.
func (m *Model) NLL(ctx context.Context, ids []int) (float64, error) {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	nll, err := m.eng.NLL(ctx, ids)
	m.markStale()
	return nll, err
}

// GenerateTokens is Generate on token ids: it prefills ids after the tokens
// already in the KV cache (call Reset first for a new sequence) and samples
// up to opts.MaxTokens ids, passing each to onToken. It stops at the ids of
// opts.StopIDs only (none by default: Generate's stop tokens are not
// added), at the end of the context (Stats.StoppedByContext), when onToken
// returns an error, or when ctx is cancelled or Close is called.
func (m *Model) GenerateTokens(ctx context.Context, ids []int, opts model.SampleOptions, onToken func(id int) error) (Stats, error) {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return Stats{}, err
	}
	defer end()
	st, err := m.eng.Generate(ctx, ids, opts, onToken)
	return Stats{GenStats: st, Attention: m.snapshotAttention()}, err
}

// SetTrace makes later calls log into t (nil: stop): host submissions and
// waits, and the GPU time of every dispatch (see runtime.Trace).
// GenerateOptions.Trace traces one Generate call instead.
func (m *Model) SetTrace(t *runtime.Trace) error {
	_, end, err := m.begin(context.Background())
	if err != nil {
		return err
	}
	defer end()
	return m.eng.SetTrace(t)
}

// SetAttention replaces the prefill attention of later calls with a (nil:
// dense attention), for tools that compute attention their own way: the
// calibrator collects exact attention maps, the viewer records every
// planned block. The sparse attention that Options.Attention selected is
// closed. Close closes a if it has a Close method, unless a later
// SetAttention replaced it (a replaced attention is the caller's again).
// AttentionJSON and AttentionSummary report a's statistics when a is a
// *share/gpu.Attention, and nothing otherwise. A nil pointer in a non-nil
// interface is an error.
func (m *Model) SetAttention(a model.Attention) error {
	if a != nil {
		if v := reflect.ValueOf(a); v.Kind() == reflect.Pointer && v.IsNil() {
			return fmt.Errorf("set attention: a nil %T (pass nil for dense attention)", a)
		}
	}
	_, end, err := m.begin(context.Background())
	if err != nil {
		return err
	}
	defer end()
	if err := m.useAttention(a); err != nil {
		return err
	}
	if m.built != nil {
		m.built.Close()
		m.built = nil
	}
	return nil
}

// useAttention makes a the engine's prefill attention (nil: dense) and
// resets the statistics: those of a, when it is a *share/gpu.Attention.
// The caller holds the call (or, in Load, the only reference to m).
func (m *Model) useAttention(a model.Attention) error {
	if err := m.eng.SetAttention(a); err != nil {
		return err
	}
	var st attentionStats
	if ga, ok := a.(*sgpu.Attention); ok {
		st = sparseStats{ga}
	}
	m.mu.Lock()
	m.attn, m.hasStats, m.last, m.stale = st, st != nil, attentionSnapshot{}, false
	m.mu.Unlock()
	return nil
}
