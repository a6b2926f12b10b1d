package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/shareprefill/shareprefill/model"
)

// The structured speed vehicle: a model with real attention shapes whose
// attention, on the prompts of StructuredPrompt, has the structure of a
// trained model's (sinks, local windows of varying width, vertical
// stripes, slashes, broad heads), planted in the embedding and the Q/K
// weights through RoPE. docs/benchmarks.md#the-structured-vehicle
// explains the construction.

// StructureFileName is the file, next to config.json, in which
// WriteStructuredModel records what it planted in every head.
const StructureFileName = "structure.json"

// Token ids with a planted role in the structured vehicle (byte-tokenizer
// ids: the ASCII record and group separators). StructuredPrompt places
// them rarely; heads that attend to them make vertical stripes.
const (
	StripeTokenA = 0x1E
	StripeTokenB = 0x1D
)

// Default spacing of the stripe tokens in StructuredPrompt: on average one
// StripeTokenA every DefaultStripeAEvery tokens and one StripeTokenB every
// DefaultStripeBEvery tokens.
const (
	DefaultStripeAEvery = 2048
	DefaultStripeBEvery = 16384
)

// Head kinds of the structured vehicle.
const (
	KindLocal  = "local"  // a local window, a weak sink
	KindSlash  = "slash"  // a narrow window plus a band at a fixed offset
	KindStripe = "stripe" // a narrow window plus strong stripe tokens
	KindSink   = "sink"   // most of the mass on the first token
	KindBroad  = "broad"  // near-dense: content preference and a mild recency
)

// headPattern is the mix of kinds, repeated over the query heads of a layer
// and shuffled per layer.
var headPattern = []string{KindLocal, KindSlash, KindStripe, KindLocal, KindBroad, KindSink, KindSlash, KindLocal}

// StructuredHead is what WriteStructuredModel planted in one query head.
// Scores are in logits (q·k/√D); a window or width w means that the
// fastest rotary pair of its band turns by at most one radian over w
// tokens.
type StructuredHead struct {
	Layer int    `json:"layer"`
	Head  int    `json:"head"`
	Kind  string `json:"kind"`
	// Window and Local: the local window (0: none) and the score at
	// distance 0. The window's band holds the positional pairs with
	// 1/(32·Window) ≤ ω ≤ 1/Window.
	Window int     `json:"window,omitempty"`
	Local  float64 `json:"local,omitempty"`
	// Slash, SlashWidth and SlashScore: a band peaking at distance Slash
	// (0: none).
	Slash      int     `json:"slash,omitempty"`
	SlashWidth int     `json:"slash_width,omitempty"`
	SlashScore float64 `json:"slash_score,omitempty"`
	// Recency is the score, at distance 0, of a band of the slowest
	// positional pairs (a decay over the whole context).
	Recency float64 `json:"recency,omitempty"`
	// Sink, StripeA and StripeB are the scores every query gives the first
	// token and the stripe tokens.
	Sink    float64 `json:"sink"`
	StripeA float64 `json:"stripe_a,omitempty"`
	StripeB float64 `json:"stripe_b,omitempty"`
	// SinkShare, StripeShare and SlashShare are the shares of attention
	// the scores were calibrated to give the first token, the stripe
	// tokens and the slash (±max(2, SlashWidth) around Slash), for a query
	// half the design context into a StructuredPrompt.
	SinkShare   float64 `json:"sink_share"`
	StripeShare float64 `json:"stripe_share,omitempty"`
	SlashShare  float64 `json:"slash_share,omitempty"`
	// Content is the standard deviation of the token-pair (content) score.
	Content float64 `json:"content"`
}

// Structure describes a structured vehicle: the residual-stream layout,
// the rotary pairs given to each feature, the stripe tokens and the
// planted heads. It is written as structure.json.
type Structure struct {
	Seed    int64 `json:"seed"`
	Context int   `json:"context"` // the longest prompt the static pairs are designed for
	// Residual-stream coordinates: U is shared by every token but BOS and
	// the stripe tokens, which carry UQ instead (read by the queries like
	// U, but not by the keys, so their keys have no positional part), BOS
	// is BOS's own, StripeA/StripeB mark the stripe tokens, [Content0,
	// Content1) hold a random vector per token, [Embed0, Embed1) the rest
	// of each token's embedding, and [Resid0, Resid1) receive the
	// attention and MLP outputs (the only coordinates o_proj and down_proj
	// write).
	U        int `json:"u"`
	UQ       int `json:"uq"`
	BOS      int `json:"bos"`
	StripeA  int `json:"stripe_a"`
	StripeB  int `json:"stripe_b"`
	Content0 int `json:"content0"`
	Content1 int `json:"content1"`
	Embed0   int `json:"embed0"`
	Embed1   int `json:"embed1"`
	Resid0   int `json:"resid0"`
	Resid1   int `json:"resid1"`
	// Rotary pairs (index i < head_dim/2 pairs coordinates i and
	// i + head_dim/2): [0, Positional) carry the positional kernels; the
	// others turn by at most StaticTurn radians over Context tokens.
	Positional   int     `json:"positional_pairs"`
	StaticTurn   float64 `json:"static_turn"`
	SinkPair     int     `json:"sink_pair"`
	StripeAPair  int     `json:"stripe_a_pair"`
	StripeBPair  int     `json:"stripe_b_pair"`
	ContentPairs []int   `json:"content_pairs"`
	// StripeTokens are StripeTokenA and StripeTokenB.
	StripeTokens []int            `json:"stripe_tokens"`
	Heads        []StructuredHead `json:"heads"`
}

// ReadStructure reads dir/structure.json.
func ReadStructure(dir string) (*Structure, error) {
	b, err := os.ReadFile(filepath.Join(dir, StructureFileName))
	if err != nil {
		return nil, fmt.Errorf("structure: %w", err)
	}
	var s Structure
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("structure: %s: %w", filepath.Join(dir, StructureFileName), err)
	}
	return &s, nil
}

// Head returns the planted head (layer, head), or nil.
func (s *Structure) Head(layer, head int) *StructuredHead {
	for i := range s.Heads {
		if s.Heads[i].Layer == layer && s.Heads[i].Head == head {
			return &s.Heads[i]
		}
	}
	return nil
}

// staticTurn is the most a static pair may turn over the design context
// (radians); cos(0.4) = 0.92.
const staticTurn = 0.4

// Key amplitudes (per rotary pair) of the planted features; the queries
// carry the head-specific strengths.
const (
	keyPos     = 1.0 // every positional pair of every ordinary token (not BOS, not a stripe token)
	keyMarker  = 4.0 // the sink pair of BOS, a stripe pair of a stripe token
	keyNoise   = 0.1 // std of a key component from the embedding's random part
	queryNoise = 0.5 // std of a query component from the embedding's random part
	// Output scales: o_proj and down_proj write small vectors (about 5 %
	// of the embedding's norm) into the residual coordinates, so that
	// layer 1's inputs keep the structure; lm_head reads those coordinates
	// with gain residGain, so that the logits depend on the attention.
	oScale    = 0.1
	downScale = 0.1
	residGain = 24.0
)

// layout fills the residual-stream and rotary-pair layout of cfg.
func layout(cfg *model.Config, ctxLen int) (*Structure, []float64, error) {
	h, d := cfg.HiddenSize, cfg.HeadDim
	if d%2 != 0 || d < 16 {
		return nil, nil, fmt.Errorf("structured model: head_dim %d must be even and ≥ 16", d)
	}
	m := min(32, h/16)
	s := &Structure{Context: ctxLen, U: 0, UQ: 1, BOS: 2, StripeA: 3, StripeB: 4, Content0: 5, Content1: 5 + m, StaticTurn: staticTurn,
		StripeTokens: []int{StripeTokenA, StripeTokenB}}
	s.Embed0, s.Embed1 = s.Content1, s.Content1+h/4
	s.Resid0, s.Resid1 = s.Embed1, h
	if m < 4 || s.Resid1-s.Resid0 < h/2 {
		return nil, nil, fmt.Errorf("structured model: hidden_size %d is too small (need ≥ 64)", h)
	}
	inv := model.RopeInvFreq(cfg)
	pairs := d / 2
	s.Positional = pairs
	for p := pairs - 1; p >= 0 && inv[p]*float64(ctxLen) <= staticTurn; p-- {
		s.Positional = p
	}
	static := pairs - s.Positional
	if static < 4 {
		return nil, nil, fmt.Errorf("structured model: only %d rotary pairs turn by ≤ %.1f rad over %d tokens (need ≥ 4: rope_theta %g, head_dim %d); use a shorter --context",
			static, staticTurn, ctxLen, cfg.RopeTheta, d)
	}
	if s.Positional < 8 {
		return nil, nil, fmt.Errorf("structured model: only %d positional rotary pairs (need ≥ 8)", s.Positional)
	}
	s.SinkPair, s.StripeAPair, s.StripeBPair = pairs-1, pairs-2, pairs-3
	for p := s.Positional; p < pairs-3; p++ {
		s.ContentPairs = append(s.ContentPairs, p)
	}
	return s, inv, nil
}

// bandSpan is the ratio of the fastest to the slowest frequency of a
// positional band: a band for width w holds the pairs with
// 1/(bandSpan·w) ≤ ω ≤ 1/w, so its kernel Σ cos(ω d) is flat up to about
// w, decays logarithmically up to bandSpan·w and is a small
// pseudo-random sum beyond.
const bandSpan = 32

// band returns the positional pairs (index < positional) of the band for
// width w, at least minBand of them (the fastest with ω·w ≤ 1, or else
// the slowest positional pairs).
func band(inv []float64, w, positional int) []int {
	const minBand = 4
	var out []int
	for p := 0; p < positional; p++ {
		if x := inv[p] * float64(w); x <= 1 && x*bandSpan >= 1 {
			out = append(out, p)
		}
	}
	for p := 0; len(out) < minBand && p < positional; p++ {
		if inv[p]*float64(w) <= 1 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for p := positional - 1; len(out) < minBand && p >= 0; p-- {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// recipes draws the planted heads of one layer: kinds, widths and the
// shares of attention they aim at; calibrate turns the shares into scores.
func recipes(rng *rand.Rand, layer, heads int) []StructuredHead {
	kinds := make([]string, heads)
	for i := range kinds {
		kinds[i] = headPattern[i%len(headPattern)]
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	u := func(a, b float64) float64 { return a + (b-a)*rng.Float64() }
	logU := func(a, b float64) int { return int(math.Round(math.Exp(u(math.Log(a), math.Log(b))))) }
	out := make([]StructuredHead, heads)
	for hq, kind := range kinds {
		r := StructuredHead{Layer: layer, Head: hq, Kind: kind, Content: u(0.3, 1.0), SinkShare: u(0.02, 0.3)}
		switch kind {
		case KindLocal:
			r.Window = logU(16, 8192)
		case KindSlash, KindStripe:
			r.Window = logU(8, 256)
		case KindSink:
			r.Window = logU(16, 1024)
			r.SinkShare = u(0.6, 0.9)
		case KindBroad:
			r.Recency = u(1, 6)
			r.Content = u(1, 2)
			r.SinkShare = u(0.01, 0.05)
		}
		if r.Window > 0 {
			r.Local = u(16, 22)
		}
		switch kind {
		case KindSlash:
			if rng.IntN(2) == 0 {
				r.Slash = 1 + rng.IntN(4)
			} else {
				r.Slash = logU(16, 4096)
			}
			r.SlashWidth = 1 << rng.IntN(4)
			r.SlashShare = u(0.2, 0.6)
		case KindStripe:
			r.StripeShare = u(0.3, 0.6)
			r.StripeA, r.StripeB = 1, 1 // which sets: both, or one of them
			switch rng.IntN(3) {
			case 0:
				r.StripeB = 0
			case 1:
				r.StripeA = 0
			}
			r.SinkShare = min(r.SinkShare, 0.9-r.StripeShare)
		case KindBroad:
		default:
			if rng.IntN(2) == 0 {
				r.StripeShare, r.StripeA = u(0.01, 0.05), 1
			}
		}
		out[hq] = r
	}
	return out
}

// posKernel returns the positional score Σ_p keyPos·(q[p]·cos ω_p d −
// q[p+P]·sin ω_p d)/√D at distances d < n: the logit a query with planted
// part q gives a key at distance d through the positional pairs.
func posKernel(q, inv []float64, positional, n int) []float64 {
	pairs := len(q) / 2
	sqrtD := math.Sqrt(float64(len(q)))
	out := make([]float64, n)
	for p := 0; p < positional; p++ {
		a, b := q[p]*keyPos/sqrtD, q[p+pairs]*keyPos/sqrtD
		if a == 0 && b == 0 {
			continue
		}
		dsin, dcos := math.Sincos(inv[p])
		var sin, cos float64
		for d := range out {
			if d%1024 == 0 { // exact now and then, a rotation in between
				sin, cos = math.Sincos(inv[p] * float64(d))
			} else {
				sin, cos = sin*dcos+cos*dsin, cos*dcos-sin*dsin
			}
			out[d] += a*cos - b*sin
		}
	}
	return out
}

// logSumExp returns log Σ e^(k[i] + a·s[i]) (s may be nil) and the log of
// the part within |i − c| ≤ w.
func logSumExp(k, s []float64, a float64, c, w int) (all, near float64) {
	v := func(i int) float64 {
		if s == nil {
			return k[i]
		}
		return k[i] + a*s[i]
	}
	mx := math.Inf(-1)
	for i := range k {
		mx = math.Max(mx, v(i))
	}
	var sum, part float64
	for i := range k {
		e := math.Exp(v(i) - mx)
		sum += e
		if i >= c-w && i <= c+w {
			part += e
		}
	}
	return mx + math.Log(sum), mx + math.Log(part)
}

// calibrate returns the planted part of head r's query (the coefficients
// of the U coordinate, before division by its value) and sets r's slash,
// sink and stripe scores so that a query ctxLen/2 tokens into a
// StructuredPrompt (default spacing) gives the sink, the stripe tokens and
// the slash about the planned shares of its attention. The positional
// kernel is computed exactly; the content and noise terms are taken as
// Gaussian (their mean factor e^(σ²/2) on every ordinary key).
func calibrate(r *StructuredHead, inv []float64, s *Structure, d int) []float64 {
	pairs, sqrtD := d/2, math.Sqrt(float64(d))
	q := make([]float64, d)
	if r.Window > 0 {
		b := band(inv, r.Window, s.Positional)
		for _, p := range b {
			q[p] += r.Local * sqrtD / (keyPos * float64(len(b)))
		}
	}
	if r.Recency > 0 {
		lo := max(0, s.Positional-12)
		for p := lo; p < s.Positional; p++ {
			q[p] += r.Recency * sqrtD / (keyPos * float64(s.Positional-lo))
		}
	}
	n := max(1, s.Context/2)
	kern := posKernel(q, inv, s.Positional, n)
	if r.Slash > 0 && r.Slash < n {
		// The slash band at unit score, then the score giving the share.
		qs := make([]float64, d)
		b := band(inv, r.SlashWidth, s.Positional)
		for _, p := range b {
			amp := sqrtD / (keyPos * float64(len(b)))
			qs[p] = amp * math.Cos(inv[p]*float64(r.Slash))
			qs[p+pairs] = -amp * math.Sin(inv[p]*float64(r.Slash))
		}
		ks := posKernel(qs, inv, s.Positional, n)
		w := max(2, r.SlashWidth)
		lo, hi := 0.0, 60.0
		for range 40 {
			a := (lo + hi) / 2
			all, near := logSumExp(kern, ks, a, r.Slash, w)
			if math.Exp(near-all) < r.SlashShare {
				lo = a
			} else {
				hi = a
			}
		}
		r.SlashScore = (lo + hi) / 2
		for i := range q {
			q[i] += r.SlashScore * qs[i]
		}
		for i := range kern {
			kern[i] += r.SlashScore * ks[i]
		}
	}
	lnZ, _ := logSumExp(kern, nil, 0, 0, 0)
	lnZ += r.Content * r.Content / 2
	rest := 1 - r.SinkShare - r.StripeShare
	r.Sink = lnZ + math.Log(r.SinkShare/rest)
	if r.StripeShare > 0 {
		// Split between the sets in use, against the number of each set's
		// tokens before the query.
		sets := r.StripeA + r.StripeB
		// Stripe keys carry content (mean factor e^(σ²/2), already in lnZ)
		// but no positional part.
		stripeScore := func(every int) float64 {
			count := max(1, float64(n)/float64(every))
			return lnZ - r.Content*r.Content/2 + math.Log(r.StripeShare/sets/rest) - math.Log(count)
		}
		if r.StripeA > 0 {
			r.StripeA = stripeScore(DefaultStripeAEvery)
		}
		if r.StripeB > 0 {
			r.StripeB = stripeScore(DefaultStripeBEvery)
		}
	}
	q[s.SinkPair] += r.Sink * sqrtD / keyMarker
	q[s.StripeAPair] += r.StripeA * sqrtD / keyMarker
	q[s.StripeBPair] += r.StripeB * sqrtD / keyMarker
	return q
}

// WriteStructuredModel writes config.json, model.safetensors,
// structure.json and a byte tokenizer for cfg (Llama, no biases, vocabulary
// ≥ 258) into dir: a model whose attention on StructuredPrompt's prompts
// has a trained model's structure up to ctxLen tokens (see Structure and
// docs/benchmarks.md#the-structured-vehicle). The same (cfg, ctxLen, seed)
// always gives the same bytes.
func WriteStructuredModel(dir string, cfg model.Config, ctxLen int, seed int64) (*Structure, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	if cfg.Architecture != model.ArchLlama || cfg.QKVBias || cfg.OBias || cfg.TieWordEmbeddings {
		return nil, fmt.Errorf("structured model: needs a Llama configuration without biases or tied embeddings")
	}
	if cfg.VocabSize < ByteTokEOS+1 {
		return nil, fmt.Errorf("structured model: vocabulary %d is too small for the byte tokenizer (need ≥ %d)", cfg.VocabSize, ByteTokEOS+1)
	}
	if ctxLen < 256 {
		return nil, fmt.Errorf("structured model: design context %d is too short (need ≥ 256)", ctxLen)
	}
	s, inv, err := layout(&cfg, ctxLen)
	if err != nil {
		return nil, err
	}
	s.Seed = seed
	cfg.TorchDType = "float16"
	h, d, pairs := cfg.HiddenSize, cfg.HeadDim, cfg.HeadDim/2
	sqrtH := math.Sqrt(float64(h))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x57c0c7))

	// Embedding: every row has norm √hidden (RMS 1), so rmsnorm leaves it
	// unchanged and the planted coordinates keep their values.
	alpha, bosAmp, stripeAmp, contentNorm := 0.5*sqrtH, 0.6*sqrtH, 0.3*sqrtH, 0.3*sqrtH
	embed := make([]float32, cfg.VocabSize*h)
	for t := 0; t < cfg.VocabSize; t++ {
		x := make([]float64, h)
		switch t {
		case ByteTokBOS:
			x[s.BOS] = bosAmp
		case StripeTokenA, StripeTokenB:
			x[s.UQ] = alpha
			randUnit(rng, x[s.Content0:s.Content1], contentNorm)
			if t == StripeTokenA {
				x[s.StripeA] = stripeAmp
			} else {
				x[s.StripeB] = stripeAmp
			}
		default:
			x[s.U] = alpha
			randUnit(rng, x[s.Content0:s.Content1], contentNorm)
		}
		var used float64
		for _, v := range x {
			used += v * v
		}
		randUnit(rng, x[s.Embed0:s.Embed1], math.Sqrt(float64(h)-used))
		for i, v := range x {
			embed[t*h+i] = float32(v)
		}
	}
	// The embedding's random part of a non-BOS token has norm about
	// √(1 − 0.25 − 0.09)·√hidden.
	embedNorm := math.Sqrt(0.66) * sqrtH

	var tensors []model.TensorInfo
	add := func(name string, shape []int, vals []float32) error {
		data, err := model.Float32Bytes(vals, model.F16)
		if err != nil {
			return fmt.Errorf("structured model: tensor %q: %w", name, err)
		}
		tensors = append(tensors, model.TensorInfo{Name: name, DType: model.F16, Shape: shape, Data: data})
		return nil
	}
	if err := add(model.EmbedTokensName, []int{cfg.VocabSize, h}, embed); err != nil {
		return nil, err
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	gauss := func(v []float32, std float64) {
		for i := range v {
			v[i] = float32(std * rng.NormFloat64())
		}
	}
	qd, kvd, inter := cfg.QDim(), cfg.KVDim(), cfg.IntermediateSize
	nContent := len(s.ContentPairs) * 2
	for l := 0; l < cfg.NumLayers; l++ {
		heads := recipes(rng, l, cfg.NumHeads)
		// Keys: the same positional and marker features in every KV head,
		// a random content projection per KV head, a little noise.
		wk := make([]float32, kvd*h)
		for g := 0; g < cfg.NumKVHeads; g++ {
			row := func(i int) []float32 { return wk[(g*d+i)*h : (g*d+i+1)*h] }
			for p := 0; p < s.Positional; p++ {
				row(p)[s.U] = float32(keyPos / alpha)
			}
			row(s.SinkPair)[s.BOS] = float32(keyMarker / bosAmp)
			row(s.StripeAPair)[s.StripeA] = float32(keyMarker / stripeAmp)
			row(s.StripeBPair)[s.StripeB] = float32(keyMarker / stripeAmp)
			for _, p := range s.ContentPairs {
				for _, i := range []int{p, p + pairs} {
					gauss(row(i)[s.Content0:s.Content1], 1/contentNorm)
				}
			}
			for i := 0; i < d; i++ {
				gauss(row(i)[s.Embed0:s.Embed1], keyNoise/embedNorm)
			}
		}
		// Queries: each head's recipe, calibrated.
		wq := make([]float32, qd*h)
		for hq := range heads {
			r := &heads[hq]
			row := func(i int) []float32 { return wq[(hq*d+i)*h : (hq*d+i+1)*h] }
			q := calibrate(r, inv, s, d)
			for i, v := range q {
				row(i)[s.U] = float32(v / alpha)
				row(i)[s.UQ] = float32(v / alpha)
			}
			// Content: q_c·k_c/√D has standard deviation r.Content (the key's
			// content components have unit variance).
			qs := r.Content * math.Sqrt(float64(d)/float64(nContent))
			for _, p := range s.ContentPairs {
				for _, i := range []int{p, p + pairs} {
					gauss(row(i)[s.Content0:s.Content1], qs/contentNorm)
				}
			}
			for i := 0; i < d; i++ {
				gauss(row(i)[s.Embed0:s.Embed1], queryNoise/embedNorm)
			}
		}
		s.Heads = append(s.Heads, heads...)
		wv := make([]float32, kvd*h)
		gauss(wv, 1/sqrtH)
		wo := make([]float32, h*qd)
		gauss(wo[s.Resid0*qd:], oScale/math.Sqrt(float64(qd)))
		gate, up := make([]float32, inter*h), make([]float32, inter*h)
		gauss(gate, 1/sqrtH)
		gauss(up, 1/sqrtH)
		down := make([]float32, h*inter)
		gauss(down[s.Resid0*inter:], downScale/math.Sqrt(float64(inter)))
		for _, t := range []struct {
			suffix string
			shape  []int
			vals   []float32
		}{
			{"input_layernorm.weight", []int{h}, ones(h)},
			{"self_attn.q_proj.weight", []int{qd, h}, wq},
			{"self_attn.k_proj.weight", []int{kvd, h}, wk},
			{"self_attn.v_proj.weight", []int{kvd, h}, wv},
			{"self_attn.o_proj.weight", []int{h, qd}, wo},
			{"post_attention_layernorm.weight", []int{h}, ones(h)},
			{"mlp.gate_proj.weight", []int{inter, h}, gate},
			{"mlp.up_proj.weight", []int{inter, h}, up},
			{"mlp.down_proj.weight", []int{h, inter}, down},
		} {
			if err := add(model.LayerTensorName(l, t.suffix), t.shape, t.vals); err != nil {
				return nil, err
			}
		}
	}
	if err := add(model.FinalNormName, []int{h}, ones(h)); err != nil {
		return nil, err
	}
	head := make([]float32, cfg.VocabSize*h)
	for t := 0; t < cfg.VocabSize; t++ {
		row := head[t*h : (t+1)*h]
		gauss(row[:s.Resid0], 1/sqrtH)
		gauss(row[s.Resid0:], residGain/math.Sqrt(float64(h-s.Resid0)))
	}
	if err := add(model.LMHeadName, []int{cfg.VocabSize, h}, head); err != nil {
		return nil, err
	}

	cj, err := cfg.MarshalHF()
	if err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	sj, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	var buf bytes.Buffer
	meta := map[string]string{"format": "pt", "source": fmt.Sprintf("shareprefill WriteStructuredModel seed %d context %d", seed, ctxLen)}
	if err := model.WriteSafetensors(&buf, tensors, meta); err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{model.ConfigFileName, cj}, {model.SafetensorsFileName, buf.Bytes()}, {StructureFileName, append(sj, '\n')}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return nil, fmt.Errorf("structured model: %w", err)
		}
	}
	if err := WriteByteTokenizer(dir); err != nil {
		return nil, fmt.Errorf("structured model: %w", err)
	}
	return s, nil
}

// randUnit fills v with a random direction of the given norm.
func randUnit(rng *rand.Rand, v []float64, norm float64) {
	var s float64
	for i := range v {
		v[i] = rng.NormFloat64()
		s += v[i] * v[i]
	}
	if s == 0 {
		return
	}
	for i := range v {
		v[i] *= norm / math.Sqrt(s)
	}
}

// PromptSpec says how StructuredPrompt spaces the stripe tokens; zero
// fields take the defaults.
type PromptSpec struct {
	StripeAEvery int `json:"stripe_a_every"`
	StripeBEvery int `json:"stripe_b_every"`
}

func (p PromptSpec) withDefaults() PromptSpec {
	if p.StripeAEvery <= 0 {
		p.StripeAEvery = DefaultStripeAEvery
	}
	if p.StripeBEvery <= 0 {
		p.StripeBEvery = DefaultStripeBEvery
	}
	return p
}

// promptAlphabet is the set of ordinary prompt tokens: newline and the
// printable ASCII bytes.
func promptAlphabet() []int {
	a := []int{'\n'}
	for b := 0x20; b <= 0x7E; b++ {
		a = append(a, b)
	}
	return a
}

// StructuredPrompt returns n token ids for the structured vehicle: BOS,
// then at position i ≥ 1, with j = i − 1: StripeTokenA where j is the
// drawn offset of its window of StripeAEvery positions (one per window),
// else StripeTokenB likewise with StripeBEvery, else a uniform draw from
// newline and the printable ASCII bytes. Draws are stateless splitmix64
// hashes of (seed, stream, index) (promptDraw), so that
// bench/peers/structure.py reimplements the prompt exactly with integer
// arithmetic.
func StructuredPrompt(n int, seed uint64, spec PromptSpec) []int {
	spec = spec.withDefaults()
	alpha := promptAlphabet()
	ea, eb := uint64(spec.StripeAEvery), uint64(spec.StripeBEvery)
	out := make([]int, 0, n)
	if n > 0 {
		out = append(out, ByteTokBOS)
	}
	for i := uint64(1); len(out) < n; i++ {
		j := i - 1
		switch {
		case j%ea == promptDraw(seed, 2, j/ea)%ea:
			out = append(out, StripeTokenA)
		case j%eb == promptDraw(seed, 3, j/eb)%eb:
			out = append(out, StripeTokenB)
		default:
			out = append(out, alpha[promptDraw(seed, 1, i)%uint64(len(alpha))])
		}
	}
	return out
}

// promptDraw is splitmix64's output function applied to
// seed·φ + stream·0xD1B54A32D192ED03 + i + φ (φ = 0x9E3779B97F4A7C15, all
// mod 2⁶⁴).
func promptDraw(seed, stream, i uint64) uint64 {
	const phi = 0x9E3779B97F4A7C15
	z := seed*phi + stream*0xD1B54A32D192ED03 + i + phi
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}
