// Package calib holds the GPU-free mathematics of the SharePrefill offline
// phase (shareprefill.md §7): pooling exact block attention maps to a fixed
// grid, a small autoencoder that compresses the pooled maps to 64-d codes,
// agglomerative clustering of the L2-normalised codes (or, as an ablation, of
// the pooled maps themselves), the adjusted Rand index, the shared-cluster
// selection of §7.2 step 6 and the Jaccard sanity check of §7.2 step 7.
//
// The package is pure Go (gonum for dense linear algebra), deterministic for a
// fixed seed, and independent of package share: it defines its own small
// types (HeadID, HeadMap, BlockSet, Cluster) that the cluster-file writer maps
// onto the §8 JSON format.
//
// Pipeline (Calibrate):
//
//	exact nb×nb block maps → Pool (grid×grid, lower triangle, scaled to [0,1])
//	  → autoencoder codes (Representation "autoencoder") or pooled vectors ("pooled")
//	  → L2 normalisation → agglomerative clustering (ward | average | complete)
//	  → cut (threshold or target count) → clusters smaller than MinSize become noise.
package calib
