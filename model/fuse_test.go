package model

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestPrefillResidualAddsFused: a prefill of more than kernels.GEMVMaxM
// tokens records no residual-add dispatch (add_inplace): both adds of every
// layer are in the o- and down-projections' epilogues (MatMulAdd), so a
// layer records two dispatches fewer, and its logits equal bit for bit
// those of the unfused layer (Tuning.PrefillAddSeparate, on a second
// device), which records both adds. A prompt of at most GEMVMaxM tokens
// keeps the mat-vec kernels and both adds of every layer. The dispatches
// are counted by shader from a trace (devices without timestamps skip).
func TestPrefillResidualAddsFused(t *testing.T) {
	fused := gputest.Device(t)
	if fused.Info().TimestampValidBits == 0 {
		t.Skip("device writes no timestamps: the trace has no dispatch labels")
	}
	separate := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{PrefillAddSeparate: true}})
	const layers = 3
	cfg := &Config{
		Architecture: ArchLlama, HiddenSize: 32, NumLayers: layers, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		IntermediateSize: 64, VocabSize: 300, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: true, BOSTokenID: 1,
	}
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	engine := func(d *runtime.Device) *Engine {
		e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 128})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	ef, es := engine(fused), engine(separate)
	for _, c := range []struct {
		tokens             int
		adds, sepAdds, mms int
	}{
		{tokens: 37, adds: 0, sepAdds: 2 * layers, mms: 7 * layers}, // q, k, v, o, gate, up, down
		{tokens: 3, adds: 2 * layers, sepAdds: 2 * layers, mms: 0},  // mat-vec kernels (gemv_*)
	} {
		tokens := make([]int, c.tokens)
		for i := range tokens {
			tokens[i] = (i*7 + 3) % cfg.VocabSize
		}
		var logits [2][]float32
		for i, e := range []*Engine{ef, es} {
			if err := e.Reset(); err != nil {
				t.Fatal(err)
			}
			tr := runtime.NewTrace()
			if err := e.SetTrace(tr); err != nil {
				t.Fatal(err)
			}
			l, err := e.Prefill(context.Background(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			logits[i] = l
			if err := e.SetTrace(nil); err != nil {
				t.Fatal(err)
			}
			adds, mms := 0, 0
			for _, ev := range tr.GPU() {
				switch {
				case strings.HasPrefix(ev.Label, "add_inplace"):
					adds++
				case strings.HasPrefix(ev.Label, "matmul_"):
					mms++
				}
			}
			want := []int{c.adds, c.sepAdds}[i]
			if adds != want || mms != c.mms {
				t.Errorf("%s: prefill of %d tokens, %d layers: %d add_inplace and %d matmul dispatches, want %d and %d",
					[]string{"fused", "separate"}[i], c.tokens, layers, adds, mms, want, c.mms)
			}
		}
		for i := range logits[0] {
			if math.Float32bits(logits[0][i]) != math.Float32bits(logits[1][i]) {
				t.Errorf("prefill of %d tokens: logit %d = %v fused, %v separate", c.tokens, i, logits[0][i], logits[1][i])
				break
			}
		}
	}
}
