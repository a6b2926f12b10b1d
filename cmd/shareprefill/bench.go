package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/internal/outpath"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/share"
)

const benchUsage = `usage: shareprefill bench <kernels|prefill|decode|accuracy|gen-model|density|compare> [flags]

  kernels     dense vs block-sparse attention, 8B matmuls, estimation kernels;
              exports the exact block masks for bench/peers/sdpa_flex.py
  prefill     end-to-end prefill latency per attention method and length
  decode      greedy decode tokens/s after prompts of each length
  accuracy    retrieval (bench-lm-8k's trained needle format, InfiniteBench
              passkey / kv), perplexity and ablations per method, with
              intervals and paired tests; --suite bench-lm-8k runs all of it
  gen-model   write a random-weight model with real shapes (speed only),
              or with --kind structured the structured vehicle
  density     exact attention structure per head on the CPU (float64)
  compare     join our JSON reports with the peers' into ratio tables

Every benchmark prints Markdown and writes --json FILE, --md FILE and PNG
plots into --plots DIR (PNG plots only in the bench build: make build-bench,
or go build -tags plots). Run ` + "`shareprefill bench <sub> -h`" + ` for the
flags.
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
	case "decode":
		return benchDecode(rest, stdout, stderr)
	case "density":
		return benchDensity(rest, stdout, stderr)
	case "compare":
		return benchCompare(rest, stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown bench subcommand %q (kernels, prefill, decode, accuracy, gen-model, density, compare)", sub)}
}

// outFlags are the output flags every benchmark has.
type outFlags struct {
	json, md, plots *string
	quiet, force    *bool
}

func addOutFlags(fs *flagSet) outFlags {
	return outFlags{
		json:  fs.String("json", "", "write the report as JSON to this file"),
		md:    fs.String("md", "", "write the Markdown tables to this file (they always go to stdout)"),
		plots: fs.String("plots", "", plotsHelp),
		quiet: fs.Bool("quiet", false, "no progress lines on stderr"),
		force: forceFlag(fs),
	}
}

// check checks the output paths before the benchmark runs: none may be an
// input (or another output), lie inside the model directory, or overwrite a
// file or directory the benchmarks did not write without --force.
func (o outFlags) check(inputs []outpath.Named, modelDir string, extra ...outpath.Spec) error {
	outs := []outpath.Spec{
		{Flag: "--json", Path: *o.json, MakeParents: true, Ours: isBenchReport, What: "a benchmark report"},
		{Flag: "--md", Path: *o.md, MakeParents: true, Ours: isBenchMarkdown, What: "benchmark Markdown"},
		{Flag: "--plots", Path: *o.plots, Dir: true, Ours: isPlotsDir, What: "a directory of PNG plots"},
	}
	outs = append(outs, extra...)
	for i := range outs {
		outs[i].Force = *o.force
		outs[i].Protected = modelInput(modelDir)
		outs[i].Inputs = append(slices.Clone(inputs), modelInput(modelDir)...)
		for j := range outs {
			if j != i {
				outs[i].Inputs = append(outs[i].Inputs, outpath.Named{Flag: outs[j].Flag, Path: outs[j].Path})
			}
		}
	}
	if err := checkOutputs(outs...); err != nil {
		return err
	}
	if *o.plots != "" {
		if err := plotsUnavailable(); err != nil {
			return usageError{"--plots: " + err.Error()}
		}
	}
	return nil
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
		files, err := drawPlots(*o.plots, plots)
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
	for i, m := range ms {
		k, err := share.ParsePlannerKind(m)
		if err != nil {
			return nil, usageError{"--methods: " + err.Error()}
		}
		ms[i] = string(k)
	}
	return ms, nil
}

func benchKernels(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench kernels", stderr)
	d := harness.DefaultKernelParams()
	lens := fs.String("lens", "4096,8192,16384,32768,65536", "sequence lengths (k = 1024); lengths whose tensors exceed the device's limits are skipped with a note; \"none\" skips attention")
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
	mtypes := fs.String("matmul-types", "none", "weight types of the by-type matmul benchmark (f16,q8_0,q4_0,q5_0,q4_k,q5_k,q6_k; llama.cpp's test-backend-ops comparison: f16,q8_0,q4_k,q6_k); \"none\" skips it")
	qshapes := fs.String("quant-shapes", "4096x14336,14336x4096,4096x4096", "weight shapes NxK (N output rows, K inputs: llama.cpp's m and k) of the by-type matmul benchmark")
	qm := fs.String("quant-m", "1,512", "row counts M of the by-type matmul benchmark (M ≤ 4: the decode mat-vec; above: dequantize + matmul, as prefill)")
	est := fs.Bool("estimation", true, "time the estimation kernels (last-block estimates, γ-cover counts, pooled estimate, block map of one head, pooled block scores)")
	masks := fs.String("masks", "", "export the timed block masks (masks.json + .npy CSR) into this directory (default: next to --json, FILE.masks)")
	device := fs.String("device", "", "Vulkan device index or name")
	out := addOutFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	p := d
	var err error
	p.Lens = nil
	if s := strings.TrimSpace(*lens); s != "none" {
		if p.Lens, err = lensFlag(s, "lens"); err != nil {
			return err
		}
	}
	if s := strings.TrimSpace(*mtypes); s != "" && s != "none" {
		if p.MatMulTypes, err = harness.ParseWeightTypes(s); err != nil {
			return usageError{"--matmul-types: " + err.Error()}
		}
		if p.QuantShapes, err = harness.ParseShapes(*qshapes); err != nil {
			return usageError{"--quant-shapes: " + err.Error()}
		}
		if p.QuantM, err = lensFlag(*qm, "quant-m"); err != nil {
			return err
		}
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
	if err := p.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if err := out.check(nil, "", outpath.Spec{Flag: "--masks", Path: p.MaskDir, Dir: true, Ours: isMasksDir, What: "a directory of exported masks"}); err != nil {
		return err
	}
	if err := checkDevice(*device); err != nil {
		return err
	}
	p.Logf = out.logf(stderr)
	dev, err := runtime.Open(runtime.Options{Device: *device})
	if err != nil {
		return err
	}
	defer dev.Close()
	if info := dev.Info(); info.Type == runtime.TypeCPU {
		fmt.Fprintln(stderr, cpuWarning(info.Name, p.Plan()))
	}
	rep, err := harness.RunKernels(dev, p)
	if err != nil {
		return err
	}
	// With SHAREPREFILL_VK_PIPELINE_STATS=1 on a driver that has them: the
	// statistics of every kernel the run created (registers, spills, ...).
	if st, err := dev.PipelineStatistics(); err == nil {
		runtime.FormatPipelineStatistics(stderr, st)
	}
	res := rep.Results.(*harness.KernelResults)
	return out.write(rep, harness.KernelTables(res), harness.KernelPlots(res), stdout, stderr)
}

// cpuRate is about what Mesa's lavapipe reached on dense flash attention
// with 2 CPU cores (n 2048, 8 heads, D 128: 0.2 GFLOP/s dense-equivalent),
// for the size estimate of a run on a CPU device.
const cpuRate = 0.2e9 // FLOP/s

// cpuWarning is the one-line warning `bench kernels` prints before a run on
// a CPU device, with the size of the run and how to make it smaller.
func cpuWarning(device string, pl harness.KernelPlan) string {
	return fmt.Sprintf("bench: warning: %s is a CPU device: %d timed configurations, %.3g TFLOP with warm-ups and repetitions, "+
		"%s at the %.1f GFLOP/s of lavapipe on 2 cores; for a quick run try --lens 512 --hq 4 --hkv 2 --reps 2 --warmup 1 --warmup-ms 0 --flush-mib 1 --matmul-m none",
		device, pl.Cells, pl.FLOPs/1e12, roughDuration(pl.FLOPs/cpuRate), cpuRate/1e9)
}

// roughDuration says how long sec seconds are, in words.
func roughDuration(sec float64) string {
	switch {
	case sec < 60:
		return "under a minute"
	case sec < 3600:
		return fmt.Sprintf("about %.0f minutes", sec/60)
	case sec < 48*3600:
		return fmt.Sprintf("about %.0f hours", sec/3600)
	}
	return fmt.Sprintf("about %.0f days", sec/86400)
}

func modelFlags(fs *flag.FlagSet) (model, device, clusters, preset *string) {
	return fs.String("model", "", "Hugging Face model directory (required; `bench gen-model` writes random-weight ones)"),
		fs.String("device", "", "Vulkan device index or name"),
		fs.String("clusters", "", "SharePrefill cluster file (method share)"),
		fs.String("preset", "", "SharePrefill preset: paper or release, optionally with overrides, e.g. paper:gamma=0.985 (default: the library's)")
}

// quantizeFlag adds --quantize to a model benchmark.
func quantizeFlag(fs *flag.FlagSet) *string {
	return fs.String("quantize", "none", "quantize f32/f16/bf16 weight matrices on load: q8_0 or none")
}

// checkBenchInputs checks --device, --quantize and the output paths of a
// model benchmark before it loads anything.
func checkBenchInputs(mp harness.ModelParams, out outFlags, inputs ...outpath.Named) error {
	if _, err := model.ParseQuantization(mp.Quantize); err != nil {
		return usageError{"--quantize: " + err.Error()}
	}
	if mp.Preset != "" {
		if _, err := share.Preset(mp.Preset); err != nil {
			return usageError{fmt.Sprintf("--preset %q: want paper or release, optionally with :knob=value overrides (%v)", mp.Preset, err)}
		}
	}
	inputs = append(inputs, outpath.Named{Flag: "--clusters", Path: mp.Clusters})
	if err := out.check(inputs, mp.Model); err != nil {
		return err
	}
	return checkDevice(mp.Device)
}

func benchPrefill(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench prefill", stderr)
	model, device, clusters, preset := modelFlags(fs.FlagSet)
	quantize := quantizeFlag(fs.FlagSet)
	lens := fs.String("lens", "1024,2048,4096,8192", "prompt lengths (k = 1024)")
	methods := fs.String("methods", "dense,vs,flex,share", "attention methods")
	warm := fs.Int("warmup", 1, "warm-up prefills per configuration")
	reps := fs.Int("reps", 5, "timed prefills per configuration")
	seed := fs.Uint64("seed", 1, "seed of the random prompt tokens")
	corpus := fs.String("corpus", "", "take the prompt tokens from this text file (repeated to length) instead of random ids")
	profile := fs.Bool("profile", false, "add one traced prefill per cell: GPU time per kind of work, GPU busy and idle, host waits")
	prompt := fs.String("prompt", harness.PromptRandom, "prompt tokens without --corpus: random (seeded ids) or structured (the structured vehicle's prompt)")
	out := addOutFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usageError{"--model is required"}
	}
	if *prompt != harness.PromptRandom && *prompt != harness.PromptStructured {
		return usageError{fmt.Sprintf("--prompt %q: want random or structured", *prompt)}
	}
	p := harness.PrefillParams{ModelParams: harness.ModelParams{Model: *model, Device: *device, Clusters: *clusters, Preset: *preset, Quantize: *quantize},
		Warmup: *warm, Reps: *reps, Seed: *seed, Corpus: *corpus, Prompt: *prompt, Profile: *profile, Logf: out.logf(stderr)}
	var err error
	if p.Lens, err = lensFlag(*lens, "lens"); err != nil {
		return err
	}
	if p.Methods, err = methodsFlag(*methods); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if err := checkBenchInputs(p.ModelParams, out, outpath.Named{Flag: "--corpus", Path: p.Corpus}); err != nil {
		return err
	}
	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	rep, err := harness.RunPrefill(ctx, p)
	if err != nil {
		return err
	}
	res := rep.Results.(*harness.PrefillResults)
	return out.write(rep, harness.PrefillTables(res), harness.PrefillPlots(res), stdout, stderr)
}

func benchDecode(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench decode", stderr)
	model, device, _, _ := modelFlags(fs.FlagSet)
	quantize := quantizeFlag(fs.FlagSet)
	lens := fs.String("lens", "4096,32768", "prompt lengths before decoding (k = 1024)")
	gen := fs.Int("gen", 128, "tokens generated per run (at least 2)")
	warm := fs.Int("warmup", 1, "warm-up runs per length")
	reps := fs.Int("reps", 3, "timed runs per length")
	seed := fs.Uint64("seed", 1, "seed of the random prompt tokens")
	out := addOutFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usageError{"--model is required"}
	}
	if *gen < 2 || *reps < 1 || *warm < 0 {
		return usageError{"need --gen ≥ 2, --reps ≥ 1 and --warmup ≥ 0"}
	}
	p := harness.DecodeParams{ModelParams: harness.ModelParams{Model: *model, Device: *device, Quantize: *quantize},
		Gen: *gen, Reps: *reps, Warmup: *warm, Seed: *seed, Logf: out.logf(stderr)}
	var err error
	if p.Lens, err = lensFlag(*lens, "lens"); err != nil {
		return err
	}
	if err := checkBenchInputs(p.ModelParams, out); err != nil {
		return err
	}
	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	rep, err := harness.RunDecode(ctx, p)
	if err != nil {
		return err
	}
	return out.write(rep, harness.DecodeTables(rep.Results.(*harness.DecodeResults)), nil, stdout, stderr)
}

func benchGenModel(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench gen-model", stderr)
	kind := fs.String("kind", "random", "random (random weights) or structured (planted attention structure: sinks, windows, stripes, slashes; vocabulary 258 unless --vocab; use with --prompt structured)")
	shape := fs.String("shape", "llama3-8b", "model shape: "+strings.Join(harness.ShapeNames(), ", "))
	layers := fs.Int("layers", 2, "decoder layers (0: the real model's)")
	vocab := fs.Int("vocab", 0, "vocabulary size (0: the real model's)")
	ctxLen := fs.Int("context", 0, "max_position_embeddings (0: the real model's)")
	seed := fs.Int64("seed", 1, "weight seed")
	outDir := fs.String("out", "", "output directory (required; new, empty, or made by gen-model)")
	force := forceFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *outDir == "" {
		return usageError{"--out is required"}
	}
	p := harness.GenModelParams{Kind: *kind, Shape: *shape, Layers: *layers, Vocab: *vocab, Context: *ctxLen, Seed: *seed}
	if err := p.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if err := checkOutputs(outpath.Spec{Flag: "--out", Path: *outDir, Dir: true, Force: *force,
		Ours: harness.IsGenerated, What: "a directory made by bench gen-model (it has no " + harness.GeneratedMarker + " file)"}); err != nil {
		return err
	}
	cfg, err := harness.GenModel(*outDir, p)
	if err != nil {
		return err
	}
	weights := "random weights"
	if *kind == "structured" {
		weights = "structured attention, see structure.json"
	}
	fmt.Fprintf(stdout, "wrote %s: %s shape, %d layers, hidden %d, heads %d/%d×%d, vocab %d, %.2fB parameters (%s, byte tokenizer)\n",
		*outDir, *shape, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.VocabSize, float64(cfg.NumParams())/1e9, weights)
	return nil
}

func benchCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench compare", stderr)
	md := fs.String("md", "", "also write the tables to this file")
	force := forceFlag(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{oneLine(err.Error())}
	}
	if fs.NArg() < 2 {
		return usageError{"usage: shareprefill bench compare [--md FILE] [--force] OURS.json PEER.json ..."}
	}
	var inputs []outpath.Named
	for _, f := range fs.Args() {
		inputs = append(inputs, outpath.Named{Flag: "a report argument", Path: f})
	}
	if err := checkOutputs(outpath.Spec{Flag: "--md", Path: *md, MakeParents: false, Force: *force,
		Inputs: inputs, Ours: isBenchMarkdown, What: "benchmark Markdown"}); err != nil {
		return err
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
