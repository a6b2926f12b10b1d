package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shareprefill/shareprefill/bench/harness"
)

// benchDensity runs `shareprefill bench density`: the exact attention
// structure of a model on the CPU (harness.AttentionDensity).
func benchDensity(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench density", stderr)
	modelDir := fs.String("model", "", "Hugging Face model directory (required; `bench gen-model --kind structured` writes the structured vehicle)")
	nFlag := fs.String("n", "2048", "prompt length in tokens (k = 1024)")
	prompt := fs.String("prompt", harness.PromptStructured, "prompt tokens: structured (the vehicle's prompt) or random")
	seed := fs.Uint64("seed", 1, "prompt seed")
	stripeA := fs.Int("stripe-a-every", harness.DefaultStripeAEvery, "structured prompt: mean spacing of stripe token A")
	stripeB := fs.Int("stripe-b-every", harness.DefaultStripeBEvery, "structured prompt: mean spacing of stripe token B")
	layers := fs.String("layers", "all", "layers to report (comma-separated or all); the layers below the highest are run in full unless --approx")
	heads := fs.String("heads", "all", "query heads to report (comma-separated or all)")
	block := fs.Int("block", 128, "block size B")
	mass := fs.Float64("mass", 0.95, "share of each query block's attention the kept key blocks must hold")
	sample := fs.Int("sample", 0, "compute this many query blocks per head (midpoints of equal strata; 0: all) where no later layer needs the full output")
	approx := fs.Bool("approx", false, "feed every layer the token embeddings (exact for layer 0; for the structured vehicle it leaves out only the ~0.1 % change of each token's RMS norm)")
	workers := fs.Int("workers", 0, "goroutines (0: GOMAXPROCS)")
	out := addOutFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelDir == "" {
		return usageError{"--model is required"}
	}
	if err := out.check(nil, *modelDir); err != nil {
		return err
	}
	ns, err := lensFlag(*nFlag, "n")
	if err != nil {
		return err
	}
	if len(ns) != 1 || ns[0] < 2 {
		return usageError{fmt.Sprintf("--n %q: want one length of at least 2 tokens", *nFlag)}
	}
	if *prompt != harness.PromptStructured && *prompt != harness.PromptRandom {
		return usageError{fmt.Sprintf("--prompt %q: want structured or random", *prompt)}
	}
	if *stripeA < 1 || *stripeB < 1 {
		return usageError{"--stripe-a-every and --stripe-b-every must be ≥ 1"}
	}
	if *block < 1 || !(*mass > 0 && *mass <= 1) || *sample < 0 {
		return usageError{"--block must be ≥ 1, --mass in (0, 1], --sample ≥ 0"}
	}
	p := harness.DensityParams{Model: *modelDir, N: ns[0], Prompt: *prompt, Seed: *seed,
		Spec:  harness.PromptSpec{StripeAEvery: *stripeA, StripeBEvery: *stripeB},
		Block: *block, Mass: *mass, Sample: *sample, Approx: *approx, Workers: *workers, Logf: out.logf(stderr)}
	if p.Layers, err = allOrInts(*layers, "layers"); err != nil {
		return err
	}
	if p.Heads, err = allOrInts(*heads, "heads"); err != nil {
		return err
	}
	ctx, stop := interruptible(context.Background(), stderr, os.Exit)
	defer stop()
	rep, err := harness.AttentionDensity(ctx, p)
	if err != nil {
		return err
	}
	res := rep.Results.(*harness.DensityResults)
	return out.write(rep, harness.DensityTables(res), nil, stdout, stderr)
}

// allOrInts parses "all" (nil) or a comma-separated list of non-negative
// integers.
func allOrInts(s, name string) ([]int, error) {
	if strings.TrimSpace(s) == "all" || strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var v []int
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x < 0 {
			return nil, usageError{fmt.Sprintf("--%s: bad index %q (want all or non-negative integers)", name, strings.TrimSpace(f))}
		}
		v = append(v, x)
	}
	return v, nil
}
