package harness

import (
	"context"
	"fmt"
	"slices"

	"github.com/shareprefill/shareprefill/model"
)

// DecodeParams configures RunDecode.
type DecodeParams struct {
	ModelParams
	// Lens are the context depths: decoding starts after a prompt of n
	// tokens.
	Lens []int `json:"lens"`
	// Gen is the number of tokens generated per run (greedy, no stop
	// token); the rate counts the Gen−1 steps after the first token.
	Gen    int                              `json:"gen"`
	Reps   int                              `json:"reps"`
	Warmup int                              `json:"warmup"`
	Seed   uint64                           `json:"seed"`
	Logf   func(format string, args ...any) `json:"-"`
}

// DecodeRow is the decode rate at one context depth.
type DecodeRow struct {
	N          int     `json:"n"`
	Gen        int     `json:"gen"`
	TokensPerS float64 `json:"tokens_per_s"` // median over the runs
	P20, P80   float64 `json:"-"`
	Reps       int     `json:"reps"`
	MsPerToken float64 `json:"ms_per_token"` // at the median rate
	// SubmitsPerToken and WaitsPerToken are the device's counts per
	// generated token (runtime.Counters).
	SubmitsPerToken float64 `json:"submits_per_token"`
	WaitsPerToken   float64 `json:"waits_per_token"`
}

// DecodeResults are the results of RunDecode.
type DecodeResults struct {
	Model string      `json:"model"`
	Rows  []DecodeRow `json:"decode"`
}

// RunDecode measures greedy decode speed after prompts of each length (dense
// prefill; seeded random prompt tokens): Model.GenerateTokens' decode time, which
// excludes the prefill and the first token.
func RunDecode(ctx context.Context, p DecodeParams) (*Report, error) {
	if len(p.Lens) == 0 || p.Gen < 2 || p.Reps < 1 || p.Warmup < 0 {
		return nil, fmt.Errorf("bench decode: need lengths, --gen ≥ 2, --reps ≥ 1 and --warmup ≥ 0")
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctxLen := slices.Max(p.Lens) + p.Gen
	m, err := p.open(ctx, "dense", ctxLen, nil)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	res := &DecodeResults{Model: p.Model}
	rep := NewReport("decode", DeviceOf(m.Device()), p)
	rep.Results = res
	rep.Notef("rate = (gen−1) / decode time of Model.GenerateTokens (greedy, no stop token; after the prefill and the first token); median over %d runs after %d warm-ups", p.Reps, p.Warmup)
	for _, n := range p.Lens {
		ids, err := promptTokens(m, nil, n, p.Seed, PromptRandom)
		if err != nil {
			return rep, err
		}
		var rates []float64
		var sub, wait float64
		for i := 0; i < p.Warmup+p.Reps; i++ {
			if err := m.Reset(); err != nil {
				return rep, err
			}
			st, err := m.GenerateTokens(ctx, ids, model.SampleOptions{MaxTokens: p.Gen}, func(int) error { return nil })
			if err != nil {
				return rep, fmt.Errorf("decode n=%d: %w", n, err)
			}
			if i < p.Warmup {
				continue
			}
			rates = append(rates, st.DecodeTokensPerSecond())
			sub = float64(st.Counters.Submits) / float64(st.GeneratedTokens)
			wait = float64(st.Counters.Waits) / float64(st.GeneratedTokens)
		}
		s := Summarize(rates)
		row := DecodeRow{N: n, Gen: p.Gen, TokensPerS: s.Median, P20: s.P20, P80: s.P80, Reps: s.N, MsPerToken: finite(1e3 / s.Median), SubmitsPerToken: sub, WaitsPerToken: wait}
		logf("decode: n=%d: %.1f tokens/s (%.3f ms/token)", n, s.Median, row.MsPerToken)
		res.Rows = append(res.Rows, row)
	}
	return rep, nil
}

// DecodeTables renders a decode report.
func DecodeTables(res *DecodeResults) []*Table {
	t := &Table{Title: "Greedy decode after a prompt of n tokens", Header: []string{"n", "tokens", "tokens/s (median)", "p20–p80", "ms/token", "submits/token", "host waits/token"}}
	for _, r := range res.Rows {
		t.Add(fmt.Sprint(r.N), fmt.Sprint(r.Gen), f(r.TokensPerS, 1), f(r.P20, 1)+"–"+f(r.P80, 1), f(r.MsPerToken, 3), f(r.SubmitsPerToken, 2), f(r.WaitsPerToken, 2))
	}
	return []*Table{t}
}
