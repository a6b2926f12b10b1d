package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/model"
)

// structuredTestConfig is Llama-3-8B's attention head (D 128, θ 500000)
// with few heads and a small residual stream, for CPU-sized checks.
func structuredTestConfig() model.Config {
	c := Shapes()["tiny-d128"]
	c.IntermediateSize = 192
	return c
}

func TestStructuredPrompt(t *testing.T) {
	spec := PromptSpec{StripeAEvery: 64, StripeBEvery: 512}
	ids := StructuredPrompt(5000, 7, spec)
	if len(ids) != 5000 || ids[0] != ByteTokBOS {
		t.Fatalf("%d ids, first %d", len(ids), ids[0])
	}
	if !slices.Equal(ids, StructuredPrompt(5000, 7, spec)) {
		t.Fatal("not deterministic")
	}
	if slices.Equal(ids, StructuredPrompt(5000, 8, spec)) {
		t.Fatal("the seed changes nothing")
	}
	// Exactly one stripe token A per window of 64 positions (B may take
	// its place), about one B per window of 512, and nothing outside
	// newline, printable ASCII and the stripe tokens.
	alpha := promptAlphabet()
	countA, countB := map[int]int{}, 0
	for i, id := range ids[1:] {
		switch {
		case id == StripeTokenA:
			countA[i/64]++
		case id == StripeTokenB:
			countB++
		case !slices.Contains(alpha, id):
			t.Fatalf("position %d: token %d outside the alphabet", i+1, id)
		}
	}
	for w := 0; w < 4999/64; w++ {
		if countA[w] > 1 {
			t.Fatalf("window %d has %d stripe tokens A", w, countA[w])
		}
	}
	if len(countA) < 4999/64-3 || countB < 6 || countB > 10 {
		t.Fatalf("%d windows with a stripe token A (of %d), %d stripe tokens B (want about 9)", len(countA), 4999/64, countB)
	}
	// Short prompts and the defaults.
	if got := StructuredPrompt(1, 1, PromptSpec{}); !slices.Equal(got, []int{ByteTokBOS}) {
		t.Fatalf("n=1: %v", got)
	}
	if len(StructuredPrompt(0, 1, PromptSpec{})) != 0 {
		t.Fatal("n=0 gives tokens")
	}
	def := StructuredPrompt(3*DefaultStripeAEvery+1, 1, PromptSpec{})
	if n := bytes.Count(intsToBytes(def), []byte{StripeTokenA}); n < 2 || n > 3 {
		t.Fatalf("%d stripe tokens A in %d tokens at the default spacing, want 3 (or 2 when B took a place)", n, len(def))
	}
}

func intsToBytes(v []int) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = byte(x)
	}
	return b
}

// TestStructuredPromptPython checks that bench/peers/structure.py rebuilds
// the same prompt (it needs python3, not torch).
func TestStructuredPromptPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	out, err := exec.Command(py, "../peers/structure.py", "--print-prompt", "6000", "--seed", "11",
		"--stripe-a-every", "100", "--stripe-b-every", "700").Output()
	if err != nil {
		t.Fatalf("structure.py --print-prompt: %v", err)
	}
	var got []int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("structure.py output: %v", err)
	}
	want := StructuredPrompt(6000, 11, PromptSpec{StripeAEvery: 100, StripeBEvery: 700})
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("python prompt differs from StructuredPrompt at position %d (lengths %d, %d)", i, len(got), len(want))
	}
}

func TestWriteStructuredModel(t *testing.T) {
	cfg := structuredTestConfig()
	dir := t.TempDir()
	st, err := WriteStructuredModel(dir, cfg, 4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	mcfg, w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mcfg.TorchDType != "float16" || mcfg.NumHeads != cfg.NumHeads || mcfg.VocabSize != cfg.VocabSize {
		t.Fatalf("config %+v", mcfg)
	}
	back, err := ReadStructure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Heads) != cfg.NumLayers*cfg.NumHeads || back.Positional != st.Positional || back.Resid0 != st.Resid0 {
		t.Fatalf("structure.json round trip: %d heads, positional %d/%d", len(back.Heads), back.Positional, st.Positional)
	}
	// Every kind in every layer; the static pairs turn by ≤ 0.4 rad over
	// the context and the positional ones by more.
	for l := range cfg.NumLayers {
		var kinds []string
		for _, h := range back.Heads {
			if h.Layer == l {
				kinds = append(kinds, h.Kind)
			}
		}
		for _, k := range []string{KindLocal, KindSlash, KindStripe, KindSink, KindBroad} {
			if !slices.Contains(kinds, k) {
				t.Fatalf("layer %d lacks a %s head: %v", l, k, kinds)
			}
		}
	}
	inv := model.RopeInvFreq(mcfg)
	if inv[st.Positional]*4096 > staticTurn || inv[st.Positional-1]*4096 <= staticTurn || len(st.ContentPairs) < 1 {
		t.Fatalf("positional pairs %d: ω·n %v, %v", st.Positional, inv[st.Positional-1]*4096, inv[st.Positional]*4096)
	}
	// o_proj and down_proj write only the residual coordinates, so layer
	// 1's queries and keys read what layer 0 read.
	h := cfg.HiddenSize
	for l, L := range w.Layers {
		for i := 0; i < st.Resid0; i++ {
			for _, row := range [][]float32{L.O[i*cfg.QDim() : (i+1)*cfg.QDim()], L.Down[i*cfg.IntermediateSize : (i+1)*cfg.IntermediateSize]} {
				if slices.ContainsFunc(row, func(v float32) bool { return v != 0 }) {
					t.Fatalf("layer %d writes coordinate %d < resid0 %d", l, i, st.Resid0)
				}
			}
		}
		for r := 0; r < cfg.KVDim(); r++ {
			if L.K[r*h+st.UQ] != 0 || slices.ContainsFunc(L.K[r*h+st.Resid0:(r+1)*h], func(v float32) bool { return v != 0 }) {
				t.Fatalf("layer %d key row %d reads UQ or the residual coordinates", l, r)
			}
		}
	}
	// Every embedding row has RMS 1.
	for tok := range cfg.VocabSize {
		var ss float64
		for _, v := range w.Embed[tok*h : (tok+1)*h] {
			ss += float64(v) * float64(v)
		}
		if rms := math.Sqrt(ss / float64(h)); math.Abs(rms-1) > 1e-3 {
			t.Fatalf("token %d embedding RMS %v", tok, rms)
		}
	}
	// Same seed, same bytes; another seed, other weights.
	dir2, dir3 := t.TempDir(), t.TempDir()
	if _, err := WriteStructuredModel(dir2, cfg, 4096, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteStructuredModel(dir3, cfg, 4096, 4); err != nil {
		t.Fatal(err)
	}
	read := func(d, f string) []byte {
		b, err := os.ReadFile(filepath.Join(d, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, f := range []string{model.SafetensorsFileName, StructureFileName, model.ConfigFileName, "tokenizer.json"} {
		if !bytes.Equal(read(dir, f), read(dir2, f)) {
			t.Fatalf("%s differs between two runs with the same seed", f)
		}
	}
	if bytes.Equal(read(dir, model.SafetensorsFileName), read(dir3, model.SafetensorsFileName)) {
		t.Fatal("the seed changes nothing")
	}
}

func TestWriteStructuredModelRejects(t *testing.T) {
	good := structuredTestConfig()
	for name, tc := range map[string]struct {
		cfg    func(*model.Config)
		ctxLen int
	}{
		"qkv bias":       {func(c *model.Config) { c.Architecture, c.QKVBias = model.ArchQwen2, true }, 4096},
		"small vocab":    {func(c *model.Config) { c.VocabSize = 100 }, 4096},
		"short context":  {func(c *model.Config) {}, 100},
		"small head":     {func(c *model.Config) { c.HeadDim = 16 }, 4096},
		"small hidden":   {func(c *model.Config) { c.HiddenSize = 32 }, 4096},
		"too long":       {func(c *model.Config) { c.HeadDim = 32; c.HiddenSize = 256 }, 1 << 30},
		"invalid config": {func(c *model.Config) { c.NumKVHeads = 3 }, 4096},
	} {
		c := good
		tc.cfg(&c)
		if _, err := WriteStructuredModel(t.TempDir(), c, tc.ctxLen, 1); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestStructuredAttention is the CPU check of the vehicle at test size:
// the exact attention of every head of layers 0 and 1 on a 2K structured
// prompt shows what was planted.
func TestStructuredAttention(t *testing.T) {
	if testing.Short() {
		t.Skip("exact attention of 16 heads at n = 2048 (about 10 s)")
	}
	dir := t.TempDir()
	if _, err := WriteStructuredModel(dir, structuredTestConfig(), 4096, 1); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStructure(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2048
	spec := PromptSpec{StripeAEvery: 256, StripeBEvery: 1024}
	rep, err := AttentionDensity(context.Background(), DensityParams{Model: dir, N: n, Seed: 1, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*DensityResults)
	if !res.Exact || len(res.Heads) != 16 || res.QueryBlocks != n/128 {
		t.Fatalf("exact %v, %d heads, %d query blocks", res.Exact, len(res.Heads), res.QueryBlocks)
	}
	ids := StructuredPrompt(n, 1, spec)
	var stripePos []int
	for i, id := range ids {
		if id == StripeTokenA || id == StripeTokenB {
			stripePos = append(stripePos, i)
		}
	}
	stripeKeys := float64(len(stripePos)) / n // share of keys that are stripe tokens
	for l := 0; l < 2; l++ {
		var dens []float64
		for _, r := range res.Heads {
			if r.Layer != l {
				continue
			}
			dens = append(dens, r.Density)
			sh := st.Head(l, r.Head)
			bad := func(what string) { t.Errorf("layer %d head %d (%+v): %s; measured %+v", l, r.Head, *sh, what, r) }
			if r.Kind != sh.Kind {
				bad("kind not reported")
			}
			if r.Density <= 0 || r.Density > 1 {
				bad("density outside (0, 1]")
			}
			switch sh.Kind {
			case KindSink:
				if r.Sink < 0.3 {
					bad("sink head puts < 0.3 on token 0")
				}
			case KindBroad:
				if r.Density < 0.6 {
					bad("broad head density < 0.6")
				}
			case KindStripe:
				if r.Stripe < 20*stripeKeys || !slices.ContainsFunc(r.TopColumns[:3], func(j int) bool { return slices.Contains(stripePos, j) }) {
					bad("stripe head: stripe share under 20× the stripe tokens' share of keys, or no stripe token among its top 3 columns")
				}
			case KindSlash:
				if sh.Slash >= 16 && sh.Slash < n/2 && r.SlashMass < 0.05 {
					bad("slash head: < 0.05 of its attention within ±2 of the planted offset")
				}
				if sh.Slash < 16 && r.Local < 0.5 {
					bad("short slash head: local share < 0.5")
				}
			case KindLocal:
				if sh.Window <= 64 && (r.Local < 0.4 || r.Density > 0.4) {
					bad("narrow local head: local share < 0.4 or density > 0.4 (3 of the 16 blocks a row)")
				}
			}
			if sh.Kind != KindSink && sh.Kind != KindBroad && sh.SinkShare >= 0.15 && r.Sink < 0.03 {
				bad("planned sink share ≥ 0.15 gives < 0.03")
			}
		}
		if slices.Max(dens)-slices.Min(dens) < 0.4 {
			t.Errorf("layer %d: head densities %v do not differ by 0.4", l, dens)
		}
	}
	if s := res.Layers[len(res.Layers)-1]; s.Layer != -1 || s.Heads != 16 || !(s.Density > 0.05 && s.Density < 0.8) {
		t.Errorf("overall %+v", s)
	}
	// Layer 0 writes only coordinates no query or key reads, so feeding
	// layer 1 the embeddings (what bench density --approx does at lengths
	// where layer 0 cannot be run in full) changes its densities little.
	rep1, err := AttentionDensity(context.Background(), DensityParams{Model: dir, N: n, Seed: 1, Spec: spec, Layers: []int{1}, Approx: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rep1.Results.(*DensityResults).Heads {
		exact := res.Heads[8+i]
		if exact.Layer != 1 || exact.Head != r.Head || math.Abs(exact.Density-r.Density) > 0.02 || math.Abs(exact.Sink-r.Sink) > 0.02 {
			t.Errorf("layer 1 head %d: approx density %.3f sink %.3f, exact %.3f %.3f", r.Head, r.Density, r.Sink, exact.Density, exact.Sink)
		}
	}
	if t.Failed() {
		t.Log("\n" + Markdown(rep, DensityTables(res)))
	}
}

// TestAttentionDensityForward checks the density run's forward pass (the
// layers it runs in full to feed the next) against ref.Llama, and
// that sampling and the embedding approximation are reported as such.
func TestAttentionDensityForward(t *testing.T) {
	dir := t.TempDir()
	cfg := structuredTestConfig()
	cfg.NumLayers = 3
	if _, err := WriteStructuredModel(dir, cfg, 4096, 2); err != nil {
		t.Fatal(err)
	}
	const n = 300
	rep, err := AttentionDensity(context.Background(), DensityParams{Model: dir, N: n, Seed: 3, Block: 32, Layers: []int{2}, Heads: []int{1, 5}})
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results.(*DensityResults)
	if len(res.Heads) != 2 || res.Heads[0].Layer != 2 || res.Heads[1].Head != 5 || !res.Exact {
		t.Fatalf("rows %+v", res.Heads)
	}
	mcfg, w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The density run ran layers 0 and 1 in full to feed layer 2: its
	// residual stream after layer 1 gives the logits of a 2-layer
	// reference.
	cfg2 := *mcfg
	cfg2.NumLayers = 2
	w2 := *w
	w2.Layers = w2.Layers[:2]
	ref2, err := ref.NewLlama(&cfg2, &w2)
	if err != nil {
		t.Fatal(err)
	}
	ids := StructuredPrompt(n, 3, PromptSpec{})
	logits, err := ref2.ForwardF64(ids)
	if err != nil {
		t.Fatal(err)
	}
	want := logits[n-1]
	x := rmsNorm64(res.LastHidden, w.Norm, cfg.RMSNormEps)
	got := project(w.LMHead, nil, cfg.VocabSize, cfg.HiddenSize, x)
	var maxErr, maxAbs float64
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
		maxAbs = math.Max(maxAbs, math.Abs(want[i]))
	}
	if maxErr > 1e-9*math.Max(1, maxAbs) {
		t.Fatalf("last-position logits after 2 layers differ from ref.Llama by %g (max |logit| %g)", maxErr, maxAbs)
	}
	// Sampled and approximate runs say so.
	rep, err = AttentionDensity(context.Background(), DensityParams{Model: dir, N: n, Seed: 3, Block: 32, Layers: []int{1}, Heads: []int{0}, Sample: 3, Approx: true})
	if err != nil {
		t.Fatal(err)
	}
	res = rep.Results.(*DensityResults)
	if res.Exact || res.Heads[0].QueryBlocks != 3 || len(rep.Notes) < 3 {
		t.Fatalf("sampled approximate run: exact %v, %d query blocks, notes %v", res.Exact, res.Heads[0].QueryBlocks, rep.Notes)
	}
	for _, p := range []DensityParams{
		{Model: dir, N: 1},
		{Model: dir, N: 10, Layers: []int{3}},
		{Model: dir, N: 10, Heads: []int{8}},
		{Model: dir, N: 10, Prompt: "corpus"},
		{Model: dir, N: 10, Mass: 1.5},
		{Model: dir, N: 10, Block: -1},
		{Model: filepath.Join(dir, "missing"), N: 10},
	} {
		if _, err := AttentionDensity(context.Background(), p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}
