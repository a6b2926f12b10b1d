package calib

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// testAE is a small, fast autoencoder configuration for tests.
func testAE(seed uint64) AEOptions {
	return AEOptions{Hidden: 64, Latent: 16, MaxEpochs: 40, BatchSize: 8, Seed: seed}
}

func truthLabels(res *Result, truth map[HeadID]int) []int {
	want := make([]int, len(res.Heads))
	for i, h := range res.Heads {
		want[i] = truth[h]
	}
	return want
}

// TestCalibrateRecoversFamilies plants six pattern families (20 noisy
// members each, nb 40–139, jittered parameters) in three independent data
// sets and requires ARI ≥ 0.9 against the truth for both representations.
func TestCalibrateRecoversFamilies(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"autoencoder ward", Options{Representation: RepresentationAutoencoder, AE: testAE(1)}},
		{"autoencoder ward other seed", Options{Representation: RepresentationAutoencoder, AE: testAE(7)}},
		{"autoencoder ward default width grid 16", Options{Representation: RepresentationAutoencoder, Pool: PoolOptions{Grid: 16}, AE: AEOptions{MaxEpochs: 30, Seed: 2}}},
		{"autoencoder average sqrt", Options{Representation: RepresentationAutoencoder, Linkage: LinkageAverage, Pool: PoolOptions{Sqrt: true}, AE: testAE(3)}},
		{"pooled ward", Options{Representation: RepresentationPooled}},
		{"pooled average", Options{Representation: RepresentationPooled, Linkage: LinkageAverage, Pool: PoolOptions{Sqrt: true}}},
		{"pooled ward sqrt", Options{Representation: RepresentationPooled, Pool: PoolOptions{Sqrt: true}}},
	}
	for _, data := range []uint64{1, 2, 3} {
		maps, truth := synthHeads(20, data)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("data %d %s", data, tc.name), func(t *testing.T) {
				o := tc.opts
				o.TargetClusters, o.MinSize = numFamilies, 1
				res, err := Calibrate(context.Background(), maps, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				ari, err := AdjustedRandIndex(truthLabels(res, truth), res.Labels)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("ARI %.3f", ari)
				if ari < 0.9 {
					t.Errorf("ARI %.3f < 0.9", ari)
				}
				if len(res.Clusters) != numFamilies || len(res.Noise) != 0 {
					t.Errorf("%d clusters, %d noise", len(res.Clusters), len(res.Noise))
				}
				if o.Representation == RepresentationAutoencoder {
					tr := res.Training
					if tr == nil || !(tr.BestLoss < tr.ValLoss[0]) || !(tr.TrainLoss[len(tr.TrainLoss)-1] < tr.TrainLoss[0]/2) {
						t.Errorf("autoencoder loss did not fall: %+v", tr)
					}
				}
			})
		}
	}
}

func TestCalibrateDeterministic(t *testing.T) {
	maps, _ := synthHeads(8, 5)
	opts := Options{AE: testAE(42), TargetClusters: numFamilies}
	a, err := Calibrate(context.Background(), maps, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Same seed, input in another order: identical output.
	shuffled := slices.Clone(maps)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, err := Calibrate(context.Background(), shuffled, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Labels, b.Labels) || !slices.EqualFunc(a.Vectors, b.Vectors, slices.Equal) {
		t.Fatal("same seed gave different results")
	}
	if !slices.Equal(a.Dendrogram.Merges, b.Dendrogram.Merges) {
		t.Fatal("same seed gave different dendrograms")
	}
	ja, _ := json.Marshal(a.Clusters)
	jb, _ := json.Marshal(b.Clusters)
	if string(ja) != string(jb) {
		t.Fatal("cluster lists differ")
	}
}

// TestCalibrateMinSizeNoise adds two heads of a seventh pattern; cut to
// seven clusters with a minimum size of 5, they become noise.
func TestCalibrateMinSizeNoise(t *testing.T) {
	maps, truth := synthHeads(10, 8)
	rng := rand.New(rand.NewPCG(3, 3))
	var odd []HeadID
	for i := range 2 {
		const nb = 64
		m := make([]float32, nb*nb)
		for r := range nb {
			// Nearly all mass on column r/2: a line of slope ½ that no family has.
			c := r / 2
			m[r*nb+c] = float32(0.95 + 0.05*rng.Float64())
			m[r*nb+r] += 1 - m[r*nb+c]
		}
		id := HeadID{Layer: 99, Head: i}
		maps = append(maps, HeadMap{ID: id, NB: nb, Data: m})
		odd = append(odd, id)
	}
	res, err := Calibrate(context.Background(), maps, Options{Representation: RepresentationPooled, TargetClusters: numFamilies + 1, MinSize: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Noise, odd) {
		t.Fatalf("noise %v, want %v", res.Noise, odd)
	}
	if len(res.Clusters) != numFamilies {
		t.Fatalf("%d clusters", len(res.Clusters))
	}
	var clean []int
	var want []int
	for i, l := range res.Labels {
		if l != Noise {
			clean = append(clean, l)
			want = append(want, truth[res.Heads[i]])
		}
	}
	if ari, _ := AdjustedRandIndex(want, clean); ari < 0.9 {
		t.Errorf("ARI without noise %.3f", ari)
	}
	m := res.Meta.Clustering
	if m.NumNoise != 2 || m.NumClusters != numFamilies || m.MinSize != 5 || !m.L2Normalise || m.Linkage != LinkageWard {
		t.Errorf("meta %+v", m)
	}
	if res.Meta.Representation.Kind != RepresentationPooled || res.Meta.Representation.MapSize != 0 || res.Training != nil {
		t.Errorf("representation meta %+v", res.Meta.Representation)
	}
}

// TestCalibrateStructure checks numbering, ordering and the threshold cut.
func TestCalibrateStructure(t *testing.T) {
	maps, _ := synthHeads(6, 13)
	base := Options{Representation: RepresentationPooled, MinSize: 1}
	byCount := base
	byCount.TargetClusters = numFamilies
	rc, err := Calibrate(context.Background(), maps, byCount, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A threshold between the heights that separate 6 from 5 clusters gives
	// the same partition.
	n := len(maps)
	mg := rc.Dendrogram.Merges
	byThr := base
	byThr.Threshold = (mg[n-numFamilies-1].Height + mg[n-numFamilies].Height) / 2
	rt, err := Calibrate(context.Background(), maps, byThr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rc.Labels, rt.Labels) {
		t.Fatalf("threshold cut %v differs from count cut %v", rt.Labels, rc.Labels)
	}
	seen := map[HeadID]bool{}
	for i, c := range rc.Clusters {
		if c.ID != i+1 {
			t.Fatalf("cluster %d has id %d", i, c.ID)
		}
		if !slices.IsSortedFunc(c.Members, HeadID.Compare) {
			t.Fatalf("cluster %d members unsorted", c.ID)
		}
		if i > 0 && rc.Clusters[i-1].Members[0].Compare(c.Members[0]) >= 0 {
			t.Fatalf("clusters not in order of first member")
		}
		for _, h := range c.Members {
			if seen[h] {
				t.Fatalf("head %v twice", h)
			}
			seen[h] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d heads clustered, want %d", len(seen), n)
	}
	js, err := json.Marshal(rc.Meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"representation"`, `"clustering"`, `"linkage":"ward"`, `"target_clusters":6`, `"grid":32`, `"scale":"max"`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("meta JSON %s lacks %s", js, key)
		}
	}
}

func TestCalibrateProgressAndMeta(t *testing.T) {
	maps, _ := synthHeads(4, 17)
	epochs := 0
	res, err := Calibrate(context.Background(), maps, Options{AE: AEOptions{Hidden: 16, Latent: 8, MaxEpochs: 5, Seed: 9}, Threshold: 1.5}, func(e int, tr, va float64) { epochs = e })
	if err != nil {
		t.Fatal(err)
	}
	r := res.Meta.Representation
	if epochs != 5 || r.Epochs != 5 || r.LatentDim != 8 || r.Hidden != 16 || r.Seed != 9 || r.Kind != RepresentationAutoencoder || res.Autoencoder == nil {
		t.Errorf("epochs %d, meta %+v", epochs, r)
	}
	for _, v := range res.Vectors {
		if len(v) != 8 {
			t.Fatalf("vector length %d", len(v))
		}
	}
}

func TestCalibrateErrors(t *testing.T) {
	maps, _ := synthHeads(2, 1)
	dup := append(slices.Clone(maps), maps[0])
	bad := slices.Clone(maps)
	bad[0].Data = bad[0].Data[:5]
	neg := slices.Clone(maps)
	neg[1].Data = slices.Clone(neg[1].Data)
	neg[1].Data[0] = -1
	tests := []struct {
		name string
		maps []HeadMap
		opts Options
	}{
		{"no maps", nil, Options{TargetClusters: 2}},
		{"no cut", maps, Options{}},
		{"both cuts", maps, Options{TargetClusters: 2, Threshold: 1}},
		{"too many clusters", maps, Options{TargetClusters: 100}},
		{"bad representation", maps, Options{TargetClusters: 2, Representation: "pca"}},
		{"bad linkage", maps, Options{TargetClusters: 2, Linkage: "single", Representation: RepresentationPooled}},
		{"negative min size", maps, Options{TargetClusters: 2, MinSize: -1}},
		{"duplicate head", dup, Options{TargetClusters: 2, Representation: RepresentationPooled}},
		{"bad shape", bad, Options{TargetClusters: 2, Representation: RepresentationPooled}},
		{"negative value", neg, Options{TargetClusters: 2, Representation: RepresentationPooled}},
	}
	for _, tc := range tests {
		if _, err := Calibrate(context.Background(), tc.maps, tc.opts, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if !strings.HasPrefix(err.Error(), "calibrate: ") {
			t.Errorf("%s: error %q lacks context", tc.name, err)
		}
	}
}
