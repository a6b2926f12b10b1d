package ref

import (
	"maps"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model"
)

// randomCheckpoint writes model.WriteRandomCheckpoint(cfg, seed) and loads
// it back.
func randomCheckpoint(t *testing.T, cfg model.Config, seed int64) (*model.Config, *model.Weights) {
	t.Helper()
	dir := t.TempDir()
	if err := model.WriteRandomCheckpoint(dir, cfg, seed); err != nil {
		t.Fatal(err)
	}
	c, w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	toks := make([]int, n)
	for i := range toks {
		toks[i] = rng.Intn(vocab)
	}
	return toks
}

func maxRelDiff(a, b []float64) float64 {
	var scale, d float64
	for i := range a {
		scale = math.Max(scale, math.Abs(b[i]))
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d / math.Max(scale, 1e-30)
}

// TestLlamaStepEqualsForward runs the reference on a random checkpoint per
// tiny config: the KV-cache path (Step) must equal the full-sequence path
// (Forward), and the outputs must be sane.
func TestLlamaStepEqualsForward(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(model.TinyConfigs())) {
		cfg := model.TinyConfigs()[name]
		t.Run(name, func(t *testing.T) {
			r, err := NewLlama(randomCheckpoint(t, cfg, 42))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewSource(7))
			toks := randomTokens(rng, 40, cfg.VocabSize)
			full, err := r.ForwardF64(toks)
			if err != nil {
				t.Fatal(err)
			}
			for pos, tok := range toks {
				step, err := r.StepF64(tok)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxRelDiff(step, full[pos]); d > 1e-12 {
					t.Fatalf("pos %d: Step and Forward differ by %.3g (relative)", pos, d)
				}
				var lo, hi float64 = math.Inf(1), math.Inf(-1)
				for _, v := range step {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("pos %d: non-finite logit", pos)
					}
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
				if hi-lo < 0.1 {
					t.Errorf("pos %d: logits nearly uniform (range %v)", pos, hi-lo)
				}
			}
			if r.Pos() != len(toks) {
				t.Errorf("Pos = %d", r.Pos())
			}
			nll, per, err := r.NLL(toks)
			if err != nil {
				t.Fatal(err)
			}
			if len(per) != len(toks)-1 || !(nll > 0) || math.IsInf(nll, 0) {
				t.Errorf("NLL %v over %d positions", nll, len(per))
			}
			gen, err := r.Greedy(toks[:3], 5, nil)
			if err != nil || len(gen) != 5 {
				t.Errorf("Greedy = %v, %v", gen, err)
			}
			if _, err := r.Step(cfg.VocabSize); err == nil || !strings.Contains(err.Error(), "outside vocabulary") {
				t.Errorf("out-of-vocabulary token: %v", err)
			}
		})
	}
}

// TestGQAEqualsExpandedMHA checks the grouped-query mapping (query head h
// reads kv head h/(H/Hkv)) by duplicating each kv head into an equivalent
// multi-head model.
func TestGQAEqualsExpandedMHA(t *testing.T) {
	for _, name := range []string{"qwen2-gqa4", "mistral-gqa8"} {
		cfg := model.TinyConfigs()[name]
		cfg.TorchDType = "float32"
		t.Run(name, func(t *testing.T) {
			mcfg, mw := randomCheckpoint(t, cfg, 3)
			mha := *mcfg
			mha.NumKVHeads = mha.NumHeads
			group, hd, h := cfg.GQAGroup(), cfg.HeadDim, cfg.HiddenSize
			expand := func(w []float32, rowLen int) []float32 {
				if w == nil {
					return nil
				}
				out := make([]float32, 0, len(w)*group)
				for q := 0; q < cfg.NumHeads; q++ {
					g := q / group
					out = append(out, w[g*hd*rowLen:(g+1)*hd*rowLen]...)
				}
				return out
			}
			w := *mw
			w.Layers = append([]model.LayerWeights(nil), mw.Layers...)
			for l := range w.Layers {
				L := &w.Layers[l]
				L.K, L.V = expand(L.K, h), expand(L.V, h)
				L.KBias, L.VBias = expand(L.KBias, 1), expand(L.VBias, 1)
			}
			rg, err := NewLlama(mcfg, mw)
			if err != nil {
				t.Fatal(err)
			}
			rm, err := NewLlama(&mha, &w)
			if err != nil {
				t.Fatal(err)
			}
			toks := randomTokens(rand.New(rand.NewSource(1)), 17, cfg.VocabSize)
			a, _ := rg.ForwardF64(toks)
			b, _ := rm.ForwardF64(toks)
			for i := range a {
				if d := maxRelDiff(a[i], b[i]); d > 1e-12 {
					t.Fatalf("pos %d: GQA and expanded MHA differ by %.3g", i, d)
				}
			}
		})
	}
}

// TestLlamaSingleToken checks one position by hand: with a single token
// attention returns v exactly, so the layer is a closed-form computation.
func TestLlamaSingleToken(t *testing.T) {
	cfg := model.TinyConfigs()["llama-tied-headdim"]
	c, w := randomCheckpoint(t, cfg, 9)
	r, err := NewLlama(c, w)
	if err != nil {
		t.Fatal(err)
	}
	const tok = 5
	got, err := r.ForwardF64([]int{tok})
	if err != nil {
		t.Fatal(err)
	}
	// Independent straight-line computation.
	H := c.HiddenSize
	x := make([]float64, H)
	for i := range x {
		x[i] = float64(w.Embed[tok*H+i])
	}
	norm := func(x []float64, g []float32) []float64 {
		var ms float64
		for _, v := range x {
			ms += v * v / float64(len(x))
		}
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] / math.Sqrt(ms+c.RMSNormEps) * float64(g[i])
		}
		return out
	}
	lin := func(W, b []float32, x []float64) []float64 {
		n := len(W) / len(x)
		out := make([]float64, n)
		for i := range out {
			for j := range x {
				out[i] += float64(W[i*len(x)+j]) * x[j]
			}
			if b != nil {
				out[i] += float64(b[i])
			}
		}
		return out
	}
	for _, L := range w.Layers {
		hn := norm(x, L.AttnNorm)
		v := lin(L.V, L.VBias, hn) // position 0: RoPE is the identity, softmax weight 1
		att := make([]float64, c.QDim())
		for q := 0; q < c.NumHeads; q++ {
			g := q / c.GQAGroup()
			copy(att[q*c.HeadDim:(q+1)*c.HeadDim], v[g*c.HeadDim:(g+1)*c.HeadDim])
		}
		o := lin(L.O, L.OBias, att)
		for i := range x {
			x[i] += o[i]
		}
		hn = norm(x, L.MLPNorm)
		gt, up := lin(L.Gate, nil, hn), lin(L.Up, nil, hn)
		for i := range gt {
			gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
		}
		d := lin(L.Down, nil, gt)
		for i := range x {
			x[i] += d[i]
		}
	}
	want := lin(w.LMHead, nil, norm(x, w.Norm))
	if d := maxRelDiff(got[0], want); d > 1e-12 {
		t.Errorf("single-token logits differ by %.3g", d)
	}
}

// TestRopeRelative checks that attention scores depend only on relative
// positions: rotating q at p and k at p' gives the same dot product as at
// p+s and p'+s.
func TestRopeRelative(t *testing.T) {
	cfg := model.TinyConfigs()["llama3-mha"]
	inv := model.RopeInvFreq(&cfg)
	rng := rand.New(rand.NewSource(2))
	q := make([]float64, cfg.HeadDim)
	k := make([]float64, cfg.HeadDim)
	for i := range q {
		q[i], k[i] = rng.NormFloat64(), rng.NormFloat64()
	}
	dot := func(pq, pk int) float64 {
		a, b := append([]float64(nil), q...), append([]float64(nil), k...)
		applyRope(a, pq, inv)
		applyRope(b, pk, inv)
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	if d0, d1 := dot(7, 3), dot(107, 103); math.Abs(d0-d1) > 1e-9 {
		t.Errorf("RoPE not relative: %v vs %v", d0, d1)
	}
	// rotate_half pairing: element 0 rotates with element HeadDim/2.
	v := make([]float64, cfg.HeadDim)
	v[0] = 1
	applyRope(v, 1, inv)
	if math.Abs(v[0]-math.Cos(inv[0])) > 1e-15 || math.Abs(v[cfg.HeadDim/2]-math.Sin(inv[0])) > 1e-15 {
		t.Errorf("rotate_half layout wrong: %v", v)
	}
}
