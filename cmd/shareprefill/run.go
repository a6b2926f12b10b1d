package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/internal/outpath"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

const defaultPrompt = "Once upon a time"

// stdin is the prompt source when neither --prompt nor --prompt-file is
// given; tests replace it.
var stdin io.Reader = os.Stdin

// runOptions are the parsed and checked flags of `shareprefill run`.
type runOptions struct {
	model, device, attn, clusters, preset string
	kind                                  share.PlannerKind // attn, parsed
	context                               int
	prompt, promptFile                    string
	promptSet                             bool // --prompt was given (even as "")
	gen                                   shareprefill.GenerateOptions
	statsJSON, profile                    string
	force, quiet, allowNonFinite          bool
	quantize                              string
}

// parseRunFlags parses and checks the flags of `shareprefill run` without
// touching a file or a device: it returns the options, a usageError naming
// the flag and its allowed values, or flag.ErrHelp for -h (after printing
// the flags to help).
func parseRunFlags(args []string, help io.Writer) (*runOptions, error) {
	fs := newFlags("run", help)
	o := &runOptions{}
	fs.StringVar(&o.model, "model", "", "Hugging Face model directory or GGUF file (default: the embedded stories260K)")
	fs.StringVar(&o.prompt, "prompt", "", "prompt text, not empty (default: --prompt-file, else stdin when piped, else \""+defaultPrompt+"\")")
	fs.StringVar(&o.promptFile, "prompt-file", "", "read the prompt from this file")
	fs.IntVar(&o.gen.MaxTokens, "max-tokens", 256, "most tokens to generate (≥ 1)")
	fs.Float64Var(&o.gen.Temperature, "temp", 0.8, "sampling temperature, finite and ≥ 0 (0: greedy)")
	fs.Float64Var(&o.gen.TopP, "top-p", 0.9, "nucleus sampling mass, 0 < p ≤ 1 (1: off)")
	fs.Uint64Var(&o.gen.Seed, "seed", 42, "sampling seed (the same seed gives the same text)")
	fs.StringVar(&o.attn, "attn", "dense", "prefill attention: dense, vs, flex or share")
	fs.StringVar(&o.clusters, "clusters", "", "SharePrefill cluster file (--attn share)")
	fs.StringVar(&o.preset, "preset", "paper", "SharePrefill preset: paper or release, optionally with overrides, e.g. paper:gamma=0.985 (knobs: "+strings.Join(share.PresetKnobs, ", ")+")")
	fs.StringVar(&o.device, "device", "", "Vulkan device index or name (default: SHAREPREFILL_DEVICE or the best GPU)")
	fs.IntVar(&o.context, "context", 0, "context length in tokens (0: the model's, capped at 8192)")
	fs.BoolVar(&o.gen.Chat, "chat", false, "wrap the prompt in the model's chat format (Llama 3 or ChatML)")
	fs.StringVar(&o.gen.System, "system", "", "system message for --chat")
	fs.StringVar(&o.statsJSON, "stats-json", "", "write sparse-attention statistics of the prefill to this file")
	fs.BoolVar(&o.force, "force", false, "overwrite a --stats-json file that this program did not write")
	fs.BoolVar(&o.quiet, "quiet", false, "no summary on stderr")
	fs.StringVar(&o.profile, "profile", "", "write a Chrome trace of the call (GPU time of every dispatch, host submits and waits) to this file and print a profile on stderr")
	fs.StringVar(&o.quantize, "quantize", "none", "quantize f32/f16/bf16 weight matrices on load: q8_0 or none (a quantized GGUF file stays quantized either way)")
	fs.BoolVar(&o.allowNonFinite, "allow-nonfinite", false, "load weights holding NaN, ±Inf or values beyond f16's range (default: an error naming the tensor)")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.promptSet = set["prompt"]
	bad := func(format string, args ...any) (*runOptions, error) {
		return nil, usageError{fmt.Sprintf(format, args...)}
	}
	g := o.gen
	kind, kindErr := share.ParsePlannerKind(o.attn)
	o.kind = kind
	switch {
	case g.MaxTokens < 1:
		return bad("--max-tokens %d: want ≥ 1", g.MaxTokens)
	case math.IsNaN(g.Temperature) || math.IsInf(g.Temperature, 0) || g.Temperature < 0:
		return bad("--temp %v: want a finite temperature ≥ 0 (0: greedy)", g.Temperature)
	case !(g.TopP > 0 && g.TopP <= 1):
		return bad("--top-p %v: want 0 < p ≤ 1 (1: off)", g.TopP)
	case o.promptSet && set["prompt-file"]:
		return bad("give --prompt or --prompt-file, not both")
	case o.promptSet && o.prompt == "":
		return bad("--prompt is empty; give the prompt text (leave --prompt out for the default %q)", defaultPrompt)
	case set["prompt-file"] && o.promptFile == "":
		return bad("--prompt-file is empty; give a file name")
	case o.context < 0:
		return bad("--context %d: want ≥ 1 tokens, or 0 for the model's", o.context)
	case kindErr != nil:
		return bad("--attn: %v", kindErr)
	case o.clusters != "" && kind != share.KindShare:
		return bad("--clusters needs --attn share")
	case set["system"] && !g.Chat:
		return bad("--system needs --chat")
	}
	if _, err := share.Preset(o.preset); err != nil {
		return bad("--preset %q: want paper or release, optionally with :knob=value overrides (%v)", o.preset, err)
	}
	if _, err := model.ParseQuantization(o.quantize); err != nil {
		return bad("--quantize: %v", err)
	}
	return o, nil
}

func runRun(args []string, stdout, stderr io.Writer) error {
	o, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	// Everything that can be checked is checked before the model loads.
	if err := checkDevice(o.device); err != nil {
		return err
	}
	if err := checkOutputs(outpath.Spec{Flag: "--stats-json", Path: o.statsJSON, Force: o.force,
		Inputs:    append([]outpath.Named{{Flag: "--prompt-file", Path: o.promptFile}, {Flag: "--clusters", Path: o.clusters}}, modelInput(o.model)...),
		Protected: modelInput(o.model), Ours: isStatsJSON, What: "a --stats-json file"},
		outpath.Spec{Flag: "--profile", Path: o.profile, Force: o.force,
			Inputs:    append([]outpath.Named{{Flag: "--prompt-file", Path: o.promptFile}, {Flag: "--clusters", Path: o.clusters}, {Flag: "--stats-json", Path: o.statsJSON}}, modelInput(o.model)...),
			Protected: modelInput(o.model), Ours: isChromeTrace, What: "a --profile trace"}); err != nil {
		return err
	}
	text := o.prompt
	switch {
	case o.promptFile != "":
		b, err := os.ReadFile(o.promptFile)
		if err != nil {
			return fmt.Errorf("--prompt-file: %w", err)
		}
		text = string(b)
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("--prompt-file %s is empty", o.promptFile)
		}
	case !o.promptSet && !isTerminal(stdinFile()):
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("reading the prompt from stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if text == "" && !o.promptSet {
		text = defaultPrompt
	}

	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	bar := newProgressBar(stderr)
	m, err := shareprefill.Open(ctx, shareprefill.Options{
		Model: o.model, Device: o.device, Context: o.context,
		Attention: o.kind, Clusters: o.clusters, Preset: o.preset,
		Progress: bar.update, AllowNonFinite: o.allowNonFinite, Quantize: o.quantize,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "note: "+format+"\n", args...) },
		// The device's own notes (which GPU, which switches) stay quiet.
		Runtime: runtime.Options{Logf: func(string, ...any) {}},
	})
	bar.clear()
	if errors.Is(err, runtime.ErrOutOfDeviceMemory) {
		return fmt.Errorf("%w (--context sets the context length)", err)
	}
	if err != nil {
		return err
	}
	defer m.Close()

	// The prompt is echoed once the prefill has succeeded: with the first
	// generated text, or after Generate when it produced none. A prompt
	// that does not fit the context is never printed.
	echo, wrote := !o.gen.Chat, false
	printPrompt := func() error {
		if !echo {
			return nil
		}
		echo, wrote = false, true
		_, err := io.WriteString(stdout, text)
		return err
	}
	gen := o.gen
	if o.profile != "" {
		gen.Trace = runtime.NewTrace()
	}
	st, err := m.Generate(ctx, text, gen, func(s string) error {
		bar.clear()
		if err := printPrompt(); err != nil {
			return err
		}
		wrote = true
		_, err := io.WriteString(stdout, s)
		return err
	})
	if err == nil {
		err = printPrompt()
	}
	if wrote {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted")
		}
		if errors.Is(err, model.ErrContextFull) {
			return fmt.Errorf("%w (--context sets the context length)", err)
		}
		return err
	}
	if gen.Trace != nil {
		if err := writeTrace(o.profile, gen.Trace, stderr); err != nil {
			return err
		}
	}
	if o.statsJSON != "" {
		b, err := m.AttentionJSON()
		if err != nil {
			return err
		}
		if b == nil {
			b = []byte(`{"attention":"dense"}` + "\n")
		}
		if err := os.WriteFile(o.statsJSON, b, 0o644); err != nil {
			return fmt.Errorf("--stats-json: %w", err)
		}
	}
	if !o.quiet {
		attnLine := st.Attention
		if attnLine == "" {
			attnLine = "dense (every causal block, density 1.00)"
		}
		fmt.Fprintf(stderr, "model %s on %s · weights %s\n", m.Name, m.Device().Info().Name, weightTypesLine(m.MemoryPlan()))
		fmt.Fprintf(stderr, "prompt %d tokens · prefill %s (%.0f tok/s) · first token after %s\n",
			st.PromptTokens, st.Prefill.Round(10e3), st.PrefillTokensPerSecond(), st.FirstToken.Round(10e3))
		fmt.Fprintf(stderr, "generated %d tokens · decode %.1f tok/s\n", st.GeneratedTokens, st.DecodeTokensPerSecond())
		if st.StoppedByContext {
			fmt.Fprintf(stderr, "stopped: the context of %d tokens is full (--context sets it)\n", m.Context())
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
	fmt.Fprintf(w, "profile: wall %s · %d batches recorded (%s) · %d submits · %d host waits (%s)\n",
		ms(s.Wall), s.Records, ms(s.HostRecord), s.Submits, s.Waits, ms(s.HostWait))
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

// weightTypesLine lists the types the weights take on the device, largest
// first: "Q8_0 0.2 MiB, F16 0.2 MiB, F32 2.8 KiB".
func weightTypesLine(p model.MemoryPlan) string {
	parts := make([]string, len(p.WeightTypes))
	for i, t := range p.WeightTypes {
		parts[i] = fmt.Sprintf("%s %s", t.Type, fmtSize(t.Bytes))
	}
	return strings.Join(parts, ", ")
}

// fmtSize is a byte count in GiB, MiB or KiB.
func fmtSize(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}
