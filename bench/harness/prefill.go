package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/share"
)

// ModelParams says which model to load and how (shared by the prefill and
// accuracy benchmarks).
type ModelParams struct {
	Model    string `json:"model"`
	Device   string `json:"device,omitempty"`
	Clusters string `json:"clusters,omitempty"` // for method "share"
	Preset   string `json:"preset,omitempty"`
	// Quantize quantizes floating-point weight matrices on load
	// (shareprefill.Options.Quantize: "q8_0", or "none" or "").
	Quantize string `json:"quantize,omitempty"`
}

// open loads the model for one method with a context of ctxLen tokens.
func (mp ModelParams) open(ctx context.Context, method string, ctxLen int, logf func(string, ...any)) (*shareprefill.Model, error) {
	kind, err := share.ParsePlannerKind(method)
	if err != nil {
		return nil, err
	}
	o := shareprefill.Options{Model: mp.Model, Device: mp.Device, Context: ctxLen, Attention: kind, Preset: mp.Preset, Quantize: mp.Quantize, Logf: logf}
	if kind == share.KindShare {
		o.Clusters = mp.Clusters
	}
	return shareprefill.Open(ctx, o)
}

// PrefillParams configures RunPrefill.
type PrefillParams struct {
	ModelParams
	Lens    []int    `json:"lens"`
	Methods []string `json:"methods"`
	Warmup  int      `json:"warmup"`
	Reps    int      `json:"reps"`
	Seed    uint64   `json:"seed"`
	// Corpus, if set, supplies the prompt tokens (the file's tokens,
	// repeated to the length); otherwise Prompt says how they are drawn.
	Corpus string `json:"corpus,omitempty"`
	// Prompt is "random" (seeded uniform ids; the default) or "structured"
	// (StructuredPrompt, for the structured vehicle).
	Prompt string `json:"prompt,omitempty"`
	// Profile adds one traced prefill per cell (after the timed ones) and
	// reports where its time went (Profile).
	Profile bool `json:"profile,omitempty"`
	// TraceDir, if set, receives the Chrome trace-event file of each
	// cell's traced prefill as trace-METHOD-N.json (it implies Profile).
	// The directory must exist.
	TraceDir string                           `json:"trace_dir,omitempty"`
	Logf     func(format string, args ...any) `json:"-"`
}

// Validate checks every parameter before any work; its errors name the
// parameters by their `bench prefill` flags.
func (p *PrefillParams) Validate() error {
	switch {
	case len(p.Lens) == 0:
		return fmt.Errorf("--lens: no lengths")
	case len(p.Methods) == 0:
		return fmt.Errorf("--methods: no methods")
	case p.Reps < 1:
		return fmt.Errorf("--reps %d: want ≥ 1", p.Reps)
	case p.Warmup < 0:
		return fmt.Errorf("--warmup %d: want ≥ 0", p.Warmup)
	}
	if p.TraceDir != "" {
		if fi, err := os.Stat(p.TraceDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--traces %s: not a directory", p.TraceDir)
		}
	}
	return nil
}

// AttnSummary is what a prefill's attention statistics say.
type AttnSummary struct {
	Density        float64        `json:"density"` // mean computed-block density over heads (1 for dense)
	HeadsPerMethod map[string]int `json:"heads_per_method,omitempty"`
	Excluded       int            `json:"excluded,omitempty"`
	// ExcludedBy counts the heads each exclusion rule kept out of sharing.
	ExcludedBy     map[string]int `json:"excluded_by,omitempty"`
	PlanCPUms      float64        `json:"plan_cpu_ms,omitempty"`
	EstimateGPUms  float64        `json:"estimate_gpu_ms,omitempty"`
	AttentionGPUms float64        `json:"attention_gpu_ms,omitempty"`
	Note           string         `json:"note,omitempty"`
}

// attnSummary reads m's statistics of the last prefill.
func attnSummary(m *shareprefill.Model) (AttnSummary, error) {
	b, err := m.AttentionJSON()
	if err != nil {
		return AttnSummary{}, err
	}
	if len(b) == 0 {
		cfg := m.Config()
		heads := cfg.NumLayers * cfg.NumHeads
		return AttnSummary{Density: 1, HeadsPerMethod: map[string]int{"dense": heads}}, nil
	}
	var st share.Stats
	if err := json.Unmarshal(b, &st); err != nil {
		return AttnSummary{}, fmt.Errorf("attention statistics: %w", err)
	}
	sum := st.Summarize()
	out := AttnSummary{Density: sum.MeanDensity, HeadsPerMethod: sum.HeadsPerMethod, Excluded: sum.Excluded, ExcludedBy: sum.ExcludedBy,
		PlanCPUms: float64(sum.PlanCPU) / 1e6, EstimateGPUms: float64(sum.EstimateGPU) / 1e6,
		AttentionGPUms: float64(sum.AttentionGPU) / 1e6, Note: st.Note}
	if len(st.Layers) == 0 {
		// A dense fallback (short prompt): no planned heads.
		out.Density = 1
	}
	return out, nil
}

// PrefillRow is one (method, length) latency.
type PrefillRow struct {
	Method string `json:"method"`
	N      int    `json:"n"`
	Stat
	TokensPerS     float64 `json:"tokens_per_s"`
	SpeedupVsDense float64 `json:"speedup_vs_dense,omitempty"`
	AttnSummary
	Timer string `json:"timer"`
	// Profile is one traced run (PrefillParams.Profile).
	Profile *Profile `json:"profile,omitempty"`
}

// PrefillResults are the results of RunPrefill.
type PrefillResults struct {
	Model   string       `json:"model"`
	Layers  int          `json:"layers"`
	Heads   int          `json:"heads"`
	KVHeads int          `json:"kv_heads"`
	HeadDim int          `json:"head_dim"`
	Tokens  string       `json:"tokens"` // random, structured or "corpus FILE"
	Rows    []PrefillRow `json:"prefill"`
	Skipped []Skip       `json:"skipped,omitempty"`
}

// promptTokens returns n tokens: the corpus's tokens repeated, or the
// prompt of kind (promptIDs: seeded random ids, or StructuredPrompt).
func promptTokens(m *shareprefill.Model, corpus []int, n int, seed uint64, kind string) ([]int, error) {
	out := make([]int, 0, n)
	if len(corpus) > 0 {
		for len(out) < n {
			out = append(out, corpus[:min(len(corpus), n-len(out))]...)
		}
		return out, nil
	}
	if kind == "" {
		kind = PromptRandom
	}
	cfg := m.Config()
	return promptIDs(kind, &cfg, n, seed, PromptSpec{})
}

// randomPrompt returns n seeded random ids, BOS first when cfg has one.
func randomPrompt(cfg *model.Config, n int, seed uint64) []int {
	out := make([]int, 0, n)
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	if b := cfg.BOSTokenID; b >= 0 {
		out = append(out, b)
	}
	for len(out) < n {
		out = append(out, rng.IntN(cfg.VocabSize))
	}
	return out
}

func readCorpusTokens(m *shareprefill.Model, path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--corpus: %w", err)
	}
	ids := m.Tokenizer().Encode(string(b), true)
	if len(ids) < 2 {
		return nil, fmt.Errorf("--corpus %s: fewer than 2 tokens", path)
	}
	return ids, nil
}

// RunPrefill measures end-to-end prefill latency (all layers, last-position
// logits) per method and length: a fresh KV cache (Engine.Reset) for every
// run, wall time around Model.Prefill, the median after warm-ups. A method
// the build cannot load is recorded as skipped.
func RunPrefill(ctx context.Context, p PrefillParams) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("bench prefill: %w", err)
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	maxLen := slices.Max(p.Lens)
	res := &PrefillResults{Model: p.Model, Tokens: "random"}
	if p.Prompt != "" {
		res.Tokens = p.Prompt
	}
	if p.Corpus != "" {
		res.Tokens = "corpus " + p.Corpus
	}
	var rep *Report
	var corpus []int
	dense := map[int]float64{}
	for _, method := range p.Methods {
		logf("prefill: loading %s for %s (context %d)", p.Model, method, maxLen)
		m, err := p.open(ctx, method, maxLen, nil)
		if err != nil {
			if rep == nil && !isMethodError(err) {
				return nil, err
			}
			res.Skipped = append(res.Skipped, Skip{What: "method " + method, Reason: err.Error()})
			logf("prefill: %s skipped: %v", method, err)
			continue
		}
		err = func() error {
			defer m.Close()
			if rep == nil {
				rep = NewReport("prefill", DeviceOf(m.Device()), p)
				rep.Results = res
				cfg := m.Config()
				res.Layers, res.Heads, res.KVHeads, res.HeadDim = cfg.NumLayers, cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim
				rep.Notef("timer: wall time around Model.Prefill (all layers, last-position logits, fresh KV cache); median of %d runs after %d warm-ups", p.Reps, p.Warmup)
				if _, err := os.Stat(filepath.Join(p.Model, StructureFileName)); err == nil && p.Corpus == "" && p.Prompt != PromptStructured {
					rep.Notef("%s is the structured vehicle, but the prompt is not --prompt structured: its planted structure needs that prompt", p.Model)
				}
				if p.Corpus != "" {
					if corpus, err = readCorpusTokens(m, p.Corpus); err != nil {
						return err
					}
				}
			}
			for _, n := range p.Lens {
				ids, err := promptTokens(m, corpus, n, p.Seed, p.Prompt)
				if err != nil {
					return fmt.Errorf("prefill n=%d: %w", n, err)
				}
				var ms []float64
				var sum AttnSummary
				for i := 0; i < p.Warmup+p.Reps; i++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := m.Reset(); err != nil {
						return err
					}
					t0 := time.Now()
					if _, err := m.Prefill(ctx, ids); err != nil {
						return fmt.Errorf("prefill %s n=%d: %w", method, n, err)
					}
					el := time.Since(t0)
					if i >= p.Warmup {
						ms = append(ms, float64(el.Nanoseconds())/1e6)
					}
					if i == p.Warmup+p.Reps-1 {
						if sum, err = attnSummary(m); err != nil {
							return err
						}
					}
				}
				st := Summarize(ms)
				row := PrefillRow{Method: method, N: n, Stat: st, TokensPerS: finite(float64(n) / (st.Median * 1e-3)), AttnSummary: sum, Timer: "wall"}
				if p.Profile || p.TraceDir != "" {
					trace := ""
					if p.TraceDir != "" {
						trace = filepath.Join(p.TraceDir, fmt.Sprintf("trace-%s-%d.json", method, n))
					}
					pr, err := tracedPrefill(ctx, m, ids, trace)
					if err != nil {
						return fmt.Errorf("prefill %s n=%d: %w", method, n, err)
					}
					row.Profile = &pr
				}
				if method == "dense" {
					dense[n] = st.Median
				}
				logf("prefill: %s n=%d: %.2f ms (density %.3f)", method, n, st.Median, sum.Density)
				res.Rows = append(res.Rows, row)
			}
			return nil
		}()
		if err != nil {
			return rep, err
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("bench prefill: no method could be loaded: %v", res.Skipped)
	}
	for i := range res.Rows {
		if d, ok := dense[res.Rows[i].N]; ok {
			res.Rows[i].SpeedupVsDense = finite(d / res.Rows[i].Median)
		}
	}
	return rep, nil
}

// isMethodError says whether an Open error is about the attention method
// (not wired, bad cluster file) rather than the model or device.
func isMethodError(err error) bool {
	s := err.Error()
	for _, k := range []string{"--attn", "attention", "cluster", "preset"} {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}
