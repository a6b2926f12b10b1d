package ref

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/model"
)

// Llama is a deliberately simple CPU forward pass of a Llama-family
// decoder (Llama, Qwen2, Mistral), the ground truth for the GPU runtime.
//
// Numerics: weights are the float32 values of model.Weights; every activation,
// accumulation, norm, RoPE angle, softmax and logit is float64. Only the
// returned logits are rounded to float32 (ForwardF64 and StepF64 return the
// float64 values).
//
// The model computed is transformers' LlamaForCausalLM:
//
//	x = embed[token]
//	per layer:
//	  h = rmsnorm(x) * attn_norm
//	  q, k, v = Wq h + bq, Wk h + bk, Wv h + bv
//	  q, k = rope(q, pos), rope(k, pos)          // rotate_half layout
//	  a_h = softmax(q_h·k_g / sqrt(head_dim)) v_g // causal; g = h / (H/Hkv)
//	  x = x + Wo a + bo
//	  h = rmsnorm(x) * mlp_norm
//	  x = x + Wdown (silu(Wgate h) * Wup h)
//	logits = lm_head · (rmsnorm(x) * final_norm)
//
// with rmsnorm(x) = x / sqrt(mean(x²) + eps). Positions are not limited to
// max_position_embeddings. A Llama is not safe for concurrent use.
type Llama struct {
	cfg     *model.Config
	w       *model.Weights
	invFreq []float64
	// KV cache for Step: per layer, pos*KVDim values (RoPE already applied
	// to keys).
	kCache, vCache [][]float64
	pos            int
}

// NewLlama checks that w matches cfg and returns a reference model with
// an empty KV cache.
func NewLlama(cfg *model.Config, w *model.Weights) (*Llama, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkWeightSizes(cfg, w); err != nil {
		return nil, err
	}
	r := &Llama{cfg: cfg, w: w, invFreq: model.RopeInvFreq(cfg)}
	r.Reset()
	return r, nil
}

func checkWeightSizes(cfg *model.Config, w *model.Weights) error {
	h, q, kv, in, v := cfg.HiddenSize, cfg.QDim(), cfg.KVDim(), cfg.IntermediateSize, cfg.VocabSize
	check := func(name string, s []float32, n int, optional bool) error {
		if optional && s == nil {
			return nil
		}
		if len(s) != n {
			return fmt.Errorf("ref: weight %s has %d values, expected %d", name, len(s), n)
		}
		return nil
	}
	if len(w.Layers) != cfg.NumLayers {
		return fmt.Errorf("ref: %d layers of weights, config has %d", len(w.Layers), cfg.NumLayers)
	}
	errs := []error{
		check("embed", w.Embed, v*h, false),
		check("norm", w.Norm, h, false),
		check("lm_head", w.LMHead, v*h, false),
	}
	for l, L := range w.Layers {
		p := fmt.Sprintf("layer %d ", l)
		errs = append(errs,
			check(p+"attn_norm", L.AttnNorm, h, false),
			check(p+"q", L.Q, q*h, false),
			check(p+"k", L.K, kv*h, false),
			check(p+"v", L.V, kv*h, false),
			check(p+"q bias", L.QBias, q, true),
			check(p+"k bias", L.KBias, kv, true),
			check(p+"v bias", L.VBias, kv, true),
			check(p+"o", L.O, h*q, false),
			check(p+"o bias", L.OBias, h, true),
			check(p+"mlp_norm", L.MLPNorm, h, false),
			check(p+"gate", L.Gate, in*h, false),
			check(p+"up", L.Up, in*h, false),
			check(p+"down", L.Down, h*in, false),
		)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Reset empties the KV cache used by Step.
func (r *Llama) Reset() {
	r.kCache = make([][]float64, r.cfg.NumLayers)
	r.vCache = make([][]float64, r.cfg.NumLayers)
	r.pos = 0
}

// Pos returns the number of tokens in the KV cache (the position the next
// Step call will use).
func (r *Llama) Pos() int { return r.pos }

func (r *Llama) checkToken(tok int) error {
	if tok < 0 || tok >= r.cfg.VocabSize {
		return fmt.Errorf("ref: token %d outside vocabulary [0, %d)", tok, r.cfg.VocabSize)
	}
	return nil
}

// Step feeds one token at position Pos(), appends its keys and values to the
// KV cache and returns the next-token logits.
func (r *Llama) Step(token int) ([]float32, error) {
	l, err := r.StepF64(token)
	if err != nil {
		return nil, err
	}
	return toF32(l), nil
}

// StepF64 is Step returning float64 logits.
func (r *Llama) StepF64(token int) ([]float64, error) {
	if err := r.checkToken(token); err != nil {
		return nil, err
	}
	cfg := r.cfg
	x := r.embed(token)
	pos := r.pos
	for l := range r.w.Layers {
		L := &r.w.Layers[l]
		h := rmsNorm(x, L.AttnNorm, cfg.RMSNormEps)
		q, k, v := r.qkv(L, h, pos)
		r.kCache[l] = append(r.kCache[l], k...)
		r.vCache[l] = append(r.vCache[l], v...)
		a := r.attend(q, r.kCache[l], r.vCache[l], pos+1)
		r.finishLayer(L, x, a)
	}
	r.pos++
	return r.logits(x), nil
}

// Forward runs the whole sequence from position 0 and returns the logits at
// every position (logits[t] predicts tokens[t+1]). It computes full causal
// attention without the KV cache, independently of Step, and leaves the
// cache untouched.
func (r *Llama) Forward(tokens []int) ([][]float32, error) {
	l, err := r.ForwardF64(tokens)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(l))
	for i := range l {
		out[i] = toF32(l[i])
	}
	return out, nil
}

// ForwardF64 is Forward returning float64 logits.
func (r *Llama) ForwardF64(tokens []int) ([][]float64, error) {
	cfg := r.cfg
	T := len(tokens)
	xs := make([][]float64, T)
	for t, tok := range tokens {
		if err := r.checkToken(tok); err != nil {
			return nil, fmt.Errorf("position %d: %w", t, err)
		}
		xs[t] = r.embed(tok)
	}
	for l := range r.w.Layers {
		L := &r.w.Layers[l]
		qs := make([][]float64, T)
		keys := make([]float64, 0, T*cfg.KVDim())
		vals := make([]float64, 0, T*cfg.KVDim())
		for t := range xs {
			h := rmsNorm(xs[t], L.AttnNorm, cfg.RMSNormEps)
			q, k, v := r.qkv(L, h, t)
			qs[t] = q
			keys = append(keys, k...)
			vals = append(vals, v...)
		}
		for t := range xs {
			// Causal mask: position t sees positions 0..t.
			a := r.attend(qs[t], keys, vals, t+1)
			r.finishLayer(L, xs[t], a)
		}
	}
	out := make([][]float64, T)
	for t := range xs {
		out[t] = r.logits(xs[t])
	}
	return out, nil
}

// embed returns a float64 copy of the token's embedding row.
func (r *Llama) embed(tok int) []float64 {
	h := r.cfg.HiddenSize
	x := make([]float64, h)
	for i, v := range r.w.Embed[tok*h : (tok+1)*h] {
		x[i] = float64(v)
	}
	return x
}

// qkv projects the normed hidden state h and applies RoPE for position pos.
func (r *Llama) qkv(L *model.LayerWeights, h []float64, pos int) (q, k, v []float64) {
	cfg := r.cfg
	q = matVec(L.Q, L.QBias, cfg.QDim(), cfg.HiddenSize, h)
	k = matVec(L.K, L.KBias, cfg.KVDim(), cfg.HiddenSize, h)
	v = matVec(L.V, L.VBias, cfg.KVDim(), cfg.HiddenSize, h)
	hd := cfg.HeadDim
	for i := 0; i < cfg.NumHeads; i++ {
		applyRope(q[i*hd:(i+1)*hd], pos, r.invFreq)
	}
	for i := 0; i < cfg.NumKVHeads; i++ {
		applyRope(k[i*hd:(i+1)*hd], pos, r.invFreq)
	}
	return q, k, v
}

// attend computes causal grouped-query attention of q over the first n
// positions of keys and vals (each n*KVDim, position-major).
func (r *Llama) attend(q, keys, vals []float64, n int) []float64 {
	cfg := r.cfg
	hd, kvd, group := cfg.HeadDim, cfg.KVDim(), cfg.GQAGroup()
	scale := 1 / math.Sqrt(float64(hd))
	out := make([]float64, cfg.QDim())
	scores := make([]float64, n)
	for h := 0; h < cfg.NumHeads; h++ {
		g := h / group // kv head read by query head h
		qh := q[h*hd : (h+1)*hd]
		maxS := math.Inf(-1)
		for p := 0; p < n; p++ {
			kh := keys[p*kvd+g*hd : p*kvd+(g+1)*hd]
			var s float64
			for i := range qh {
				s += qh[i] * kh[i]
			}
			scores[p] = s * scale
			maxS = math.Max(maxS, scores[p])
		}
		var sum float64
		for p := range scores {
			scores[p] = math.Exp(scores[p] - maxS)
			sum += scores[p]
		}
		oh := out[h*hd : (h+1)*hd]
		for p := 0; p < n; p++ {
			wgt := scores[p] / sum
			vh := vals[p*kvd+g*hd : p*kvd+(g+1)*hd]
			for i := range oh {
				oh[i] += wgt * vh[i]
			}
		}
	}
	return out
}

// finishLayer adds the attention output projection and the SwiGLU MLP to the
// residual stream x in place.
func (r *Llama) finishLayer(L *model.LayerWeights, x, attn []float64) {
	cfg := r.cfg
	o := matVec(L.O, L.OBias, cfg.HiddenSize, cfg.QDim(), attn)
	for i := range x {
		x[i] += o[i]
	}
	h := rmsNorm(x, L.MLPNorm, cfg.RMSNormEps)
	gate := matVec(L.Gate, nil, cfg.IntermediateSize, cfg.HiddenSize, h)
	up := matVec(L.Up, nil, cfg.IntermediateSize, cfg.HiddenSize, h)
	for i := range gate {
		gate[i] = silu(gate[i]) * up[i]
	}
	down := matVec(L.Down, nil, cfg.HiddenSize, cfg.IntermediateSize, gate)
	for i := range x {
		x[i] += down[i]
	}
}

// logits applies the final norm and the LM head.
func (r *Llama) logits(x []float64) []float64 {
	h := rmsNorm(x, r.w.Norm, r.cfg.RMSNormEps)
	return matVec(r.w.LMHead, nil, r.cfg.VocabSize, r.cfg.HiddenSize, h)
}

// NLL returns the mean teacher-forced negative log-likelihood (nats) of
// tokens[1:] given their prefixes, and the per-position values
// (perPos[t] = -log p(tokens[t+1] | tokens[:t+1])).
func (r *Llama) NLL(tokens []int) (mean float64, perPos []float64, err error) {
	if len(tokens) < 2 {
		return 0, nil, fmt.Errorf("ref: NLL needs at least 2 tokens, got %d", len(tokens))
	}
	logits, err := r.ForwardF64(tokens)
	if err != nil {
		return 0, nil, err
	}
	perPos = make([]float64, len(tokens)-1)
	var sum float64
	for t := range perPos {
		perPos[t] = -LogSoftmax(logits[t])[tokens[t+1]]
		sum += perPos[t]
	}
	return sum / float64(len(perPos)), perPos, nil
}

// Greedy feeds prompt (resetting the cache first) and then generates up to
// maxNew tokens by argmax, stopping before any token for which stop returns
// true (stop may be nil). It returns the generated tokens.
func (r *Llama) Greedy(prompt []int, maxNew int, stop func(token int) bool) ([]int, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("ref: Greedy needs a non-empty prompt")
	}
	r.Reset()
	var logits []float64
	var err error
	for _, tok := range prompt {
		if logits, err = r.StepF64(tok); err != nil {
			return nil, err
		}
	}
	var out []int
	for len(out) < maxNew {
		next := argmax(logits)
		if stop != nil && stop(next) {
			break
		}
		out = append(out, next)
		if len(out) == maxNew {
			break
		}
		if logits, err = r.StepF64(next); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LogSoftmax returns log(softmax(x)), computed stably.
func LogSoftmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	lse := m + math.Log(s)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - lse
	}
	return out
}

// argmax returns the index of the largest value (the first one on ties).
func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// matVec returns W x + b for a row-major rows×cols float32 matrix W and an
// optional bias b, accumulating in float64.
func matVec(w, b []float32, rows, cols int, x []float64) []float64 {
	out := make([]float64, rows)
	for i := range out {
		row := w[i*cols : (i+1)*cols]
		var s float64
		for j, wv := range row {
			s += float64(wv) * x[j]
		}
		if b != nil {
			s += float64(b[i])
		}
		out[i] = s
	}
	return out
}

// rmsNorm returns x / sqrt(mean(x²) + eps) * w.
func rmsNorm(x []float64, w []float32, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * inv * float64(w[i])
	}
	return out
}

// applyRope rotates one head vector in place by the angles pos*invFreq, in
// transformers' rotate_half layout: element i pairs with element i+d/2.
func applyRope(v []float64, pos int, invFreq []float64) {
	half := len(v) / 2
	for i := 0; i < half; i++ {
		sin, cos := math.Sincos(float64(pos) * invFreq[i])
		x1, x2 := v[i], v[i+half]
		v[i] = x1*cos - x2*sin
		v[i+half] = x2*cos + x1*sin
	}
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}
