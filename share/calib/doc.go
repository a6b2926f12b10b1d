// Package calib holds the GPU-free mathematics of the SharePrefill offline
// phase (docs/algorithm.md#calibration): pooling exact block attention maps to a fixed
// grid, a small autoencoder that compresses the pooled maps to 64-d codes,
// agglomerative clustering of the L2-normalised codes (or, as an ablation, of
// the pooled maps themselves), the adjusted Rand index, the shared-cluster
// selection and the Jaccard sanity check.
//
// The package is pure Go (gonum for dense linear algebra), deterministic for a
// fixed seed, and independent of package share: it defines its own small
// types (HeadID, HeadMap, BlockSet, Cluster) that the cluster-file writer maps
// onto the JSON format of docs/algorithm.md#cluster-file.
//
// Pipeline (Calibrate):
//
//	exact nb×nb block maps → Pool (grid×grid, lower triangle, scaled to [0,1])
//	  → autoencoder codes (Representation "autoencoder") or pooled vectors ("pooled")
//	  → L2 normalisation → agglomerative clustering (ward | average | complete)
//	  → cut (threshold or target count) → clusters smaller than MinSize become noise.
//
// Design choices [project]:
//
//   - Grid 32 by default: area averaging handles any nb (larger or smaller
//     than the grid); only the 528 lower-triangle cells are used as features.
//   - Dense MLP autoencoder (528 → 256 ReLU → 64 linear → 256 ReLU → 528
//     sigmoid) instead of the third-party conv net: at grid 32 its
//     bottleneck would be 32×2×2 after two 4× max-pools, so it buys little;
//     the MLP is a handful of gonum matrix products per batch, easy to
//     gradient-check, and trains on 1000 maps at about 0.2 s per epoch.
//   - Ward linkage by default (SciPy height convention), because thresholds
//     such as 10 or 40 only make sense for size-dependent merge costs.
//   - Determinism: seeded PCG for initialisation and shuffling, gonum's
//     Dgemm sums each output block in a fixed order, the NN-chain clustering
//     breaks ties by index, and the input is sorted by (layer, head) first.
package calib
