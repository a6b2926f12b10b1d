package harness

import (
	"encoding/json"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestWilson against values computed by hand from the closed form.
func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		// p̂ = 0.8, n = 10: centre (0.8 + 0.19207)/1.38415 = 0.71675,
		// half-width 1.95996/1.38415·√(0.016 + 0.009604) = 0.22658.
		{8, 10, 0.49016, 0.94333},
		// k = 0, n = 20: [0, z²/(n + z²)] = [0, 3.84146/23.84146].
		{0, 20, 0, 0.16113},
		// k = n = 100: [n/(n + z²), 1] = [100/103.84146, 1].
		{100, 100, 0.96301, 1},
		// p̂ = 0.5, n = 100: 0.5 ± 1.95996/1.0384146·√(0.0025 + 0.0000960) = 0.5 ± 0.09617.
		{50, 100, 0.40383, 0.59617},
	} {
		ci := Wilson(tc.k, tc.n)
		if !near(ci.Lo, tc.lo, 5e-5) || !near(ci.Hi, tc.hi, 5e-5) {
			t.Errorf("Wilson(%d, %d) = [%.5f, %.5f], want [%.5f, %.5f]", tc.k, tc.n, ci.Lo, ci.Hi, tc.lo, tc.hi)
		}
	}
	if ci := Wilson(0, 0); ci.Lo != 0 || ci.Hi != 1 {
		t.Errorf("Wilson(0, 0) = %v", ci)
	}
}

// TestMcNemarExact against binomial sums computed by hand.
func TestMcNemarExact(t *testing.T) {
	for _, tc := range []struct {
		b, c int
		p    float64
	}{
		{1, 9, 2 * 11.0 / 1024}, // 2·(C(10,0)+C(10,1))/2¹⁰
		{9, 1, 2 * 11.0 / 1024}, // symmetric
		{0, 5, 2.0 / 32},        // 2·(1/2⁵)
		{0, 6, 2.0 / 64},        // 0.03125: significant at 5 %
		{2, 8, 2 * 56.0 / 1024}, // 2·(1+10+45)/2¹⁰ = 0.109375
		{3, 3, 1},               // 2·42/64 > 1 → 1
		{0, 0, 1},
	} {
		if p := McNemarExact(tc.b, tc.c); !near(p, tc.p, 1e-12) {
			t.Errorf("McNemarExact(%d, %d) = %.10f, want %.10f", tc.b, tc.c, p, tc.p)
		}
	}
}

// TestMeanAndRatioCI against hand-computed t intervals.
func TestMeanAndRatioCI(t *testing.T) {
	if q := TQuantile(0.975, 1); !near(q, 12.7062047, 1e-6) {
		t.Errorf("t(0.975, 1) = %v", q)
	}
	if q := TQuantile(0.975, 15); !near(q, 2.1314495, 1e-6) {
		t.Errorf("t(0.975, 15) = %v", q)
	}
	// 1, 2, 3, 4: mean 2.5, s = √(5/3), s/√4 = 0.645497, t(3) = 3.182446.
	m, ci := MeanCI([]float64{1, 2, 3, 4})
	if m != 2.5 || !near(ci.Lo, 2.5-3.182446*0.645497, 1e-5) || !near(ci.Hi, 2.5+3.182446*0.645497, 1e-5) {
		t.Errorf("MeanCI = %v %v", m, ci)
	}
	if _, ci := MeanCI([]float64{3}); !math.IsNaN(ci.Lo) {
		t.Errorf("one value: interval %v, want NaN", ci)
	}
	// Equal cluster sizes reduce to MeanCI of the cluster means:
	// sums 10, 20, 30, 40 over 10 tokens each → means 1…4 (as above).
	r, rci := RatioCI([]float64{10, 20, 30, 40}, []float64{10, 10, 10, 10})
	if r != 2.5 || !near(rci.Lo, ci4lo(), 1e-5) || !near(rci.Hi, 5-ci4lo(), 1e-5) {
		t.Errorf("RatioCI = %v %v", r, rci)
	}
	// Unequal sizes: sums 3, 5 over 1, 3 tokens: r = 2; residuals 1, −1;
	// se = √(2·2)/4 = 0.5; t(1) = 12.7062.
	r, rci = RatioCI([]float64{3, 5}, []float64{1, 3})
	if r != 2 || !near(rci.Hi-r, 12.7062047*0.5, 1e-6) {
		t.Errorf("RatioCI unequal = %v %v", r, rci)
	}
}

func ci4lo() float64 { return 2.5 - 3.182446*0.645497 }

// TestIntervalJSON: finite bounds round-trip; NaN and infinite bounds are
// null in JSON (encoding/json refuses them) and read back as NaN.
func TestIntervalJSON(t *testing.T) {
	b, err := json.Marshal(Interval{Lo: -0.5, Hi: 2})
	if err != nil || string(b) != `{"lo":-0.5,"hi":2}` {
		t.Fatalf("finite: %s, %v", b, err)
	}
	b, err = json.Marshal(Interval{Lo: math.NaN(), Hi: math.Inf(1)})
	if err != nil || string(b) != `{"lo":null,"hi":null}` {
		t.Fatalf("undefined: %s, %v", b, err)
	}
	var iv Interval
	if err := json.Unmarshal(b, &iv); err != nil || !math.IsNaN(iv.Lo) || !math.IsNaN(iv.Hi) {
		t.Fatalf("read back %v, %v; want NaN bounds", iv, err)
	}
	if err := json.Unmarshal([]byte(`{"lo":1,"hi":3}`), &iv); err != nil || iv != (Interval{1, 3}) {
		t.Fatalf("read back %v, %v", iv, err)
	}
}
