package share_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/share"
)

// sameRule checks that an entry's error err applies the rule whose own
// verdict is want: both nil, or err carries want's message.
func sameRule(t *testing.T, entry string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: %v, but the rule accepts the value", entry, err)
	case want != nil && err == nil:
		t.Errorf("%s: accepted, but the rule says %v", entry, want)
	case want != nil && !strings.Contains(err.Error(), want.Error()):
		t.Errorf("%s: %v, want the rule's error %q", entry, err, want)
	}
}

func TestCheckGamma(t *testing.T) {
	for _, tc := range []struct {
		gamma float64
		ok    bool
	}{
		{math.Inf(-1), false},
		{-0.5, false},
		{0, false},
		{math.SmallestNonzeroFloat64, true},
		{0.5, true},
		{1, true},
		{math.Nextafter(1, 2), false},
		{2, false},
		{math.Inf(1), false},
		{math.NaN(), false},
	} {
		err := share.CheckGamma(tc.gamma)
		if (err == nil) != tc.ok {
			t.Errorf("CheckGamma(%v) = %v, want ok %v", tc.gamma, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "γ") {
			t.Errorf("CheckGamma(%v) = %q, does not name γ", tc.gamma, err)
		}
	}
}

// TestGammaOneRule: every entry that takes γ accepts and rejects exactly
// the values CheckGamma does, with its error.
func TestGammaOneRule(t *testing.T) {
	for _, g := range []float64{-1, 0, 1e-9, 0.9, 1, math.Nextafter(1, 2), math.NaN(), math.Inf(1)} {
		want := share.CheckGamma(g)
		c := share.DefaultConfig()
		c.Gamma = g
		sameRule(t, fmt.Sprintf("Config.Validate(γ = %v)", g), c.Validate(), want)
		_, err := share.NewSharePrefill(c, nil)
		sameRule(t, fmt.Sprintf("NewSharePrefill(γ = %v)", g), err, want)
		_, err = share.NewFlexPrefill(c)
		sameRule(t, fmt.Sprintf("NewFlexPrefill(γ = %v)", g), err, want)
		_, err = share.Preset(fmt.Sprintf("paper:gamma=%v", g))
		sameRule(t, fmt.Sprintf("Preset(gamma=%v)", g), err, want)
		n := share.Needs{BlockSize: 16, LastBlock: true, Gamma: g}
		sameRule(t, fmt.Sprintf("Needs.Validate(γ = %v)", g), n.Validate(), want)
	}
	// Without last-block estimates γ is not read.
	if err := (share.Needs{BlockSize: 16, Gamma: 0}).Validate(); err != nil {
		t.Errorf("needs without LastBlock: %v", err)
	}
	// The planners hand their γ to the GPU in Needs.
	c := share.DefaultConfig()
	c.Gamma = 0.8
	p, err := share.NewSharePrefill(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Needs(); !n.LastBlock || n.Gamma != 0.8 {
		t.Errorf("Needs() = %+v, want LastBlock with γ 0.8", n)
	}
}

// TestBlockSizeOneRule: the CPU planners and Needs take any B ≥ 1, with the
// same error. (The GPU path narrows it: kernels.CheckBlockSize.)
func TestBlockSizeOneRule(t *testing.T) {
	for _, b := range []int{-1, 0, 1, 16} {
		var want error
		if b < 1 {
			want = fmt.Errorf("block size %d < 1", b)
		}
		c := share.DefaultConfig()
		c.BlockSize = b
		sameRule(t, fmt.Sprintf("Config.Validate(B = %d)", b), c.Validate(), want)
		_, err := share.NewDense(b)
		sameRule(t, fmt.Sprintf("NewDense(%d)", b), err, want)
		vs := share.DefaultVSConfig()
		vs.BlockSize = b
		sameRule(t, fmt.Sprintf("VSConfig.Validate(B = %d)", b), vs.Validate(), want)
		sameRule(t, fmt.Sprintf("Needs.Validate(B = %d)", b), share.Needs{BlockSize: b}.Validate(), want)
	}
}

// TestDenseBelowRule: DenseBelow ≥ 0, and a prompt is dense exactly when
// n < DenseBelow (Config.DenseFor), in the planner's plan too.
func TestDenseBelowRule(t *testing.T) {
	for _, tc := range []struct {
		v  int
		ok bool
	}{{-1, false}, {0, true}, {1, true}} {
		c := share.DefaultConfig()
		c.DenseBelow = tc.v
		if err := c.Validate(); (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "DenseBelow") {
			t.Errorf("DenseBelow %d: %v, want ok %v", tc.v, err, tc.ok)
		}
	}
	const b, below = 16, 100
	c := share.DefaultConfig()
	c.BlockSize, c.MinBudget, c.DenseBelow = b, 32, below
	for _, n := range []int{below - 1, below, below + 1} {
		p, err := share.NewSharePrefill(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		plan := runPlanner(t, p, [][]ref.Head{{ref.RandomHead(n, 8, 1, 1)}}, optFor(c))[0]
		dense := plan.Heads[0].Method == share.MethodDense
		if want := n < below; c.DenseFor(n) != want || dense != want {
			t.Errorf("n = %d, DenseBelow = %d: DenseFor %v, planned dense %v; want %v", n, below, c.DenseFor(n), dense, want)
		}
	}
}
