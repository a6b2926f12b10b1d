package harness

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// AccuracyTables renders an accuracy report: the retrieval tables (trained
// format, then InfiniteBench), the perplexity and the ablations.
func AccuracyTables(res *AccuracyResults) []*Table {
	var needle, ib []TaskSummary
	for _, s := range res.Summary {
		if slices.Contains(NeedleTasks, s.Task) {
			needle = append(needle, s)
		} else {
			ib = append(ib, s)
		}
	}
	return nonNil(
		retrievalTable("Retrieval in bench-lm-8k's trained format (exact match of the answer tokens)", needle),
		perplexityTable(res.Perplexity),
		ablationTable(res),
		retrievalTable("InfiniteBench retrieval (greedy; for instruction-following models)", ib),
		skipTable(res.Skipped),
	)
}

// ciString is "0.870 [0.790, 0.922]".
func ciString(x float64, ci Interval, prec int) string {
	return fmt.Sprintf("%s [%s, %s]", f(x, prec), f(ci.Lo, prec), f(ci.Hi, prec))
}

// pairedString is "+3/−1, p 0.625" or "–".
func pairedString(gains, losses *int, p *float64) string {
	if gains == nil || losses == nil || p == nil {
		return "–"
	}
	return fmt.Sprintf("+%d/−%d, p %s", *gains, *losses, pString(*p))
}

func pString(p float64) string {
	if p < 0.001 {
		return "<0.001"
	}
	return f(p, 3)
}

// meanHeads formats mean heads per method, largest first.
func meanHeads(m map[string]float64) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func nString(n int) string {
	if n == 0 {
		return "all"
	}
	return fmt.Sprint(n)
}

func retrievalTable(title string, rows []TaskSummary) *Table {
	if len(rows) == 0 {
		return nil
	}
	t := &Table{Title: title, Header: []string{"task", "n", "method", "correct/total", "accuracy [95 % CI]", "vs dense: +/−, McNemar p", "density", "prefill ms", "heads per method (mean per prefill)"},
		Foot: "Accuracy interval: Wilson 95 %. vs dense: samples this method answers and dense does not (+) and the reverse (−), on the same samples; p: McNemar's exact two-sided test. n = all pools every length."}
	for _, s := range rows {
		acc := ciString(s.Accuracy, s.CI, 3)
		if len(s.QueryAccuracy) > 0 {
			var q []string
			for _, a := range s.QueryAccuracy {
				q = append(q, f(a, 2))
			}
			acc += " (per query " + strings.Join(q, "/") + ")"
		}
		t.Add(s.Task, nString(s.N), s.Method, fmt.Sprintf("%d/%d", s.Correct, s.Total), acc, pairedString(s.Gains, s.Losses, s.P), f(s.Density, 3), f(s.PrefillMs, 1), meanHeads(s.HeadsPerMethod))
	}
	return t
}

func perplexityTable(rows []PPLRow) *Table {
	if len(rows) == 0 {
		return nil
	}
	t := &Table{Title: "Perplexity (held-out text, the same windows for every method)", Header: []string{"n", "method", "windows", "scored tokens", "NLL [95 % CI]", "PPL", "ΔNLL vs dense [95 % CI]", "ΔPPL", "density"},
		Foot: "NLL interval: Student-t over windows (each window one unit). ΔNLL: paired over the same windows."}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b PPLRow) int { return a.N - b.N })
	for _, r := range sorted {
		d, rel := "–", "–"
		if r.DeltaNLL != nil && r.DeltaCI != nil {
			d = fmt.Sprintf("%+.4f [%+.4f, %+.4f]", *r.DeltaNLL, r.DeltaCI.Lo, r.DeltaCI.Hi)
		}
		if r.RelPPL != nil {
			rel = fmt.Sprintf("%+.2f %%", 100**r.RelPPL)
		}
		t.Add(fmt.Sprint(r.N), r.Method, fmt.Sprint(r.Windows), fmt.Sprint(r.Scored), ciString(r.NLL, r.CI, 4), f(r.PPL, 3), d, rel, f(r.Density, 3))
	}
	return t
}

func ablationTable(res *AccuracyResults) *Table {
	if len(res.Ablations) == 0 {
		return nil
	}
	t := &Table{Title: "Ablations (the same samples, every length pooled)", Header: []string{"variant", "what", "task", "accuracy [95 % CI]", "vs dense: +/−, p", "vs share: +/−, p", "density", "prefill ms", "heads per method (mean per prefill)", "interpretation"},
		Foot: "The first rows are the main methods on the same task. p: McNemar's exact two-sided test on the paired samples. prefill ms: mean wall time of the prompt prefills (planning included); rows with a sample subset average over fewer, equally spread samples."}
	for _, a := range res.Ablations {
		t.Add(a.Label, a.What, a.Task, ciString(a.Accuracy, a.CI, 3), pairedString(a.Gains, a.Losses, a.P),
			pairedString(a.GainsVsShare, a.LossesVsShare, a.PVsShare), f(a.Density, 3), f(a.PrefillMs, 1), meanHeads(a.HeadsPerMethod), a.Interpretation)
	}
	return t
}
