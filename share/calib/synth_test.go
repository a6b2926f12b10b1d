package calib

import (
	"math"
	"math/rand/v2"
)

// Synthetic pattern families used by the recovery tests. Each family is a
// recognisable attention structure; members differ in nb and noise.
const (
	famSinkNarrow = iota // sink column + narrow local window
	famSinkWide          // sink column + wide local window
	famVertical          // vertical stripes at fixed relative columns + diagonal
	famSlash             // diagonal band + a second slash band
	famBlockDiag         // block-diagonal segments
	famUniform           // uniform over the causal triangle
	numFamilies
)

// synthMap builds a row-normalised nb×nb lower-triangular block map of the
// given family with multiplicative log-normal noise of strength sigma. Every
// member also jitters its family's parameters (window width ±30 %, sink
// strength 1–3).
func synthMap(fam, nb int, sigma float64, rng *rand.Rand) []float32 {
	m := make([]float32, nb*nb)
	jit := 0.7 + 0.6*rng.Float64()
	sink := 1 + 2*rng.Float64()
	rel := func(f float64) int { return int(math.Round(f * float64(nb))) }
	for r := range nb {
		w := make([]float64, r+1)
		for c := 0; c <= r; c++ {
			v := 0.002
			o := r - c
			switch fam {
			case famSinkNarrow:
				if c == 0 {
					v += sink
				}
				if o < max(1, rel(0.04*jit)) {
					v += 1
				}
			case famSinkWide:
				if c == 0 {
					v += sink
				}
				if o < rel(0.2*jit) {
					v += 1
				}
			case famVertical:
				if c1, c2 := rel(0.3), rel(0.6); c == c1 || c == c2 || c == c1+1 || c == c2+1 {
					v += 3
				}
				if o == 0 {
					v += 1
				}
			case famSlash:
				if o == 0 {
					v += 1
				}
				if o >= rel(0.2) && o < rel(0.2)+2 {
					v += 1
				}
			case famBlockDiag:
				seg := max(1, nb/4)
				if c/seg == r/seg {
					v += 1
				}
			case famUniform:
				v += 1
			}
			w[c] = v * math.Exp(sigma*rng.NormFloat64())
		}
		s := 0.0
		for _, v := range w {
			s += v
		}
		for c, v := range w {
			m[r*nb+c] = float32(v / s)
		}
	}
	return m
}

// synthHeads returns perFam noisy members of every family, laid out on
// (layer, head) ids in shuffled order, and the true family of each map.
func synthHeads(perFam int, seed uint64) ([]HeadMap, map[HeadID]int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := perFam * numFamilies
	fams := make([]int, n)
	for i := range fams {
		fams[i] = i % numFamilies
	}
	rng.Shuffle(n, func(i, j int) { fams[i], fams[j] = fams[j], fams[i] })
	const headsPerLayer = 16
	maps := make([]HeadMap, n)
	truth := map[HeadID]int{}
	for i, f := range fams {
		nb := 40 + rng.IntN(100)
		sigma := 0.2 + 0.8*rng.Float64()
		id := HeadID{Layer: i / headsPerLayer, Head: i % headsPerLayer}
		maps[i] = HeadMap{ID: id, NB: nb, Data: synthMap(f, nb, sigma, rng)}
		truth[id] = f
	}
	return maps, truth
}
