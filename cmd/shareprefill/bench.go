package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/runtime"
)

const benchUsage = `usage: shareprefill bench <kernels|prefill|accuracy|gen-model|compare> [flags]

  kernels     dense vs block-sparse attention, 8B matmuls, estimation kernels;
              exports the exact block masks for bench/peers/sdpa_flex.py
  prefill     end-to-end prefill latency per attention method and length
  accuracy    retrieval (bench-lm-8k's trained needle format, InfiniteBench
              passkey / kv), perplexity and ablations per method, with
              intervals and paired tests; --suite bench-lm-8k runs all of it
  gen-model   write a random-weight model with real shapes (speed only)
  compare     join our JSON reports with the peers' into ratio tables

Every benchmark prints Markdown and writes --json FILE, --md FILE and PNG
plots into --plots DIR. Run ` + "`shareprefill bench <sub> -h`" + ` for the flags.
`

func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, benchUsage)
		if len(args) == 0 {
			return usageError{"missing bench subcommand"}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "kernels":
		return benchKernels(rest, stdout, stderr)
	case "prefill":
		return benchPrefill(rest, stdout, stderr)
	case "accuracy":
		return benchAccuracy(rest, stdout, stderr)
	case "gen-model":
		return benchGenModel(rest, stdout, stderr)
	case "compare":
		return benchCompare(rest, stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown bench subcommand %q (kernels, prefill, accuracy, gen-model, compare)", sub)}
}

// outFlags are the output flags every benchmark has.
type outFlags struct {
	json, md, plots *string
	quiet           *bool
}

func addOutFlags(fs *flag.FlagSet) outFlags {
	return outFlags{
		json:  fs.String("json", "", "write the report as JSON to this file"),
		md:    fs.String("md", "", "write the Markdown tables to this file (they always go to stdout)"),
		plots: fs.String("plots", "", "draw PNG plots into this directory"),
		quiet: fs.Bool("quiet", false, "no progress lines on stderr"),
	}
}

func (o outFlags) logf(stderr io.Writer) func(string, ...any) {
	if *o.quiet {
		return nil
	}
	return func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
}

// write emits the report, its tables and plots.
func (o outFlags) write(rep *harness.Report, tables []*harness.Table, plots []harness.PlotSpec, stdout, stderr io.Writer) error {
	if err := (harness.Output{JSON: *o.json, MD: *o.md, Stdout: stdout}).Write(rep, tables); err != nil {
		return err
	}
	if *o.plots != "" {
		files, err := harness.DrawAll(*o.plots, plots)
		if err != nil {
			return fmt.Errorf("--plots: %w", err)
		}
		if !*o.quiet {
			for _, f := range files {
				fmt.Fprintf(stderr, "bench: wrote %s\n", f)
			}
		}
	}
	return nil
}

func lensFlag(s, name string) ([]int, error) {
	v, err := harness.ParseInts(s)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--%s: %v", name, err)}
	}
	return v, nil
}

func methodsFlag(s string) ([]string, error) {
	ms := harness.ParseList(s)
	if len(ms) == 0 {
		return nil, usageError{"--methods: empty"}
	}
	for _, m := range ms {
		ok := false
		for _, k := range harness.Methods {
			ok = ok || k == m
		}
		if !ok {
			return nil, usageError{fmt.Sprintf("--methods: unknown method %q (dense, vs, flex, share)", m)}
		}
	}
	return ms, nil
}

func benchKernels(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench kernels", stderr)
	d := harness.DefaultKernelParams()
	lens := fs.String("lens", "4096,8192,16384,32768,65536", "sequence lengths (k = 1024); lengths whose tensors exceed the device's limits are skipped with a note")
	dens := fs.String("densities", "1,0.5,0.2,0.1,0.05", "block densities of the random causal masks (0 < d ≤ 1)")
	hq := fs.Int("hq", d.Hq, "query heads")
	hkv := fs.Int("hkv", d.Hkv, "key/value heads")
	hd := fs.Int("d", d.D, "head dimension")
	block := fs.Int("block", d.Block, "sparse block size B")
	warm := fs.Int("warmup", d.Warmup, "warm-up runs per configuration")
	warmMs := fs.Int("warmup-ms", d.WarmupMs, "extend each configuration's warm-up runs to at least this many milliseconds (GPUs run slow for a while after idling or fresh allocations)")
	reps := fs.Int("reps", d.Reps, "timed runs per configuration")
	seed := fs.Uint64("seed", d.Seed, "seed of the inputs and masks")
	flush := fs.Int("flush-mib", d.FlushMiB, "fill a buffer of this many MiB before every run to flush the L2 (0: no flush)")
	mm := fs.String("matmul-m", "1,512,4096", "row counts M of the Llama-3-8B matmul shapes; \"none\" skips the matmuls")
	est := fs.Bool("estimation", true, "time the estimation kernels (last-block estimates, pooled estimate, block map of one head, pooled block scores)")
	masks := fs.String("masks", "", "export the timed block masks (masks.json + .npy CSR) into this directory (default: next to --json, FILE.masks)")
	device := fs.String("device", "", "Vulkan device index or name")
	out := addOutFlags(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	p := d
	var err error
	if p.Lens, err = lensFlag(*lens, "lens"); err != nil {
		return err
	}
	if p.Densities, err = harness.ParseFloats(*dens, 1e-6, 1); err != nil {
		return usageError{"--densities: " + err.Error()}
	}
	p.Hq, p.Hkv, p.D, p.Block, p.Warmup, p.WarmupMs, p.Reps, p.Seed, p.FlushMiB, p.Estimation = *hq, *hkv, *hd, *block, *warm, *warmMs, *reps, *seed, *flush, *est
	p.MatMulM = nil
	if s := strings.TrimSpace(*mm); s != "" && s != "none" && s != "0" {
		if p.MatMulM, err = lensFlag(s, "matmul-m"); err != nil {
			return err
		}
	}
	p.MaskDir = *masks
	if p.MaskDir == "" && *out.json != "" {
		p.MaskDir = strings.TrimSuffix(*out.json, filepath.Ext(*out.json)) + ".masks"
	}
	p.Logf = out.logf(stderr)
	dev, err := runtime.Open(runtime.Options{Device: *device})
	if err != nil {
		return err
	}
	defer dev.Close()
	rep, err := harness.RunKernels(dev, p)
	if err != nil {
		return err
	}
	res := rep.Results.(*harness.KernelResults)
	return out.write(rep, harness.KernelTables(res), harness.KernelPlots(res), stdout, stderr)
}

func modelFlags(fs *flag.FlagSet) (model, device, clusters, preset *string) {
	return fs.String("model", "", "Hugging Face model directory (required; `bench gen-model` writes random-weight ones)"),
		fs.String("device", "", "Vulkan device index or name"),
		fs.String("clusters", "", "SharePrefill cluster file (method share)"),
		fs.String("preset", "", "SharePrefill preset: paper or release (default: the library's)")
}

func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

func benchPrefill(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench prefill", stderr)
	model, device, clusters, preset := modelFlags(fs.FlagSet)
	lens := fs.String("lens", "1024,2048,4096,8192", "prompt lengths (k = 1024)")
	methods := fs.String("methods", "dense,vs,flex,share", "attention methods")
	warm := fs.Int("warmup", 1, "warm-up prefills per configuration")
	reps := fs.Int("reps", 5, "timed prefills per configuration")
	seed := fs.Uint64("seed", 1, "seed of the random prompt tokens")
	corpus := fs.String("corpus", "", "take the prompt tokens from this text file (repeated to length) instead of random ids")
	out := addOutFlags(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usageError{"--model is required"}
	}
	p := harness.PrefillParams{ModelParams: harness.ModelParams{Model: *model, Device: *device, Clusters: *clusters, Preset: *preset},
		Warmup: *warm, Reps: *reps, Seed: *seed, Corpus: *corpus, Logf: out.logf(stderr)}
	var err error
	if p.Lens, err = lensFlag(*lens, "lens"); err != nil {
		return err
	}
	if p.Methods, err = methodsFlag(*methods); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	rep, err := harness.RunPrefill(ctx, p)
	if err != nil {
		return err
	}
	res := rep.Results.(*harness.PrefillResults)
	return out.write(rep, harness.PrefillTables(res), harness.PrefillPlots(res), stdout, stderr)
}

func benchGenModel(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench gen-model", stderr)
	shape := fs.String("shape", "llama3-8b", "model shape: "+strings.Join(harness.ShapeNames(), ", "))
	layers := fs.Int("layers", 2, "decoder layers (0: the real model's)")
	vocab := fs.Int("vocab", 0, "vocabulary size (0: the real model's)")
	ctxLen := fs.Int("context", 0, "max_position_embeddings (0: the real model's)")
	seed := fs.Int64("seed", 1, "weight seed")
	outDir := fs.String("out", "", "output directory (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *outDir == "" {
		return usageError{"--out is required"}
	}
	cfg, err := harness.GenModel(*outDir, harness.GenModelParams{Shape: *shape, Layers: *layers, Vocab: *vocab, Context: *ctxLen, Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s shape, %d layers, hidden %d, heads %d/%d×%d, vocab %d, %.2fB parameters (random weights, byte tokenizer)\n",
		*outDir, *shape, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.VocabSize, float64(cfg.NumParams())/1e9)
	return nil
}

func benchCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench compare", stderr)
	md := fs.String("md", "", "also write the tables to this file")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() < 2 {
		return usageError{"usage: shareprefill bench compare [--md FILE] OURS.json PEER.json ..."}
	}
	var reps []*harness.RawReport
	for _, f := range fs.Args() {
		r, err := harness.ReadReport(f)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	tables, err := harness.Compare(reps)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("## ours vs peers\n\n")
	for _, t := range tables {
		b.WriteString(t.Markdown())
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if *md != "" {
		return os.WriteFile(*md, []byte(b.String()), 0o644)
	}
	return nil
}
