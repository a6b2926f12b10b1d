package calib

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Representations accepted in Options.Representation.
const (
	// RepresentationAutoencoder clusters the autoencoder's latent codes
	// (docs/algorithm.md#representation). The default.
	RepresentationAutoencoder = "autoencoder"
	// RepresentationPooled clusters the pooled maps directly: the ablation
	// without the autoencoder.
	RepresentationPooled = "pooled"
)

// Options configures Calibrate. Zero fields take the defaults in comments;
// exactly one of Threshold and TargetClusters must be set.
type Options struct {
	Pool           PoolOptions // pooling; default grid 32, max scaling, no √
	Representation string      // RepresentationAutoencoder (default) or RepresentationPooled
	AE             AEOptions   // autoencoder (ignored for RepresentationPooled)
	Linkage        string      // LinkageWard (default), LinkageAverage or LinkageComplete
	Threshold      float64     // cut the dendrogram at this height (merges of height ≤ Threshold are kept)
	TargetClusters int         // or cut to exactly this many clusters before the min-size rule
	MinSize        int         // clusters with fewer members become noise; default 2, 1 keeps all
}

// DefaultOptions returns the defaults with a target of k clusters (the
// release file has 44 for 1024 heads).
func DefaultOptions(k int) Options {
	return Options{
		Pool:           PoolOptions{}.withDefaults(),
		Representation: RepresentationAutoencoder,
		AE:             DefaultAEOptions(),
		Linkage:        LinkageWard,
		TargetClusters: k,
		MinSize:        2,
	}
}

func (o Options) withDefaults() Options {
	o.Pool = o.Pool.withDefaults()
	if o.Representation == "" {
		o.Representation = RepresentationAutoencoder
	}
	o.AE = o.AE.withDefaults()
	if o.Linkage == "" {
		o.Linkage = LinkageWard
	}
	if o.MinSize == 0 {
		o.MinSize = 2
	}
	return o
}

func (o Options) validate() error {
	if err := o.Pool.validate(); err != nil {
		return err
	}
	switch o.Representation {
	case RepresentationAutoencoder:
		if err := o.AE.validate(); err != nil {
			return err
		}
	case RepresentationPooled:
	default:
		return fmt.Errorf("representation %q: want %q or %q", o.Representation, RepresentationAutoencoder, RepresentationPooled)
	}
	switch {
	case o.Threshold < 0 || o.TargetClusters < 0:
		return fmt.Errorf("threshold %g and target clusters %d must be ≥ 0", o.Threshold, o.TargetClusters)
	case o.Threshold > 0 && o.TargetClusters > 0:
		return errors.New("set either a threshold or a target cluster count, not both")
	case o.Threshold == 0 && o.TargetClusters == 0:
		return errors.New("set a threshold or a target cluster count")
	case o.MinSize < 1:
		return fmt.Errorf("min size %d must be ≥ 1", o.MinSize)
	}
	return nil
}

// RepresentationMeta describes the vectors that were clustered; it maps
// onto the "representation" object of the cluster file's meta
// (docs/algorithm.md#cluster-file). The token block size ("map_block") is
// not known here and is added by the caller.
type RepresentationMeta struct {
	Kind      string  `json:"kind"`                 // "autoencoder" or "pooled"
	MapSize   int     `json:"map_size"`             // nb of the input maps; 0 when they differ
	Grid      int     `json:"grid"`                 // side of the pooled map
	Scale     string  `json:"scale"`                // "max" or "none"
	Sqrt      bool    `json:"sqrt"`                 // √x applied before scaling
	LatentDim int     `json:"latent_dim,omitempty"` // autoencoder code size
	Hidden    int     `json:"hidden,omitempty"`     // autoencoder hidden width
	Seed      uint64  `json:"seed"`                 // autoencoder seed
	Epochs    int     `json:"epochs,omitempty"`     // epochs trained
	BestEpoch int     `json:"best_epoch,omitempty"` // epoch whose weights were used
	BestLoss  float64 `json:"best_loss,omitempty"`  // monitored MSE at BestEpoch
}

// ClusteringMeta maps onto the "clustering" object of the cluster file's
// meta (docs/algorithm.md#cluster-file).
type ClusteringMeta struct {
	Linkage        string  `json:"linkage"`
	Threshold      float64 `json:"threshold,omitempty"`
	TargetClusters int     `json:"target_clusters,omitempty"`
	MinSize        int     `json:"min_size"`
	L2Normalise    bool    `json:"l2_normalise"`
	NumClusters    int     `json:"num_clusters"` // clusters after the min-size rule
	NumNoise       int     `json:"num_noise"`    // heads left as noise
}

// Meta collects the parameters the cluster file's meta needs.
type Meta struct {
	Representation RepresentationMeta `json:"representation"`
	Clustering     ClusteringMeta     `json:"clustering"`
}

// Result is the outcome of Calibrate.
type Result struct {
	// Clusters are numbered 1…K in (layer, head) order of their first
	// member; members are sorted the same way.
	Clusters []Cluster
	// Noise lists the heads in no cluster, sorted.
	Noise []HeadID
	// Heads are the input heads sorted by (layer, head); Labels[i] is the
	// 0-based cluster index of Heads[i] (Clusters[Labels[i]]) or Noise.
	Heads  []HeadID
	Labels []int
	// Vectors are the L2-normalised vectors that were clustered, one per
	// entry of Heads.
	Vectors [][]float64
	// Dendrogram is the full hierarchy before the cut.
	Dendrogram *Dendrogram
	// Training is the autoencoder report (nil for RepresentationPooled).
	Training *TrainReport
	// Autoencoder is the trained model (nil for RepresentationPooled).
	Autoencoder *Autoencoder
	// Meta holds the parameters used.
	Meta Meta
}

// Calibrate runs the offline pipeline of docs/algorithm.md#calibration
// (pooling, representation, clustering) on one exact block map per
// (layer, query head): pool → autoencoder codes (or the pooled vectors) →
// L2 normalisation → agglomerative clustering → cut → min-size rule. The maps may have different nb. progress, if non-nil,
// receives one call per autoencoder epoch. ctx bounds the training (see
// TrainAutoencoder); the clustering itself is not interruptible and takes
// well under a second for 1024 heads.
func Calibrate(ctx context.Context, maps []HeadMap, opts Options, progress ProgressFunc) (*Result, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	if len(maps) == 0 {
		return nil, errors.New("calibrate: no maps")
	}
	sorted := slices.Clone(maps)
	slices.SortStableFunc(sorted, func(a, b HeadMap) int { return a.ID.Compare(b.ID) })
	mapSize := sorted[0].NB
	for i, m := range sorted {
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if i > 0 && m.ID == sorted[i-1].ID {
			return nil, fmt.Errorf("calibrate: head %v appears twice", m.ID)
		}
		if m.NB != mapSize {
			mapSize = 0
		}
	}
	if opts.TargetClusters > len(sorted) {
		return nil, fmt.Errorf("calibrate: %d target clusters for %d heads", opts.TargetClusters, len(sorted))
	}
	g := opts.Pool.Grid
	pooled := make([][]float64, len(sorted))
	heads := make([]HeadID, len(sorted))
	for i, m := range sorted {
		p, err := Pool(m.Data, m.NB, opts.Pool)
		if err != nil {
			return nil, fmt.Errorf("calibrate: head %v: %w", m.ID, err)
		}
		pooled[i] = lowerTriangle(p, g)
		heads[i] = m.ID
	}
	res := &Result{Heads: heads}
	rm := RepresentationMeta{Kind: opts.Representation, MapSize: mapSize, Grid: g, Scale: opts.Pool.Scale, Sqrt: opts.Pool.Sqrt}
	vecs := pooled
	if opts.Representation == RepresentationAutoencoder {
		ae, rep, err := TrainAutoencoder(ctx, pooled, opts.AE, progress)
		if err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if vecs, err = ae.Encode(pooled); err != nil {
			return nil, fmt.Errorf("calibrate: encode: %w", err)
		}
		res.Training, res.Autoencoder = rep, ae
		rm.LatentDim, rm.Hidden, rm.Seed = ae.Latent, ae.Hidden, opts.AE.Seed
		rm.Epochs, rm.BestEpoch, rm.BestLoss = rep.Epochs, rep.BestEpoch, rep.BestLoss
	}
	res.Vectors = L2Normalise(vecs)
	dg, err := Linkage(res.Vectors, opts.Linkage)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res.Dendrogram = dg
	var labels []int
	if opts.TargetClusters > 0 {
		if labels, err = dg.CutCount(opts.TargetClusters); err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
	} else {
		labels = dg.CutDistance(opts.Threshold)
	}
	res.Labels = ApplyMinSize(labels, opts.MinSize)
	for i, l := range res.Labels {
		if l == Noise {
			res.Noise = append(res.Noise, heads[i])
			continue
		}
		if l == len(res.Clusters) { // labels appear in order of first member
			res.Clusters = append(res.Clusters, Cluster{ID: l + 1})
		}
		res.Clusters[l].Members = append(res.Clusters[l].Members, heads[i])
	}
	res.Meta = Meta{
		Representation: rm,
		Clustering: ClusteringMeta{
			Linkage: opts.Linkage, Threshold: opts.Threshold, TargetClusters: opts.TargetClusters,
			MinSize: opts.MinSize, L2Normalise: true,
			NumClusters: len(res.Clusters), NumNoise: len(res.Noise),
		},
	}
	return res, nil
}
