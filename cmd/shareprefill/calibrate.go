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

	"github.com/shareprefill/shareprefill/share"
	"github.com/shareprefill/shareprefill/share/calib"
	"github.com/shareprefill/shareprefill/share/calibrate"
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
	out := fs.String("out", "clusters.json", "cluster file to write (atomically)")
	device := fs.String("device", "", "Vulkan device index or name")
	length := fs.Int("length", 0, "calibration prompt length in tokens (default: the model's context, at most 8192)")
	block := fs.Int("block", 128, "block size of the attention maps, in tokens")
	prompts := fs.Int("prompts", 3, "prompts whose maps are averaged for clustering")
	holdout := fs.Int("holdout", 2, "held-out prompts for choosing the shared clusters")
	repr := fs.String("representation", calib.RepresentationAutoencoder, "autoencoder, or pooled (the ablation without the autoencoder)")
	grid := fs.Int("grid", calib.DefaultGrid, "pooled map grid (maps are area-averaged to grid×grid)")
	linkage := fs.String("linkage", calib.LinkageWard, "agglomerative linkage: ward, average or complete")
	threshold := fs.Float64("threshold", 0, "cut the dendrogram at this height (instead of --target-clusters)")
	target := fs.Int("target-clusters", 0, "cut to this many clusters (default: about one per 24 heads)")
	minSize := fs.Int("min-size", 2, "smaller clusters become unclustered heads")
	epochs := fs.Int("epochs", 0, "autoencoder epochs at most (default 200)")
	budget := fs.Duration("time-budget", 5*time.Minute, "autoencoder training time budget")
	seed := fs.Uint64("seed", 1, "autoencoder seed (the same seed gives the same clusters)")
	gamma := fs.Float64("gamma", 0.9, "cumulative threshold of the pivot patterns for the selection")
	kappa := fs.Float64("kappa", 0.9, "a cluster is shared when its members keep at least this mass")
	minGain := fs.Float64("min-gain", 0.02, "... and gain at least this over their own vertical-slash sets")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(data) == 0 {
		return usageError{"--data FILE is required (text to calibrate on, e.g. a few long documents from the target domain)"}
	}
	if *threshold > 0 && *target > 0 {
		return usageError{"give --threshold or --target-clusters, not both"}
	}
	co := calib.DefaultOptions(*target)
	co.Representation = *repr
	co.Linkage = *linkage
	co.Threshold = *threshold
	co.MinSize = *minSize
	co.Pool.Grid = *grid
	co.AE.Seed = *seed
	co.AE.MaxDuration = *budget
	if *epochs > 0 {
		co.AE.MaxEpochs = *epochs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := newProgressBar(stderr)
	opts := calibrate.Options{
		Model: *modelDir, Device: *device, Data: data, Length: *length, Block: *block,
		Prompts: *prompts, Holdout: *holdout, Calib: co,
		Select:   calib.SelectOptions{Gamma: *gamma, Kappa: *kappa, MinGain: *minGain},
		Progress: bar.update,
	}
	maxEpochs := co.AE.MaxEpochs
	if maxEpochs == 0 {
		maxEpochs = calib.DefaultAEOptions().MaxEpochs
	}
	opts.AEProgress = func(epoch int, train, val float64) {
		bar.update(fmt.Sprintf("autoencoder %.4f", val), epoch+1, maxEpochs)
	}
	if *target == 0 && *threshold == 0 {
		// Resolved after the model is known: about one cluster per 24 heads, at least 2.
		opts.Calib.TargetClusters = -1
	}
	cf, rep, err := runCalibrateDefaults(ctx, opts)
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

// runCalibrateDefaults fills the model-dependent default cluster count.
func runCalibrateDefaults(ctx context.Context, opts calibrate.Options) (*share.ClusterFile, *calibrate.Report, error) {
	if opts.Calib.TargetClusters == -1 {
		opts.Calib.TargetClusters = 0
		opts.AutoTarget = true
	}
	return calibrate.Run(ctx, opts)
}
