package calib

import (
	"context"
	"testing"
)

// BenchmarkAEEpoch1020 measures one training epoch of the default
// autoencoder (grid 32, hidden 256, latent 64, batch 32) on 1020 maps.
func BenchmarkAEEpoch1020(b *testing.B) {
	maps, _ := synthHeads(170, 1)
	data := make([][]float64, len(maps))
	for i, m := range maps {
		p, err := Pool(m.Data, m.NB, PoolOptions{})
		if err != nil {
			b.Fatal(err)
		}
		data[i] = lowerTriangle(p, DefaultGrid)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := TrainAutoencoder(context.Background(), data, AEOptions{MaxEpochs: 1, Seed: 1}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLinkageWard1024 measures Ward clustering of 1024 64-d codes.
func BenchmarkLinkageWard1024(b *testing.B) {
	maps, _ := synthHeads(171, 2)
	x := make([][]float64, 1024)
	for i := range x {
		p, err := Pool(maps[i].Data, maps[i].NB, PoolOptions{Grid: 8})
		if err != nil {
			b.Fatal(err)
		}
		x[i] = p[:64]
	}
	x = L2Normalise(x)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Linkage(x, LinkageWard); err != nil {
			b.Fatal(err)
		}
	}
}
