package model

import (
	"context"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestPrefillResidualAddsFused: a prefill of more than kernels.GEMVMaxM
// tokens records no residual-add dispatch (add_inplace): both adds of every
// layer are in the o- and down-projections' epilogues (MatMulAdd), so a
// layer records two dispatches fewer. A prompt of at most GEMVMaxM tokens
// keeps the mat-vec kernels and both adds of every layer. The dispatches
// are counted by shader from a trace (devices without timestamps skip).
func TestPrefillResidualAddsFused(t *testing.T) {
	d := gputest.Device(t)
	if d.Info().TimestampValidBits == 0 {
		t.Skip("device writes no timestamps: the trace has no dispatch labels")
	}
	const layers = 3
	cfg := &Config{
		Architecture: ArchLlama, HiddenSize: 32, NumLayers: layers, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		IntermediateSize: 64, VocabSize: 300, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: true, BOSTokenID: 1,
	}
	e, err := NewEngine(d, cfg, checkpointOf(t, randomTensors(t, cfg, F16)), EngineOptions{Context: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct {
		tokens, adds, matmuls int
	}{
		{tokens: 37, adds: 0, matmuls: 7 * layers}, // q, k, v, o, gate, up, down
		{tokens: 3, adds: 2 * layers, matmuls: 0},  // mat-vec kernels (gemv_*)
	} {
		tokens := make([]int, c.tokens)
		for i := range tokens {
			tokens[i] = (i*7 + 3) % cfg.VocabSize
		}
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		tr := runtime.NewTrace()
		if err := e.SetTrace(tr); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Prefill(context.Background(), tokens); err != nil {
			t.Fatal(err)
		}
		if err := e.SetTrace(nil); err != nil {
			t.Fatal(err)
		}
		adds, matmuls := 0, 0
		for _, ev := range tr.GPU() {
			switch {
			case strings.HasPrefix(ev.Label, "add_inplace"):
				adds++
			case strings.HasPrefix(ev.Label, "matmul_"):
				matmuls++
			}
		}
		if adds != c.adds || matmuls != c.matmuls {
			t.Errorf("prefill of %d tokens, %d layers: %d add_inplace and %d matmul dispatches, want %d and %d",
				c.tokens, layers, adds, matmuls, c.adds, c.matmuls)
		}
	}
}
