package harness

import (
	"encoding/json"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// z95 is the standard normal quantile of 0.975.
const z95 = 1.959963984540054

// Interval is a two-sided 95 % confidence interval. An undefined bound
// (NaN, for example from a single window) is null in JSON, and null reads
// back as NaN.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// MarshalJSON writes the bounds, with null for a bound that is not finite
// (encoding/json refuses NaN and infinities, which would lose the report).
func (iv Interval) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Lo *float64 `json:"lo"`
		Hi *float64 `json:"hi"`
	}{finiteOrNil(iv.Lo), finiteOrNil(iv.Hi)})
}

// UnmarshalJSON reads what MarshalJSON writes (null: NaN).
func (iv *Interval) UnmarshalJSON(b []byte) error {
	var v struct {
		Lo *float64 `json:"lo"`
		Hi *float64 `json:"hi"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	iv.Lo, iv.Hi = math.NaN(), math.NaN()
	if v.Lo != nil {
		iv.Lo = *v.Lo
	}
	if v.Hi != nil {
		iv.Hi = *v.Hi
	}
	return nil
}

func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// Wilson returns the Wilson score 95 % interval of a proportion of k
// successes in n trials:
// (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z = 1.95996.
// n = 0 gives [0, 1].
func Wilson(k, n int) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	p := float64(k) / float64(n)
	nn := float64(n)
	z2 := z95 * z95
	den := 1 + z2/nn
	c := (p + z2/(2*nn)) / den
	h := z95 / den * math.Sqrt(p*(1-p)/nn+z2/(4*nn*nn))
	return Interval{max(0, c-h), min(1, c+h)}
}

// McNemarExact returns the two-sided p-value of McNemar's exact test on
// paired binary outcomes with b and c discordant pairs (one method right
// and the other wrong, and the reverse): under the null each discordant
// pair goes either way with probability ½, so
// p = min(1, 2·P(X ≤ min(b, c))), X ~ Binomial(b + c, ½). No discordant
// pair gives p = 1.
func McNemarExact(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	k := min(b, c)
	// Σ_{i ≤ k} C(n, i) / 2^n in log space.
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	var s float64
	for i := 0; i <= k; i++ {
		s += math.Exp(lg(n) - lg(i) - lg(n-i) - float64(n)*math.Ln2)
	}
	return min(1, 2*s)
}

// TQuantile returns the p-quantile of Student's t distribution with df
// degrees of freedom (df ≥ 1).
func TQuantile(p float64, df int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile(p)
}

// MeanCI returns the mean of xs and its two-sided 95 % Student-t interval,
// mean ± t(0.975, n−1)·s/√n, s the sample standard deviation. One value
// gives an interval of NaN (no spread to estimate); none gives NaNs.
func MeanCI(xs []float64) (mean float64, ci Interval) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), Interval{math.NaN(), math.NaN()}
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	if n == 1 {
		return mean, Interval{math.NaN(), math.NaN()}
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	h := TQuantile(0.975, n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
	return mean, Interval{mean - h, mean + h}
}

// RatioCI returns Σsum/Σcount over clusters (e.g. the NLL summed over the
// scored tokens of each window, and their number) with a cluster-robust
// 95 % interval: the clusters are the independent units, so the standard
// error is √(G/(G−1)·Σ_g (sum_g − r·count_g)²) / Σcount, with G clusters,
// and the t quantile has G−1 degrees of freedom.
func RatioCI(sums, counts []float64) (ratio float64, ci Interval) {
	g := len(sums)
	if g == 0 || g != len(counts) {
		return math.NaN(), Interval{math.NaN(), math.NaN()}
	}
	var s, c float64
	for i := range sums {
		s += sums[i]
		c += counts[i]
	}
	ratio = s / c
	if g == 1 {
		return ratio, Interval{math.NaN(), math.NaN()}
	}
	var ss float64
	for i := range sums {
		d := sums[i] - ratio*counts[i]
		ss += d * d
	}
	h := TQuantile(0.975, g-1) * math.Sqrt(float64(g)/float64(g-1)*ss) / c
	return ratio, Interval{ratio - h, ratio + h}
}
