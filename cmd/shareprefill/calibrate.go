package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shareprefill/shareprefill/cmd/shareprefill/internal/calibrate"
	"github.com/shareprefill/shareprefill/internal/outpath"
	"github.com/shareprefill/shareprefill/share"
	"github.com/shareprefill/shareprefill/share/calib"
)

// listFlag collects repeated (or comma-separated) flag values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runCalibrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("calibrate", stderr)
	var data listFlag
	fs.Var(&data, "data", "calibration text file (repeat or comma-separate for several)")
	modelDir := fs.String("model", "", "Hugging Face model directory (default: the embedded stories260K)")
	out := fs.String("out", "clusters.json", "cluster file to write (atomically); not an input, not in the model directory")
	force := forceFlag(fs)
	device := fs.String("device", "", "Vulkan device index or name")
	length := fs.Int("length", 0, "calibration prompt length in tokens, at least 2 blocks (0: the model's context, at most 8192)")
	block := fs.Int("block", calibrate.DefaultBlock, fmt.Sprintf("block size of the attention maps, in tokens (1 to %d)", calibrate.MaxBlock))
	prompts := fs.Int("prompts", calibrate.DefaultPrompts, "prompts whose maps are averaged for clustering (≥ 1)")
	holdout := fs.Int("holdout", calibrate.DefaultHoldout, "held-out prompts for choosing the shared clusters (≥ 1)")
	repr := fs.String("representation", calib.RepresentationAutoencoder, "autoencoder, or pooled (the ablation without the autoencoder)")
	grid := fs.Int("grid", calib.DefaultGrid, "pooled map grid (maps are area-averaged to grid×grid; ≥ 1)")
	linkage := fs.String("linkage", calib.LinkageWard, "agglomerative linkage: ward, average or complete")
	threshold := fs.Float64("threshold", 0, "cut the dendrogram at this height (instead of --target-clusters)")
	target := fs.Int("target-clusters", 0, "cut to this many clusters, at most the model's heads (default: about one per 24 heads)")
	minSize := fs.Int("min-size", 2, "smaller clusters become unclustered heads (≥ 1)")
	epochs := fs.Int("epochs", calib.DefaultAEOptions().MaxEpochs, "autoencoder epochs at most (≥ 1)")
	budget := fs.Duration("time-budget", 5*time.Minute, "autoencoder training time budget (0: none)")
	seed := fs.Uint64("seed", 1, "autoencoder seed (the same seed gives the same clusters)")
	gamma := fs.Float64("gamma", 0.9, "cumulative threshold of the pivot patterns for the selection (0 < γ ≤ 1)")
	kappa := fs.Float64("kappa", 0.9, "a cluster is shared when its members keep at least this mass (0 < κ ≤ 1)")
	minGain := fs.Float64("min-gain", 0.02, "... and gain at least this over their own vertical-slash sets (-1 ≤ g ≤ 1, not 0)")
	if err := parse(fs, args); err != nil {
		return err
	}
	co := calib.DefaultOptions(*target)
	co.Representation = *repr
	co.Linkage = *linkage
	co.Threshold = *threshold
	co.MinSize = *minSize
	co.Pool.Grid = *grid
	co.AE.Seed = *seed
	co.AE.MaxDuration = *budget
	co.AE.MaxEpochs = *epochs
	bar := newProgressBar(stderr)
	opts := calibrate.Options{
		Model: *modelDir, Device: *device, Data: data, Length: *length, Block: *block,
		Prompts: *prompts, Holdout: *holdout, Calib: co,
		Select:   calib.SelectOptions{Gamma: *gamma, Kappa: *kappa, MinGain: *minGain},
		Progress: bar.update,
		// Neither --threshold nor --target-clusters: resolved once the
		// model is known, about one cluster per 24 heads, at least 2.
		AutoTarget: *target == 0 && *threshold == 0,
	}
	// Every value is checked before the model is loaded: the flags alone,
	// then the cluster count against the model's configuration, the
	// device, and the output path.
	if err := opts.Validate(nil); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := calibrate.ModelConfig(*modelDir)
	if err != nil {
		return err
	}
	if err := opts.Validate(cfg); err != nil {
		return usageError{err.Error()}
	}
	if err := checkDevice(*device); err != nil {
		return err
	}
	var inputs []outpath.Named
	for _, d := range data {
		inputs = append(inputs, outpath.Named{Flag: "--data", Path: d})
	}
	if err := checkOutputs(outpath.Spec{Flag: "--out", Path: *out, Force: *force,
		Inputs: append(inputs, modelInput(*modelDir)...), Protected: modelInput(*modelDir),
		Ours: isClusterFile, What: "a cluster file"}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts.AEProgress = func(epoch int, train, val float64) {
		bar.update(fmt.Sprintf("autoencoder %.4f", val), epoch+1, co.AE.MaxEpochs)
	}
	cf, rep, err := calibrate.Run(ctx, opts)
	bar.clear()
	if err != nil {
		return err
	}
	if err := share.WriteClusters(*out, cf); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d clusters (%d shared), %d unclustered heads; maps %v, clustering %v\n",
		*out, len(cf.Clusters), len(cf.SharedClusters), len(cf.Meta.Noise), rep.Collect.Round(time.Millisecond), rep.Cluster.Round(time.Millisecond))
	if tr := rep.Result.Training; tr != nil {
		fmt.Fprintf(stdout, "autoencoder: %d epochs (best %d, loss %.5f), stopped: %s\n", tr.Epochs, tr.BestEpoch, tr.BestLoss, tr.StopReason)
	}
	fmt.Fprintf(stdout, "Jaccard of γ patterns: within clusters %.3f, across %.3f\n\n", rep.Jaccard.Within, rep.Jaccard.Across)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "cluster\tmembers\tpivot\tkeep\tvs\tgain\tdensity\tshared")
	for _, s := range rep.Selection {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.3f\t%.3f\t%+.3f\t%.3f\t%v\n", s.ID, len(cf.Clusters[fmt.Sprint(s.ID)]), s.Pivot, s.Keep, s.VS, s.Gain, s.Dens, s.Shared)
	}
	return tw.Flush()
}
