package gpu

import (
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// needsPlanner is a dense planner that reports other needs.
type needsPlanner struct {
	*share.Dense
	needs share.Needs
}

func (p needsPlanner) Needs() share.Needs { return p.needs }

// differs reports whether err does not apply the rule whose own verdict is
// want: one of them nil, or err without want's message.
func differs(err, want error) bool {
	return (err == nil) != (want == nil) || want != nil && !strings.Contains(err.Error(), want.Error())
}

// TestNewBlockSizeRule: New takes exactly the planner block sizes that
// kernels.CheckBlockSize accepts, with its error.
func TestNewBlockSizeRule(t *testing.T) {
	for _, b := range []int{1, 4, 8, 12, 16, 24, 128} {
		p, err := share.NewDense(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(p, Options{}); differs(err, kernels.CheckBlockSize(b)) {
			t.Errorf("New(dense B = %d): %v; kernels.CheckBlockSize: %v", b, err, kernels.CheckBlockSize(b))
		}
	}
}

// TestGammaRule: New and NewEstimator take the γ of the planner's needs
// exactly when share.CheckGamma does, with its error.
func TestGammaRule(t *testing.T) {
	d := gputest.Device(t)
	dense, err := share.NewDense(16)
	if err != nil {
		t.Fatal(err)
	}
	shape := Shape{NumHeads: 2, NumKVHeads: 1, HeadDim: 8, N: 64}
	for _, g := range []float64{-1, 0, 0.5, 1, math.Nextafter(1, 2), math.NaN()} {
		needs := share.Needs{BlockSize: 16, LastBlock: true, Gamma: g}
		want := share.CheckGamma(g)
		if _, err := New(needsPlanner{dense, needs}, Options{}); differs(err, want) {
			t.Errorf("New(γ = %v): %v; share.CheckGamma: %v", g, err, want)
		}
		e, err := NewEstimator(d, needs, shape)
		if differs(err, want) {
			t.Errorf("NewEstimator(γ = %v): %v; share.CheckGamma: %v", g, err, want)
		}
		if e != nil {
			e.Free()
		}
	}
}
