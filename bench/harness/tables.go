package harness

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// g3 formats with 3 significant digits (TFLOP/s from a CPU driver to an H200).
func g3(x float64) string { return strconv.FormatFloat(x, 'g', 3, 64) }

func rng2(s Stat) string { return f(s.P20, 3) + "–" + f(s.P80, 3) }

func skipTable(sk []Skip) *Table {
	if len(sk) == 0 {
		return nil
	}
	t := &Table{Title: "Skipped", Header: []string{"what", "n", "reason"}}
	for _, s := range sk {
		n := ""
		if s.N > 0 {
			n = fmt.Sprint(s.N)
		}
		t.Add(s.What, n, s.Reason)
	}
	return t
}

func nonNil(ts ...*Table) []*Table {
	return slices.DeleteFunc(ts, func(t *Table) bool { return t == nil })
}

// KernelTables renders a kernels report.
func KernelTables(res *KernelResults) []*Table {
	at := &Table{Title: "Attention (f16 in, f32 softmax, causal)", Header: []string{"n", "kind", "density", "computed density", "median ms", "p20–p80 ms", "TFLOP/s actual", "TFLOP/s dense-eq", "speed-up vs dense"},
		Foot: "dense-eq TFLOP/s = 2·Hq·n²·D / t; actual = 4·B²·D·Σ_heads(full + ½·diagonal blocks) / t; computed density = listed / causal blocks"}
	for _, r := range res.Attention {
		at.Add(fmt.Sprint(r.N), r.Kind, f(r.Density, 2), f(r.ComputedDensity, 3), f(r.Median, 3), rng2(r.Stat),
			g3(r.TFLOPsActual), g3(r.TFLOPsDenseEq), f(r.SpeedupVsDense, 2))
	}
	if len(res.Attention) == 0 {
		at = nil
	}
	var et, mt *Table
	if len(res.Estimation) > 0 {
		et = &Table{Title: "Estimation kernels", Header: []string{"n", "kernel", "variant", "heads", "median ms", "p20–p80 ms"}}
		for _, r := range res.Estimation {
			et.Add(fmt.Sprint(r.N), r.Name, r.Variant, fmt.Sprint(r.Heads), f(r.Median, 3), rng2(r.Stat))
		}
	}
	if len(res.MatMul) > 0 {
		mt = &Table{Title: "MatMul (Llama-3-8B shapes; f16 weights and activations, f32 accumulation)", Header: []string{"layer", "M×N×K", "variant", "median ms", "p20–p80 ms", "TFLOP/s"},
			Foot: "TFLOP/s = 2·M·N·K / t"}
		for _, r := range res.MatMul {
			mt.Add(r.Name, fmt.Sprintf("%d×%d×%d", r.M, r.N, r.K), r.Variant, f(r.Median, 3), rng2(r.Stat), g3(r.TFLOPs))
		}
	}
	return nonNil(at, et, mt, quantTable(res.QuantMatMul), skipTable(res.Skipped))
}

func methodsOf[T any](rows []T, method func(T) string) []string {
	var out []string
	for _, r := range rows {
		if m := method(r); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func headsString(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// PrefillTables renders a prefill report: a latency pivot (rows n, one
// column per method) and the detail table.
func PrefillTables(res *PrefillResults) []*Table {
	methods := methodsOf(res.Rows, func(r PrefillRow) string { return r.Method })
	piv := &Table{Title: "Prefill latency, median ms (speed-up vs dense)", Header: append([]string{"n"}, methods...)}
	var lens []int
	byKey := map[string]PrefillRow{}
	for _, r := range res.Rows {
		if !slices.Contains(lens, r.N) {
			lens = append(lens, r.N)
		}
		byKey[fmt.Sprint(r.Method, r.N)] = r
	}
	for _, n := range lens {
		cells := []string{fmt.Sprint(n)}
		for _, m := range methods {
			r, ok := byKey[fmt.Sprint(m, n)]
			switch {
			case !ok:
				cells = append(cells, "–")
			case r.SpeedupVsDense > 0 && m != "dense":
				cells = append(cells, fmt.Sprintf("%s (%.2f×)", f(r.Median, 2), r.SpeedupVsDense))
			default:
				cells = append(cells, f(r.Median, 2))
			}
		}
		piv.Add(cells...)
	}
	det := &Table{Title: "Prefill detail", Header: []string{"method", "n", "median ms", "p20–p80 ms", "tokens/s", "density", "heads per method", "estimate GPU ms", "attention GPU ms", "plan CPU ms", "note"}}
	for _, r := range res.Rows {
		det.Add(r.Method, fmt.Sprint(r.N), f(r.Median, 2), rng2(r.Stat), f(r.TokensPerS, 0), f(r.Density, 3), headsString(r.HeadsPerMethod),
			f(r.EstimateGPUms, 2), f(r.AttentionGPUms, 2), f(r.PlanCPUms, 2), r.Note)
	}
	return nonNil(piv, det, profileTable(res.Rows), skipTable(res.Skipped))
}
