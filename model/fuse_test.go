package model

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/stories260k"
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
		{tokens: 37, adds: 0, sepAdds: 2 * layers, mms: 4 * layers}, // q|k|v, o, gate|up with SwiGLU, down
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
			var n []int
			logits[i], n = tracedPrefill(t, e, tokens, "add_inplace", "matmul_")
			adds, mms := n[0], n[1]
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

// TestPrefillQKVStacked: a prefill of more than kernels.GEMVMaxM tokens
// projects q, k and v with one matmul of the stacked weights and rotates
// and appends them with one rope_qkv dispatch a layer (two dispatches fewer
// than three matmuls and rope_kv, Tuning.PrefillQKVSeparate, on a second
// device); the logits agree within f16 rounding of the projections (the
// stacked matmul may take another tile), and the decode step that follows,
// which reads the views of the stacked weights, gives the same token.
func TestPrefillQKVStacked(t *testing.T) {
	stacked := gputest.Device(t)
	if stacked.Info().TimestampValidBits == 0 {
		t.Skip("device writes no timestamps: the trace has no dispatch labels")
	}
	separate := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{PrefillQKVSeparate: true}})
	const layers = 3
	for _, bias := range []bool{false, true} {
		// Views of the stacked biases must start at multiples of the
		// device's alignment (at least 256 bytes): Hq·D and Hkv·D multiples
		// of 64.
		cfg := &Config{
			Architecture: ArchLlama, HiddenSize: 32, NumLayers: layers, NumHeads: 8, NumKVHeads: 4, HeadDim: 16,
			IntermediateSize: 256, VocabSize: 300, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, BOSTokenID: 1, QKVBias: bias,
		}
		ck := checkpointOf(t, randomTensors(t, cfg, F16))
		tokens := make([]int, 37)
		for i := range tokens {
			tokens[i] = (i*7 + 3) % cfg.VocabSize
		}
		var logits, next [2][]float32
		for i, d := range []*runtime.Device{stacked, separate} {
			e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 128})
			if err != nil {
				t.Fatal(err)
			}
			if e.layers[0].wqkv == nil {
				t.Fatalf("bias %v: the projections were not stacked", bias)
			}
			var n []int
			logits[i], n = tracedPrefill(t, e, tokens, "matmul_", "rope_qkv", "rope_kv")
			if next[i], err = e.Decode(context.Background(), 5); err != nil {
				t.Fatal(err)
			}
			e.Close()
			// q|k|v (or q, k, v), o, gate|up with SwiGLU, down.
			want := [][3]int{{4 * layers, layers, 0}, {6 * layers, 0, layers}}[i]
			if got := [3]int{n[0], n[1], n[2]}; got != want {
				t.Errorf("bias %v, %s: matmul, rope_qkv, rope_kv dispatches %v, want %v", bias, []string{"stacked", "separate"}[i], got, want)
			}
		}
		f64 := func(x []float32) []float64 {
			y := make([]float64, len(x))
			for i, v := range x {
				y[i] = float64(v)
			}
			return y
		}
		if e := gputest.RelErr(logits[0], f64(logits[1])); e > 2e-3 {
			t.Errorf("bias %v: prefill logits differ by %.3g (relative)", bias, e)
		}
		if e := gputest.RelErr(next[0], f64(next[1])); e > 2e-3 {
			t.Errorf("bias %v: decode logits after the prefill differ by %.3g (relative)", bias, e)
		}
	}
}

// TestPrefillMLPFused: a prefill of more than kernels.GEMVMaxM tokens
// computes each layer's MLP activation with one kernels.MatMulSwiGLU of
// the stacked gate and up weights (one matmul dispatch, no swiglu: two
// dispatches fewer than the gate and up matmuls and SwiGLU of
// Tuning.PrefillMLPSeparate, on a second device), and its logits equal
// theirs bit for bit (the kernel rounds gate and up to f16 and computes
// SwiGLU as swiglu.comp does), as do the logits of the decode step that
// follows (the mat-vec kernels on the views of the stacked weights), on a
// random model whose intermediate size leaves a tail in every tile's
// features and on the embedded stories260K model (intermediate size 172).
// A prompt of at most GEMVMaxM tokens keeps the mat-vec kernels, and so
// does a model whose up view the device cannot bind, stacking nothing.
func TestPrefillMLPFused(t *testing.T) {
	fused := gputest.Device(t)
	if fused.Info().TimestampValidBits == 0 {
		t.Skip("device writes no timestamps: the trace has no dispatch labels")
	}
	separate := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{PrefillMLPSeparate: true}})
	random := &Config{
		Architecture: ArchLlama, HiddenSize: 32, NumLayers: 3, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		IntermediateSize: 172, VocabSize: 300, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: true, BOSTokenID: 1,
	}
	stories, err := LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	sw, err := OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	// F·H·2 bytes not a multiple of the alignment: the up view cannot be
	// bound, gate and up stay apart, and prefill keeps two matmuls and
	// swiglu.
	odd := *random
	odd.IntermediateSize = 170
	for _, m := range []struct {
		name    string
		cfg     *Config
		ck      *Checkpoint
		stacked bool
	}{
		{"random", random, checkpointOf(t, randomTensors(t, random, F16)), true},
		{"stories260K", stories, sw, true},
		{"unaligned up view", &odd, checkpointOf(t, randomTensors(t, &odd, F16)), false},
	} {
		layers := m.cfg.NumLayers
		for _, tokens := range []int{37, 3} {
			ids := make([]int, tokens)
			for i := range ids {
				ids[i] = (i*7 + 3) % m.cfg.VocabSize
			}
			var logits, next [2][]float32
			for i, d := range []*runtime.Device{fused, separate} {
				e, err := NewEngine(d, m.cfg, m.ck, EngineOptions{Context: 128})
				if err != nil {
					t.Fatal(err)
				}
				if (e.layers[0].wgu != nil) != m.stacked {
					t.Fatalf("%s: gate and up stacked %v, want %v", m.name, e.layers[0].wgu != nil, m.stacked)
				}
				var n []int
				logits[i], n = tracedPrefill(t, e, ids, "matmul_glu", "matmul_cm1_glu", "matmul_", "swiglu")
				if next[i], err = e.Decode(context.Background(), 5); err != nil {
					t.Fatal(err)
				}
				e.Close()
				// glu (either kernel), other matmuls, swiglu.
				want := [][3]int{{layers, 3 * layers, 0}, {0, 5 * layers, layers}}[i]
				if !m.stacked {
					want = [3]int{0, 5 * layers, layers}
				}
				if tokens <= 4 { // mat-vec kernels (gemv_*), then swiglu
					want = [3]int{0, 0, layers}
				}
				if got := [3]int{n[0] + n[1], n[2], n[3]}; got != want {
					t.Errorf("%s, %d tokens, %s: matmul glu, other matmul and swiglu dispatches %v, want %v",
						m.name, tokens, []string{"fused", "separate"}[i], got, want)
				}
			}
			for _, l := range []struct {
				what string
				a, b []float32
			}{{"prefill", logits[0], logits[1]}, {"decode", next[0], next[1]}} {
				if i := gputest.FirstBitDiff(l.a, l.b); i >= 0 {
					t.Errorf("%s, %d tokens: %s logit %d = %v fused, %v separate", m.name, tokens, l.what, i, l.a[i], l.b[i])
				}
			}
		}
	}
}

// tracedPrefill runs a traced prefill of tokens on e and returns its logits
// and, for each prefix, how many dispatches the trace labels with it (a
// dispatch counts under the first prefix it has).
func tracedPrefill(t *testing.T, e *Engine, tokens []int, prefixes ...string) ([]float32, []int) {
	t.Helper()
	tr := runtime.NewTrace()
	if err := e.SetTrace(tr); err != nil {
		t.Fatal(err)
	}
	logits, err := e.Prefill(context.Background(), tokens)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetTrace(nil); err != nil {
		t.Fatal(err)
	}
	n := make([]int, len(prefixes))
	for _, ev := range tr.GPU() {
		for i, p := range prefixes {
			if strings.HasPrefix(ev.Label, p) {
				n[i]++
				break
			}
		}
	}
	return logits, n
}
