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
// A Model is not safe for concurrent use: Generate calls on one Model must
// not overlap (an overlapping call gets model.ErrBusy). Use one Model per
// goroutine, or serialise calls.
package shareprefill

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// EmbeddedModel is the name Options.Model accepts for the built-in model.
const EmbeddedModel = "stories260k"

// Options configures Open.
type Options struct {
	// Model is a directory with config.json, *.safetensors and
	// tokenizer.json (Hugging Face layout). Empty or EmbeddedModel selects
	// the embedded stories260K.
	Model string
	// Device is a device index or name substring (default: SHAREPREFILL_DEVICE
	// or the best GPU).
	Device string
	// Runtime holds further device options (Device above wins).
	Runtime runtime.Options
	// Context is the KV-cache length in tokens (default: the model's
	// context, capped at 8192).
	Context int
	// Attention selects prefill attention: "dense" (default), "vs"
	// (MInference vertical-slash), "flex" (FlexPrefill) or "share"
	// (SharePrefill).
	Attention string
	// Clusters is a SharePrefill cluster file (for Attention "share").
	Clusters string
	// Preset is the SharePrefill preset: "paper" (default) or "release".
	Preset string
	// Progress, if set, reports loading and long prefills.
	Progress func(stage string, done, total int)
	// Logf, if set, receives one-line notes.
	Logf func(format string, args ...any)
}

// Model is a loaded model on a device.
type Model struct {
	Dev     *runtime.Device
	Engine  *model.Engine
	Tok     *tokenizer.Tokenizer
	Config  *model.Config
	Name    string
	attn    attentionStats
	ownsDev bool
}

// attentionStats is implemented by sparse attention backends.
type attentionStats interface {
	Summary() string
	JSON() ([]byte, error)
}

// Open opens the device and loads the model.
func Open(ctx context.Context, opts Options) (*Model, error) {
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
			return nil, fmt.Errorf("model %s: not a directory (want a Hugging Face model directory with config.json)", name)
		}
		fsys, dir = os.DirFS(name), "."
	}
	cfg, err := model.LoadConfigFS(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	tok, err := loadTokenizer(fsys, name)
	if err != nil {
		return nil, err
	}
	ck, err := model.OpenCheckpointFS(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	defer ck.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	eng, err := model.NewEngine(dev, cfg, ck, model.EngineOptions{Context: opts.Context, Progress: opts.Progress})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m := &Model{Dev: dev, Engine: eng, Tok: tok, Config: cfg, Name: name}
	if err := m.setAttention(opts); err != nil {
		eng.Close()
		return nil, err
	}
	return m, nil
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

// Close releases the model (and the device, when Open created it).
func (m *Model) Close() {
	if m.Engine != nil {
		m.Engine.Close()
		m.Engine = nil
	}
	if m.ownsDev && m.Dev != nil {
		m.Dev.Close()
		m.Dev = nil
	}
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
		p, err := m.Tok.ChatPrompt(system, prompt)
		if err != nil {
			return nil, fmt.Errorf("--chat: %w", err)
		}
		return m.Tok.Encode(p, false), nil
	}
	return m.Tok.Encode(prompt, true), nil
}

// Generate tokenizes prompt, prefills it and streams generated text to
// onText (whole UTF-8 characters only). It stops at EOS (or the chat
// turn's end), after MaxTokens, when onText returns an error, or when ctx is
// cancelled. A prompt longer than the context is an error.
func (m *Model) Generate(ctx context.Context, prompt string, opts GenerateOptions, onText func(string) error) (Stats, error) {
	ids, err := m.Encode(prompt, opts.Chat, opts.System)
	if err != nil {
		return Stats{}, err
	}
	if len(ids) == 0 {
		return Stats{}, fmt.Errorf("the prompt is empty")
	}
	if !opts.KeepCache {
		if err := m.Engine.TryReset(); err != nil { // ErrBusy: never reset under a running call
			return Stats{}, err
		}
	}
	if room := m.Engine.Context() - m.Engine.Pos(); len(ids) > room {
		return Stats{}, fmt.Errorf("%w: the prompt has %d tokens but only %d fit (context %d); shorten it or raise --context (the model allows %d)",
			model.ErrContextFull, len(ids), room, m.Engine.Context(), m.Config.MaxPositionEmbeddings)
	}
	stops := []int{}
	if eos := m.Tok.EOS(); eos >= 0 {
		stops = append(stops, eos)
	}
	if opts.Chat {
		stops = append(stops, m.Tok.ChatStopIDs()...)
	}
	stops = append(stops, m.Config.EOSTokenIDs...)
	sd := m.Tok.NewStreamDecoder()
	st, err := m.Engine.Generate(ctx, ids, model.SampleOptions{
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
	if m.attn != nil {
		out.Attention = m.attn.Summary()
	}
	return out, err
}

// AttentionJSON returns the sparse-attention statistics of the last prefill
// as JSON (nil for dense attention).
func (m *Model) AttentionJSON() ([]byte, error) {
	if m.attn == nil {
		return nil, nil
	}
	return m.attn.JSON()
}

func (m *Model) setAttention(opts Options) error {
	kind := strings.ToLower(opts.Attention)
	switch kind {
	case "", "dense":
		if opts.Clusters != "" {
			return fmt.Errorf("--clusters needs --attn share")
		}
		return nil
	}
	a, st, err := newSparseAttention(kind, opts, m.Config)
	if err != nil {
		return err
	}
	m.Engine.SetAttention(a)
	m.attn = st
	return nil
}
