package main

import (
	"context"
	"flag"
	"fmt"
	"go/build"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/internal/outpath"
)

// benchAccuracy is `shareprefill bench accuracy`.
func benchAccuracy(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench accuracy", stderr)
	model, device, clusters, preset := modelFlags(fs.FlagSet)
	quantize := quantizeFlag(fs.FlagSet)
	suite := fs.String("suite", "", "run a named suite (its lengths, tasks, samples, perplexity windows and ablations; flags given explicitly override them): "+strings.Join(harness.SuiteNames(), ", "))
	heldout := fs.String("heldout", "", "held-out text: a file written by --write-heldout, or a plain text file (perplexity windows, retrieval filler and needle words)")
	corpus := fs.String("corpus", "", "the same as --heldout")
	lens := fs.String("lens", "4096,8192", "retrieval prompt lengths (k = 1024)")
	methods := fs.String("methods", "dense,vs,flex,share", "main attention methods (share takes --clusters and --preset; flex the flex preset)")
	tasks := fs.String("tasks", "secret", "retrieval tasks: "+strings.Join(harness.NeedleTasks, ", ")+" (bench-lm-8k's trained format), passkey, kv (InfiniteBench, for instruction models); \"none\"")
	samples := fs.Int("samples", 20, "trained-format samples per task and length (one per depth stratum of [0.02, 0.98])")
	taskSamples := fs.String("task-samples", "", "per-task sample counts, e.g. secret2=50,secret-multi=50")
	pplLens := fs.String("ppl-lens", "", "perplexity window lengths (k = 1024; default: none; \"none\")")
	pplSource := fs.String("ppl-source", "", "score the perplexity on this held-out source only (kjv, austen, go; default: all)")
	windows := fs.Int("ppl-windows", 0, "at most this many perplexity windows per length, or with --oracle per perplexity case (0: every whole window)")
	tail := fs.Int("ppl-tail", 0, "score the last T predictions of each window (0: all)")
	depths := fs.String("depths", "0,0.25,0.5,0.75,1", "needle depths of the InfiniteBench tasks")
	trials := fs.Int("trials", 1, "InfiniteBench samples per (task, length, depth)")
	seed := fs.Uint64("seed", 1, "seed of the samples (the same samples for every method)")
	pk := fs.Int("passkey-tokens", 8, "greedy decode length of passkey")
	kvt := fs.Int("kv-tokens", 40, "greedy decode length of kv")
	ablations := fs.String("ablations", "suite", "\"suite\": the suite's ablations; \"none\": none")
	var variants []harness.Variant
	fs.Func("variant", "an extra ablation variant label=attention[/preset][@clusters], e.g. noexcl=share/paper:exclusion=none@c.json, run on the ablation task and the perplexity windows (repeatable)", func(s string) error {
		v, err := harness.ParseVariant(s)
		if err != nil {
			return err
		}
		v.PPL = true
		variants = append(variants, v)
		return nil
	})
	pooled := fs.String("clusters-pooled", "", "cluster file from pooled maps (calibrate --representation pooled), for the suite's ablation")
	alt := fs.String("clusters-alt", "", "more cluster files for the suite's cluster-threshold ablation: label=FILE,...")
	budget := fs.Duration("budget", 0, "stop starting new jobs after this long (e.g. 6m; 0: no limit); the rest is listed as skipped")
	flexPreset := fs.String("flex-preset", "", "preset of the flex method (default: flex, FlexPrefill's own defaults)")
	writeHeldout := fs.String("write-heldout", "", "build the held-out file from --holdout-list, --corpora and --goroot, write it here and exit")
	holdoutList := fs.String("holdout-list", "", "the model's list of held-out documents (bench-lm-8k: training/holdout.txt)")
	corpora := fs.String("corpora", "", "the corpora folder holding kjv/ and austen/ (shared/data/corpora)")
	goroot := fs.String("goroot", build.Default.GOROOT, "the Go distribution of the held-out Go files")
	oracle := fs.String("oracle", "", "instead: compare our logits with the references in this directory (bench/peers/hf_oracle.py: transformers; bench/peers/llamacpp-oracle.sh: llama.cpp on GGUF files, also greedy tokens and perplexity) and exit")
	oracleCases := fs.String("oracle-cases", "", "with --oracle: run only the cases whose names match one of these comma-separated patterns (path.Match, e.g. '*-kjv,Q8_0-*')")
	oracleWeights := fs.String("oracle-weights", "quantized", "with --oracle: how a GGUF file's quantized matrices are held, one run each: "+strings.Join(harness.OracleWeights, ", ")+" (dequantized at load)")
	out := addOutFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *oracle != "" {
		if err := checkBenchInputs(harness.ModelParams{Device: *device}, out, outpath.Named{Flag: "--oracle", Path: *oracle}); err != nil {
			return err
		}
		ctx, stop := interruptible(context.Background(), stderr, os.Exit)
		defer stop()
		op := harness.OracleParams{Dir: *oracle, Device: *device, PPLWindows: *windows, Logf: out.logf(stderr)}
		if *oracleCases != "" {
			op.Cases = strings.Split(*oracleCases, ",")
		}
		for _, w := range strings.Split(*oracleWeights, ",") {
			if w = strings.TrimSpace(w); !slices.Contains(harness.OracleWeights, w) {
				return usageError{fmt.Sprintf("--oracle-weights: %q is not one of %s", w, strings.Join(harness.OracleWeights, ", "))}
			}
			op.Weights = append(op.Weights, w)
		}
		rep, err := harness.RunOracle(ctx, op)
		if err != nil {
			if rep != nil && *out.json != "" {
				_ = harness.Output{JSON: *out.json}.Write(rep, nil)
			}
			return err
		}
		return out.write(rep, harness.OracleTables(rep.Results.(*harness.OracleResults)), nil, stdout, stderr)
	}
	if *writeHeldout != "" {
		if *holdoutList == "" || *corpora == "" {
			return usageError{"--write-heldout needs --holdout-list and --corpora"}
		}
		if err := checkOutputs(outpath.Spec{Flag: "--write-heldout", Path: *writeHeldout, Force: *out.force,
			Inputs: []outpath.Named{{Flag: "--holdout-list", Path: *holdoutList}, {Flag: "--corpora", Path: *corpora}}}); err != nil {
			return err
		}
		h, err := harness.BuildHeldOut(*holdoutList, *corpora, *goroot)
		if err != nil {
			return err
		}
		if err := harness.WriteHeldOut(*writeHeldout, h); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: %d documents (%s), %d needle words\n", *writeHeldout, len(h.Docs), strings.Join(h.Sources(), ", "), len(h.Words))
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *model == "" {
		return usageError{"--model is required"}
	}
	p := harness.AccuracyParams{MaxNew: map[string]int{}}
	var abl func(string, harness.SuiteFiles) []harness.Variant
	if *suite != "" {
		st, ok := harness.Suites()[*suite]
		if !ok {
			return usageError{fmt.Sprintf("--suite: unknown suite %q (%s)", *suite, strings.Join(harness.SuiteNames(), ", "))}
		}
		p, abl = st.Params, st.Ablations
		p.Suite = st.Name
		if p.MaxNew == nil {
			p.MaxNew = map[string]int{}
		}
	}
	// Flags given explicitly, or every flag without a suite.
	use := func(name string) bool { return *suite == "" || set[name] }
	p.Model, p.Device, p.Quantize = *model, *device, *quantize
	if use("clusters") {
		p.Clusters = *clusters
	}
	if use("preset") {
		p.Preset = *preset
	}
	var err error
	if use("lens") {
		if p.Lens, err = lensFlag(*lens, "lens"); err != nil {
			return err
		}
	}
	if use("methods") {
		if p.Methods, err = methodsFlag(*methods); err != nil {
			return err
		}
	}
	if use("tasks") {
		p.Tasks = nil
		if t := strings.TrimSpace(*tasks); t != "none" && t != "" {
			p.Tasks = harness.ParseList(t)
		}
	}
	if use("samples") {
		p.Samples = *samples
	}
	if set["task-samples"] {
		p.TaskSamples = map[string]int{}
		for _, kv := range harness.ParseList(*taskSamples) {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 1 {
				return usageError{fmt.Sprintf("--task-samples: %q is not task=count", kv)}
			}
			p.TaskSamples[k] = n
		}
	}
	if use("ppl-lens") {
		p.PPLLens = nil
		if s := strings.TrimSpace(*pplLens); s != "" && s != "none" {
			if p.PPLLens, err = lensFlag(s, "ppl-lens"); err != nil {
				return err
			}
		}
	}
	if use("ppl-source") {
		p.PPLSource = *pplSource
	}
	if use("ppl-windows") {
		p.PPLWindows = *windows
	}
	if use("ppl-tail") {
		p.PPLTail = *tail
	}
	if use("seed") {
		p.Seed = *seed
	}
	if use("flex-preset") {
		p.FlexPreset = *flexPreset
	}
	p.HeldOut = *heldout
	if p.HeldOut == "" {
		p.HeldOut = *corpus
	}
	p.Trials = *trials
	if p.Depths, err = harness.ParseFloats(*depths, 0, 1); err != nil {
		return usageError{"--depths: " + err.Error()}
	}
	p.MaxNew["passkey"], p.MaxNew["kv"] = *pk, *kvt
	p.Budget = *budget
	switch *ablations {
	case "suite":
		if abl != nil {
			files := harness.SuiteFiles{Pooled: *pooled, Alt: map[string]string{}}
			for _, kv := range harness.ParseList(*alt) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usageError{fmt.Sprintf("--clusters-alt: %q is not label=FILE", kv)}
				}
				files.Alt[k] = v
			}
			p.Ablations = abl(p.Clusters, files)
		}
	case "none":
		p.Ablations = nil
	default:
		return usageError{fmt.Sprintf("--ablations: %q (want suite or none)", *ablations)}
	}
	p.Ablations = append(p.Ablations, variants...)
	if len(p.Tasks) == 0 && len(p.PPLLens) == 0 {
		return usageError{"nothing to do: give --tasks and/or --ppl-lens (with --heldout)"}
	}
	if err := p.Validate(); err != nil {
		return usageError{err.Error()}
	}
	inputs := []outpath.Named{{Flag: "--heldout", Path: p.HeldOut}, {Flag: "--clusters-pooled", Path: *pooled}}
	for _, v := range p.Ablations {
		inputs = append(inputs, outpath.Named{Flag: "--variant", Path: v.Clusters})
	}
	if err := checkBenchInputs(p.ModelParams, out, inputs...); err != nil {
		return err
	}
	p.Logf = out.logf(stderr)
	if *out.json != "" || *out.md != "" {
		// Partial results after every job.
		p.Checkpoint = func(rep *harness.Report) error {
			res := rep.Results.(*harness.AccuracyResults)
			return harness.Output{JSON: *out.json, MD: *out.md}.Write(rep, harness.AccuracyTables(res))
		}
	}
	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	began := time.Now()
	rep, err := harness.RunAccuracy(ctx, p)
	if err != nil {
		if rep != nil && *out.json != "" {
			// Keep what finished.
			_ = harness.Output{JSON: *out.json}.Write(rep, nil)
		}
		return err
	}
	res := rep.Results.(*harness.AccuracyResults)
	rep.Notef("accuracy run: %.0f s", time.Since(began).Seconds())
	if err := out.write(rep, harness.AccuracyTables(res), harness.AccuracyPlots(res), stdout, stderr); err != nil {
		return err
	}
	if *out.json != "" && !*out.quiet {
		fmt.Fprintf(stderr, "bench: wrote %s\n", filepath.Clean(*out.json))
	}
	return nil
}
