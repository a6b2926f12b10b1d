package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

const defaultPrompt = "Once upon a time"

// stdin is the prompt source when neither --prompt nor --prompt-file is
// given; tests replace it.
var stdin io.Reader = os.Stdin

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	modelDir := fs.String("model", "", "Hugging Face model directory (default: the embedded stories260K)")
	prompt := fs.String("prompt", "", "prompt text (default: --prompt-file, else stdin when piped, else \""+defaultPrompt+"\")")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
	maxTokens := fs.Int("max-tokens", 256, "most tokens to generate")
	temp := fs.Float64("temp", 0.8, "sampling temperature (0: greedy)")
	topP := fs.Float64("top-p", 0.9, "nucleus sampling mass (1: off)")
	seed := fs.Uint64("seed", 42, "sampling seed (the same seed gives the same text)")
	attn := fs.String("attn", "dense", "prefill attention: dense, vs, flex or share")
	clusters := fs.String("clusters", "", "SharePrefill cluster file (--attn share)")
	preset := fs.String("preset", "paper", "SharePrefill preset: paper or release")
	device := fs.String("device", "", "Vulkan device index or name (default: SHAREPREFILL_DEVICE or the best GPU)")
	ctxLen := fs.Int("context", 0, "context length in tokens (default: the model's, capped at 8192)")
	chat := fs.Bool("chat", false, "wrap the prompt in the model's chat format (Llama 3 or ChatML)")
	system := fs.String("system", "", "system message for --chat")
	statsJSON := fs.String("stats-json", "", "write sparse-attention statistics of the prefill to this file")
	quiet := fs.Bool("quiet", false, "no summary on stderr")
	profile := fs.String("profile", "", "write a Chrome trace of the call (GPU time of every dispatch, host submits and waits) to this file and print a profile on stderr")
	allowNonFinite := fs.Bool("allow-nonfinite", false, "load weights holding NaN, ±Inf or values beyond f16's range (default: an error naming the tensor)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *maxTokens < 0 {
		return usageError{fmt.Sprintf("--max-tokens %d must not be negative", *maxTokens)}
	}
	if *temp < 0 {
		return usageError{fmt.Sprintf("--temp %v must not be negative", *temp)}
	}
	if *topP < 0 || *topP > 1 {
		return usageError{fmt.Sprintf("--top-p %v must be in [0, 1]", *topP)}
	}
	if *prompt != "" && *promptFile != "" {
		return usageError{"give --prompt or --prompt-file, not both"}
	}
	text := *prompt
	switch {
	case *promptFile != "":
		b, err := os.ReadFile(*promptFile)
		if err != nil {
			return fmt.Errorf("--prompt-file: %w", err)
		}
		text = string(b)
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("--prompt-file %s is empty", *promptFile)
		}
	case text == "" && !isTerminal(stdinFile()):
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("reading the prompt from stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if text == "" {
		text = defaultPrompt
	}

	if *profile != "" {
		if err := checkOutputFile(*profile); err != nil {
			return usageError{fmt.Sprintf("--profile: %v", err)}
		}
	}
	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	bar := newProgressBar(stderr)
	m, err := shareprefill.Open(ctx, shareprefill.Options{
		Model: *modelDir, Device: *device, Context: *ctxLen,
		Attention: *attn, Clusters: *clusters, Preset: *preset,
		Progress: bar.update, AllowNonFinite: *allowNonFinite,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "note: "+format+"\n", args...) },
		// The device's own notes (which GPU, which switches) stay quiet.
		Runtime: runtime.Options{Logf: func(string, ...any) {}},
	})
	bar.clear()
	if err != nil {
		return err
	}
	defer m.Close()

	if !*chat {
		fmt.Fprint(stdout, text)
	}
	var trace *runtime.Trace
	if *profile != "" {
		trace = runtime.NewTrace()
	}
	st, err := m.Generate(ctx, text, shareprefill.GenerateOptions{
		MaxTokens: *maxTokens, Temperature: *temp, TopP: *topP, Seed: *seed, Chat: *chat, System: *system,
		Trace: trace,
	}, func(s string) error {
		bar.clear()
		_, err := io.WriteString(stdout, s)
		return err
	})
	fmt.Fprintln(stdout)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted")
		}
		if errors.Is(err, model.ErrContextFull) {
			return fmt.Errorf("%w (--context sets the context length)", err)
		}
		return err
	}
	if trace != nil {
		if err := writeTrace(*profile, trace, stderr); err != nil {
			return err
		}
	}
	if *statsJSON != "" {
		b, err := m.AttentionJSON()
		if err != nil {
			return err
		}
		if b == nil {
			b = []byte(`{"attention":"dense"}` + "\n")
		}
		if err := os.WriteFile(*statsJSON, b, 0o644); err != nil {
			return fmt.Errorf("--stats-json: %w", err)
		}
	}
	if !*quiet {
		attnLine := st.Attention
		if attnLine == "" {
			attnLine = "dense (every causal block, density 1.00)"
		}
		fmt.Fprintf(stderr, "model %s on %s\n", m.Name, m.Dev.Info().Name)
		fmt.Fprintf(stderr, "prompt %d tokens · prefill %s (%.0f tok/s) · first token after %s\n",
			st.PromptTokens, st.Prefill.Round(10e3), st.PrefillTokensPerSecond(), st.FirstToken.Round(10e3))
		fmt.Fprintf(stderr, "generated %d tokens · decode %.1f tok/s\n", st.GeneratedTokens, st.DecodeTokensPerSecond())
		if st.StoppedByContext {
			fmt.Fprintf(stderr, "stopped: the context of %d tokens is full (--context sets it)\n", m.Engine.Context())
		}
		fmt.Fprintf(stderr, "attention: %s\n", attnLine)
	}
	return nil
}

// stdinFile returns stdin as a writer-compatible value for isTerminal.
func stdinFile() io.Writer {
	if f, ok := stdin.(*os.File); ok {
		return f
	}
	return io.Discard
}

// interruptible returns a context cancelled by the first interrupt (Ctrl-C),
// which also prints a note on stderr; a second interrupt calls exit(130) at
// once, without waiting for the GPU work in flight. stop releases the signal.
func interruptible(parent context.Context, stderr io.Writer, exit func(int)) (context.Context, func()) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt)
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go watchInterrupts(sig, done, cancel, stderr, exit)
	return ctx, func() {
		signal.Stop(sig)
		close(done)
		cancel()
	}
}

// watchInterrupts is the loop of interruptible: it reads sig until done.
func watchInterrupts(sig <-chan os.Signal, done <-chan struct{}, cancel func(), stderr io.Writer, exit func(int)) {
	n := 0
	for {
		select {
		case <-done:
			return
		case <-sig:
			n++
			if n == 1 {
				cancel()
				fmt.Fprintln(stderr, "\ninterrupted: stopping (Ctrl-C again to quit at once)")
				continue
			}
			exit(130)
			return
		}
	}
}

// checkOutputFile checks, before any work, that path can be written as a
// file: its directory exists and it is not a directory itself.
func checkOutputFile(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	return nil
}

// writeTrace writes t as a Chrome trace to path and prints its summary.
func writeTrace(path string, t *runtime.Trace, w io.Writer) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	if err := t.WriteChrome(f); err != nil {
		f.Close()
		return fmt.Errorf("--profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	printProfile(w, t.Summary(kernels.Category))
	fmt.Fprintf(w, "profile: trace written to %s (open it in chrome://tracing or ui.perfetto.dev)\n", path)
	return nil
}

// printProfile prints a trace summary in a few lines.
func printProfile(w io.Writer, s runtime.TraceSummary) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	fmt.Fprintf(w, "profile: wall %s · %d submits · %d host waits (%s)\n", ms(s.Wall), s.Submits, s.Waits, ms(s.HostWait))
	if !s.HasGPU {
		fmt.Fprintln(w, "profile: the device has no timestamps: no GPU times")
		return
	}
	busy := 0.0
	if s.Wall > 0 {
		busy = 100 * float64(s.GPUBusy) / float64(s.Wall)
	}
	fmt.Fprintf(w, "profile: GPU busy %s (%.0f%% of wall) · GPU idle between commands %s · %d commands\n", ms(s.GPUBusy), busy, ms(s.GPUIdle), s.Commands)
	cats := make([]string, 0, len(s.ByCategory))
	for c := range s.ByCategory {
		cats = append(cats, c)
	}
	sort.Slice(cats, func(i, j int) bool { return s.ByCategory[cats[i]] > s.ByCategory[cats[j]] })
	parts := make([]string, len(cats))
	for i, c := range cats {
		parts[i] = c + " " + ms(s.ByCategory[c])
	}
	fmt.Fprintf(w, "profile: GPU time by kind: %s\n", strings.Join(parts, " · "))
}
