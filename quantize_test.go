package shareprefill_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestOpenQuantizeValue: a bad Options.Quantize is an error listing the
// supported values, found before the model is looked at (the missing model
// directory is not what the error reports).
func TestOpenQuantizeValue(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	_, err := shareprefill.Open(context.Background(), shareprefill.Options{Model: missing, Quantize: "q4_k"})
	if err == nil || !strings.Contains(err.Error(), `"q4_k"`) || !strings.Contains(err.Error(), "supported: q8_0, none") || strings.Contains(err.Error(), missing) {
		t.Errorf("Open with Quantize q4_k: %v; want an error naming it and listing q8_0, none", err)
	}
}

// TestOpenQuantizeQ8_0: the embedded model with Quantize "q8_0" keeps its
// projection matrices in Q8_0 on the device (fewer bytes of weights), and
// its mean NLL on a story is within 2 % of the f16 model's.
func TestOpenQuantizeQ8_0(t *testing.T) {
	d := gputest.Device(t)
	ctx := context.Background()
	var nll [2]float64
	var weights [2]uint64
	for i, q := range []string{"none", "q8_0"} {
		m, err := shareprefill.Load(ctx, d, shareprefill.Options{Context: 128, Quantize: q})
		if err != nil {
			t.Fatal(err)
		}
		plan := m.MemoryPlan()
		weights[i] = plan.Weights
		hasQ8 := false
		for _, tb := range plan.WeightTypes {
			hasQ8 = hasQ8 || tb.Type == gguf.Q8_0
		}
		if hasQ8 != (q == "q8_0") {
			t.Errorf("Quantize %q: weight types %v", q, plan.WeightTypes)
		}
		if nll[i], err = m.NLL(ctx, storyIDs(t, m, 96)); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	t.Logf("NLL f16 %.5f, q8_0 %.5f; weights %d → %d B", nll[0], nll[1], weights[0], weights[1])
	if weights[1] >= weights[0] {
		t.Errorf("q8_0 weights %d B, f16 %d B", weights[1], weights[0])
	}
	if math.Abs(nll[1]-nll[0]) > 0.02*nll[0] {
		t.Errorf("q8_0 NLL %.5f, f16 %.5f: more than 2 %% apart", nll[1], nll[0])
	}
}
