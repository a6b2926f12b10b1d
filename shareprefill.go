// Package shareprefill is the Go API for applications that embed the
// runtime: open a Vulkan device, load a Llama-family model (the embedded
// stories260K by default), and generate text with streaming callbacks and
// cancellation, optionally with SharePrefill sparse attention for long
// prompts.
//
//	m, err := shareprefill.Open(ctx, shareprefill.Options{})   // embedded model, best GPU
//	if err != nil { ... }
//	defer m.Close()
//	stats, err := m.Generate(ctx, "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 100},
//		func(text string) error { fmt.Print(text); return nil })
//
// Besides Generate, a Model offers the lower-level steps that tools build on:
// Encode and Tokenizer, Prefill, PrefillAll and NLL on token ids, Reset of
// the KV cache, GenerateTokens, and SetAttention, a hook for a prefill
// attention of the application's own (model.Attention).
//
// A Model runs one call at a time: a call that overlaps another gets
// ErrBusy (use one Model per goroutine, or serialise calls). The accessors
// (Tokenizer, Config, Device, Context, Pos, Encode), AttentionJSON,
// AttentionSummary and Close may be called from any goroutine at any time;
// Close cancels the call in flight and waits for it, and every call after
// Close returns ErrClosed.
package shareprefill

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/share"
	sgpu "github.com/shareprefill/shareprefill/share/gpu"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// EmbeddedModel is the name Options.Model accepts for the built-in model.
const EmbeddedModel = "stories260k"

// Options configures Open.
type Options struct {
	// Model is a directory with config.json, *.safetensors and
	// tokenizer.json (Hugging Face layout), or a GGUF file (llama.cpp's
	// format; see model.OpenGGUF: quantized layer and LM-head matrices stay
	// quantized on the device where its kernels run their type, see
	// model.PlanWeights). Empty or EmbeddedModel selects the embedded
	// stories260K.
	Model string
	// Device is a device index or name substring (default: SHAREPREFILL_DEVICE
	// or the best GPU).
	Device string
	// Runtime holds further device options (Device above wins).
	Runtime runtime.Options
	// Context is the KV-cache length in tokens (default: the model's
	// context, capped at 8192).
	Context int
	// Attention selects prefill attention: share.KindDense (the default,
	// also for ""), KindVerticalSlash (MInference), KindFlex (FlexPrefill)
	// or KindShare (SharePrefill). Any letter case is accepted; another
	// value is an error listing the valid ones (share.ParsePlannerKind).
	Attention share.PlannerKind
	// Clusters is a SharePrefill cluster file (Attention KindShare only).
	Clusters string
	// Preset is the planner's share.Preset spec: "paper" (the default) or
	// "release", optionally with knob overrides; "flex" is the default of
	// KindFlex.
	Preset string
	// Progress, if set, reports loading and long prefills.
	Progress func(stage string, done, total int)
	// Logf, if set, receives one-line notes.
	Logf func(format string, args ...any)
	// AllowNonFinite loads weights that hold NaN or ±Inf or overflow f16
	// (by default such a model is an error naming the tensor).
	AllowNonFinite bool
	// Quantize quantizes the floating-point (f32, f16, bf16) projection
	// matrices and LM head at load: "q8_0", or "none" (also ""), which
	// stores them as f16. Another value is an error listing these, before
	// the device or the model is opened.
	Quantize string
}

// ErrBusy is returned by a call that overlaps another call on the same Model.
var ErrBusy = model.ErrBusy

// ErrClosed is returned by every call after Close.
var ErrClosed = model.ErrClosed

// Model is a loaded model on a device: the handle through which an
// application runs it. Its methods follow the lifecycle of the package
// documentation: one call at a time (ErrBusy), ErrClosed after Close, and
// Close cancels the call in flight.
type Model struct {
	// Name is the model directory as given to Open or Load, or
	// EmbeddedModel.
	Name string

	dev     *runtime.Device
	eng     *model.Engine
	tok     *tokenizer.Tokenizer
	cfg     *model.Config
	ownsDev bool

	// call is held by the call in flight, which alone uses the fields up to
	// mu.
	call  sync.Mutex
	built *sgpu.Attention // the prefill attention Options.Attention made, while in use
	attn  attentionStats  // the statistics of the prefill attention (nil: none)

	// mu guards the fields below; attn is written under both locks.
	mu       sync.Mutex
	closed   bool
	cancel   context.CancelFunc
	hasStats bool              // attn != nil
	last     attentionSnapshot // of the last call that refreshed it
	// stale is set by a call whose statistics last does not hold yet: the
	// next call, AttentionJSON or Close records them (off the timed path
	// of Prefill).
	stale bool
}

// attentionSnapshot is the attention statistics of the last completed call.
type attentionSnapshot struct {
	summary string
	json    []byte
}

// attentionStats is implemented by sparse attention backends.
type attentionStats interface {
	Summary() string
	JSON() ([]byte, error)
}

// Open opens the device and loads the model.
func Open(ctx context.Context, opts Options) (*Model, error) {
	if _, err := model.ParseQuantization(opts.Quantize); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	ro := opts.Runtime
	if opts.Device != "" {
		ro.Device = opts.Device
	}
	if ro.Logf == nil {
		ro.Logf = opts.Logf
	}
	dev, err := runtime.Open(ro)
	if err != nil {
		return nil, err
	}
	m, err := Load(ctx, dev, opts)
	if err != nil {
		dev.Close()
		return nil, err
	}
	m.ownsDev = true
	return m, nil
}

// Load loads the model onto an already open device (for applications that
// manage their own runtime.Device); Close then leaves the device open.
func Load(ctx context.Context, dev *runtime.Device, opts Options) (*Model, error) {
	if _, err := model.ParseQuantization(opts.Quantize); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	var (
		fsys fs.FS
		dir  = "."
		name = opts.Model
	)
	if name == "" || name == EmbeddedModel {
		fsys, name = stories260k.FS(), EmbeddedModel
	} else {
		st, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		if !st.IsDir() {
			if model.IsGGUF(name) {
				return loadGGUF(ctx, dev, opts)
			}
			return nil, fmt.Errorf("model %s: not a directory (want a Hugging Face model directory with config.json, or a .gguf file)", name)
		}
		fsys, dir = regularFS{os.DirFS(name)}, "."
	}
	cfg, err := model.LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	if err := checkContext(opts, cfg, name); err != nil {
		return nil, err
	}
	tok, err := loadTokenizer(fsys, name)
	if err != nil {
		return nil, err
	}
	var ck *model.Checkpoint
	if _, onDisk := fsys.(regularFS); onDisk {
		ck, err = model.OpenCheckpoint(name) // memory-mapped shards
	} else {
		ck, err = model.OpenCheckpointFS(fsys, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	defer ck.Close()
	return start(ctx, dev, opts, name, cfg, tok, ck)
}

// checkContext checks Options.Context against the model's trained context.
func checkContext(opts Options, cfg *model.Config, name string) error {
	if opts.Context < 0 {
		return fmt.Errorf("model %s: context %d must not be negative", name, opts.Context)
	}
	if opts.Context > cfg.MaxPositionEmbeddings && opts.Logf != nil {
		opts.Logf("context %d is longer than the %d positions model %s was trained for: expect poor output past that", opts.Context, cfg.MaxPositionEmbeddings, name)
	}
	return nil
}

// start uploads the model in ck to dev and sets up its attention.
func start(ctx context.Context, dev *runtime.Device, opts Options, name string, cfg *model.Config, tok *tokenizer.Tokenizer, ck *model.Checkpoint) (*Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	eng, err := model.NewEngine(dev, cfg, ck, model.EngineOptions{Context: opts.Context, Progress: opts.Progress,
		AllowNonFinite: opts.AllowNonFinite, Quantize: model.Quantization(opts.Quantize), Logf: opts.Logf})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m := &Model{dev: dev, eng: eng, tok: tok, cfg: cfg, Name: name}
	if err := m.setAttention(opts); err != nil {
		eng.Close()
		return nil, err
	}
	return m, nil
}

// regularFS is an os.DirFS that opens regular files only: a symbolic link
// to /dev/zero would be read forever and a FIFO would block.
type regularFS struct{ fs.FS }

// Open implements fs.FS.
func (r regularFS) Open(name string) (fs.File, error) {
	st, err := fs.Stat(r.FS, name) // follows symbolic links
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() && !st.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
	}
	return r.FS.Open(name)
}

func loadTokenizer(fsys fs.FS, name string) (*tokenizer.Tokenizer, error) {
	data, err := fs.ReadFile(fsys, "tokenizer.json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model %s: no tokenizer.json (the model directory needs the Hugging Face tokenizer file)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	cfg, _ := fs.ReadFile(fsys, "tokenizer_config.json")
	tok, err := tokenizer.FromFiles(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("model %s: %s: %w", name, filepath.Join(name, "tokenizer.json"), err)
	}
	return tok, nil
}

// Close cancels the call in flight, if any, waits for it to return, and
// releases the model (and the device, when Open created it). It may be called
// from any goroutine, and more than once; every call after Close returns
// ErrClosed.
func (m *Model) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.call.Lock() // the call in flight has returned
	defer m.call.Unlock()
	m.mu.Lock()
	if m.stale {
		m.refreshLocked() // while the attention is open
	}
	m.mu.Unlock()
	m.eng.Close() // and the prefill attention
	if m.ownsDev {
		m.dev.Close()
	}
}

// begin starts a call: ErrClosed after Close, ErrBusy while another call
// runs. The context is ctx, also cancelled by Close; end finishes the call.
func (m *Model) begin(ctx context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	if !m.call.TryLock() {
		return nil, nil, ErrBusy
	}
	if m.stale {
		m.refreshLocked()
	}
	cctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	return cctx, func() {
		cancel()
		m.mu.Lock()
		m.cancel = nil
		m.mu.Unlock()
		m.call.Unlock()
	}, nil
}

// GenerateOptions configures Generate.
type GenerateOptions struct {
	MaxTokens   int     // default 256
	Temperature float64 // 0: greedy
	TopP        float64 // nucleus mass; 0 or 1: off
	Seed        uint64
	// Chat wraps the prompt in the model's chat format (Llama 3 or ChatML);
	// an error when the tokenizer has neither.
	Chat   bool
	System string // system message for Chat
	// KeepCache continues after the tokens already in the KV cache instead
	// of starting a new sequence.
	KeepCache bool
	// Trace, if set, logs the call: host submissions and waits, and the GPU
	// time of every dispatch (see runtime.Trace: Summary, WriteChrome).
	Trace *runtime.Trace
}

// Stats describes a Generate call.
type Stats struct {
	model.GenStats
	// Attention is a one-line summary of sparse attention (empty for dense).
	Attention string
}

// Encode tokenizes a prompt the way Generate does.
func (m *Model) Encode(prompt string, chat bool, system string) ([]int, error) {
	if chat {
		p, err := m.tok.ChatPrompt(system, prompt)
		if err != nil {
			return nil, fmt.Errorf("chat format: %w", err)
		}
		return m.tok.Encode(p, false), nil
	}
	return m.tok.Encode(prompt, true), nil
}

// Generate tokenizes prompt, prefills it and streams generated text to
// onText (whole UTF-8 characters only; the first piece keeps the space that
// separates it from the prompt). It stops at EOS (or the chat turn's end),
// after MaxTokens, at the end of the context (Stats.StoppedByContext), when
// onText returns an error, or when ctx is cancelled or Close is called. A
// prompt longer than the free context is an error wrapping
// model.ErrContextFull, returned before any work.
func (m *Model) Generate(ctx context.Context, prompt string, opts GenerateOptions, onText func(string) error) (Stats, error) {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return Stats{}, err
	}
	defer end()
	ids, err := m.Encode(prompt, opts.Chat, opts.System)
	if err != nil {
		return Stats{}, err
	}
	if len(ids) == 0 {
		return Stats{}, fmt.Errorf("the prompt is empty")
	}
	if !opts.KeepCache {
		if err := m.eng.Reset(); err != nil {
			return Stats{}, err
		}
	}
	if err := m.checkFits(len(ids)); err != nil {
		return Stats{}, err
	}
	stops := []int{}
	if eos := m.tok.EOS(); eos >= 0 {
		stops = append(stops, eos)
	}
	if opts.Chat {
		stops = append(stops, m.tok.ChatStopIDs()...)
	}
	stops = append(stops, m.cfg.EOSTokenIDs...)
	// The decoder sees the prompt first, so that the first generated word
	// keeps its leading space (a decoder strips it at the start of a text).
	sd := m.tok.NewStreamDecoder()
	for _, id := range ids {
		sd.Next(id)
	}
	if opts.Trace != nil {
		if err := m.eng.SetTrace(opts.Trace); err != nil {
			return Stats{}, err
		}
		defer m.eng.SetTrace(nil)
	}
	st, err := m.eng.Generate(ctx, ids, model.SampleOptions{
		MaxTokens: opts.MaxTokens, Temperature: opts.Temperature, TopP: opts.TopP, Seed: opts.Seed, StopIDs: stops,
	}, func(id int) error {
		if s := sd.Next(id); s != "" {
			return onText(s)
		}
		return nil
	})
	if rest := sd.Flush(); rest != "" && err == nil {
		err = onText(rest)
	}
	out := Stats{GenStats: st}
	out.Attention = m.snapshotAttention()
	return out, err
}

// checkFits returns an error wrapping model.ErrContextFull when n more tokens
// do not fit the KV cache.
func (m *Model) checkFits(n int) error {
	ctxLen := m.eng.Context()
	room := ctxLen - m.eng.Pos()
	if n <= room {
		return nil
	}
	hint := "shorten it"
	if ctxLen < m.cfg.MaxPositionEmbeddings {
		hint = fmt.Sprintf("shorten it or use a longer context (the model was trained for %d)", m.cfg.MaxPositionEmbeddings)
	}
	return fmt.Errorf("%w: the prompt has %d tokens but only %d fit (context %d); %s",
		model.ErrContextFull, n, room, ctxLen, hint)
}

// snapshotAttention records the sparse-attention statistics of the call that
// just ran (under the call lock) for AttentionJSON and AttentionSummary, and
// returns the summary ("" for dense attention).
func (m *Model) snapshotAttention() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshLocked()
	return m.last.summary
}

// markStale notes, at the end of a call (under the call lock), that its
// statistics are still to be recorded: cheaper than snapshotAttention, whose
// work the next call, AttentionJSON or Close does.
func (m *Model) markStale() {
	m.mu.Lock()
	m.stale = m.hasStats
	m.mu.Unlock()
}

// refreshLocked records the statistics of the attention's last call in
// m.last; the caller holds m.mu and the call lock.
func (m *Model) refreshLocked() {
	m.stale = false
	if m.attn == nil {
		return
	}
	sum := m.attn.Summary()
	js, err := m.attn.JSON()
	if err != nil {
		js = nil
	}
	m.last = attentionSnapshot{summary: sum, json: js}
}

// AttentionJSON returns the sparse-attention statistics of the prefill of the
// last completed call as JSON (nil for dense attention). It may be called at
// any time, also during a call (it then reports the call before).
func (m *Model) AttentionJSON() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.hasStats {
		return nil, nil
	}
	m.refreshIdleLocked()
	if m.last.json == nil {
		return []byte("{}\n"), nil
	}
	return append([]byte(nil), m.last.json...), nil
}

// AttentionSummary is the one-line summary of AttentionJSON ("" for dense
// attention).
func (m *Model) AttentionSummary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshIdleLocked()
	return m.last.summary
}

// refreshIdleLocked records stale statistics when no call is in flight (a
// call in flight has recorded them in begin, or is ending); the caller holds
// m.mu.
func (m *Model) refreshIdleLocked() {
	if m.stale && !m.closed && m.call.TryLock() {
		m.refreshLocked()
		m.call.Unlock()
	}
}

func (m *Model) setAttention(opts Options) error {
	kind := share.KindDense
	if opts.Attention != "" {
		k, err := share.ParsePlannerKind(string(opts.Attention))
		if err != nil {
			return err
		}
		kind = k
	}
	if opts.Clusters != "" && kind != share.KindShare {
		return fmt.Errorf("cluster file %s: needs attention method %s, not %s", opts.Clusters, share.KindShare, kind)
	}
	if kind == share.KindDense {
		return nil
	}
	a, err := newSparseAttention(kind, opts, m.cfg)
	if err != nil {
		return err
	}
	if err := m.useAttention(a); err != nil {
		a.Close()
		return err
	}
	m.built = a
	return nil
}
