package harness

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/share"
)

// Variant is one attention configuration of the accuracy benchmark: a
// method with its preset and cluster file, under a label.
type Variant struct {
	Label string `json:"label"`
	// Attention is dense, vs, flex or share.
	Attention string `json:"attention"`
	// Preset is a share.Preset spec (e.g. "paper:exclusion=none").
	Preset string `json:"preset,omitempty"`
	// Clusters is the cluster file (share only; empty: none).
	Clusters string `json:"clusters,omitempty"`
	// What says in a few words what the variant changes.
	What string `json:"what,omitempty"`
	// Samples, when > 0, runs only this many of the trained-format samples
	// per task and length, spread evenly over the depth strata (paired
	// tests then use the same subset).
	Samples int `json:"samples,omitempty"`
	// PPL also scores the perplexity windows for this variant (the main
	// methods always do; an ablation only with PPL set), so that its
	// ΔNLL against dense is paired over the same windows.
	PPL bool `json:"ppl,omitempty"`
}

// keeps says whether the variant runs stratum i of total.
func (v Variant) keeps(i, total int) bool {
	k := v.Samples
	if k <= 0 || k >= total {
		return true
	}
	return i*k%total < k
}

// ParseVariant parses "label=attention[/preset][@clusters]", e.g.
// "no-excl=share/paper:exclusion=none@bench/clusters-bench-lm-8k.json".
func ParseVariant(s string) (Variant, error) {
	label, rest, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || label == "" || rest == "" {
		return Variant{}, fmt.Errorf("variant %q: want label=attention[/preset][@clusters]", s)
	}
	v := Variant{Label: label}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		v.Clusters, rest = rest[i+1:], rest[:i]
	}
	v.Attention, v.Preset, _ = strings.Cut(rest, "/")
	if k, err := share.ParsePlannerKind(v.Attention); err == nil {
		v.Attention = string(k) // the canonical name, which the suites compare
	}
	if err := v.check(); err != nil {
		return Variant{}, err
	}
	return v, nil
}

// String is the ParseVariant form.
func (v Variant) String() string {
	s := v.Label + "=" + v.Attention
	if v.Preset != "" {
		s += "/" + v.Preset
	}
	if v.Clusters != "" {
		s += "@" + v.Clusters
	}
	return s
}

func (v Variant) check() error {
	if v.Label == "" || strings.ContainsAny(v.Label, " \t") {
		return fmt.Errorf("variant %q: the label must be one word", v.Label)
	}
	if _, err := share.ParsePlannerKind(v.Attention); err != nil {
		return fmt.Errorf("variant %s: %w", v.Label, err)
	}
	if v.Preset != "" {
		if _, err := share.Preset(v.Preset); err != nil {
			return fmt.Errorf("variant %s: %w", v.Label, err)
		}
	}
	if v.Clusters != "" && v.Attention != "share" {
		return fmt.Errorf("variant %s: a cluster file needs attention share", v.Label)
	}
	if v.Clusters != "" {
		if _, err := os.Stat(v.Clusters); err != nil {
			return fmt.Errorf("variant %s: cluster file: %w", v.Label, err)
		}
	}
	return nil
}

// SuiteFiles are the files a suite's ablations read: the main cluster file
// (ModelParams.Clusters, from the autoencoder), the one clustered from
// pooled maps (calibrate --representation pooled) and further ones cut at
// other cluster counts or thresholds, each labelled.
type SuiteFiles struct {
	Pooled string
	// Alt maps a label suffix (e.g. "k4") to a cluster file.
	Alt map[string]string
}

// Suite is a named accuracy benchmark: lengths, tasks, sample counts,
// perplexity windows and the ablations, for one model.
type Suite struct {
	Name string
	// Model says which model the suite was made for.
	Model  string
	Params AccuracyParams
	// Ablations builds the ablation variants from the main cluster file
	// and the others.
	Ablations func(clusters string, files SuiteFiles) []Variant
}

// Suites are the accuracy suites by name: "bench-lm-8k" (the device run:
// retrieval in the model's trained format at 4K–16K, perplexity on the
// held-out Go files at 8K and 16K, the ablations of the paper) and "ci"
// (the same at tiny sizes, for lavapipe and a tiny random model).
func Suites() map[string]Suite {
	return map[string]Suite{
		"bench-lm-8k": {
			Name:  "bench-lm-8k",
			Model: "bench-lm-8k (27M Llama, 8 layers × 8 heads, trained on the needle format at 2K–16K)",
			Params: AccuracyParams{
				ModelParams:   ModelParams{Preset: "paper"},
				Lens:          []int{4096, 8192, 12288, 16384},
				Methods:       []string{"dense", "share", "flex", "vs"},
				LateMethods:   []string{"vs"},
				MethodSamples: map[string]int{"vs": 20},
				Tasks:         []string{"secret", "secret2", "secret-multi"},
				Samples:       100,
				TaskSamples:   map[string]int{"secret2": 50, "secret-multi": 50},
				PPLLens:       []int{8192, 16384},
				PPLSource:     "go",
				Seed:          1,
			},
			Ablations: lmAblations,
		},
		"ci": {
			Name:  "ci",
			Model: "any small model (tests: a tiny random model with a byte tokenizer)",
			Params: AccuracyParams{
				ModelParams: ModelParams{Preset: "paper:block=32,min_budget=64"},
				FlexPreset:  "flex:block=32,min_budget=64",
				Lens:        []int{384},
				Methods:     []string{"dense", "flex", "share"},
				Tasks:       []string{"secret", "secret2", "secret-multi"},
				Samples:     2,
				TaskSamples: map[string]int{"secret2": 1, "secret-multi": 1},
				PPLLens:     []int{256},
				PPLWindows:  3,
				Seed:        1,
			},
			Ablations: func(clusters string, files SuiteFiles) []Variant {
				return []Variant{
					{Label: "share-no-sharing", Attention: "share", Preset: "paper:block=32,min_budget=64", What: "no cluster file: every head alone"},
					{Label: "share-no-exclusion", Attention: "share", Preset: "paper:block=32,min_budget=64,exclusion=none", Clusters: clusters, What: "no sparse-head exclusion"},
				}
			},
		},
	}
}

// SuiteNames lists the suites, sorted.
func SuiteNames() []string {
	var s []string
	for k := range Suites() {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// lmAblations are the paper's ablations on bench-lm-8k, all against the
// main `share` run (preset paper, the autoencoder cluster file).
func lmAblations(clusters string, files SuiteFiles) []Variant {
	vs := []Variant{
		{Label: "share-no-sharing", Attention: "share", Preset: "paper", What: "no sharing: no cluster file, every head alone (VS with γ budgets)"},
		{Label: "share-no-exclusion", Attention: "share", Preset: "paper:exclusion=none", Clusters: clusters, What: "no sparse-head exclusion"},
		{Label: "share-excl-vs-coverage", Attention: "share", Preset: "paper:exclusion=vs-coverage", Clusters: clusters, What: "the release's exclusion (pivot vs_ratio ≥ τ_f 0.95) instead of the paper's JSD(V, U) > δ"},
		{Label: "share-excl-delta0.5", Attention: "share", Preset: "paper:delta=0.5", Clusters: clusters, What: "the paper's exclusion at δ = 0.5 (fewer heads excluded)"},
		{Label: "share-release", Attention: "share", Preset: "release", Clusters: clusters, What: "the release preset (γ 0.95, τ_s 0.5, vs-coverage, query-aware τ 0.1, shared_clusters only)"},
		{Label: "flex-gamma0.95", Attention: "flex", Preset: "flex:gamma=0.95", PPL: true, What: "FlexPrefill with its Llama-3.1-8B γ = 0.95"},
		{Label: "share-gamma0.95", Attention: "share", Preset: "paper:gamma=0.95", Clusters: clusters, PPL: true, What: "the paper preset at γ 0.95 (budgets keep more mass: density against perplexity)"},
		{Label: "share-gamma0.98", Attention: "share", Preset: "paper:gamma=0.98", Clusters: clusters, PPL: true, What: "the paper preset at γ 0.98"},
	}
	if files.Pooled != "" {
		vs = append(vs, Variant{Label: "share-pooled-clusters", Attention: "share", Preset: "paper", Clusters: files.Pooled, What: "clusters from pooled maps (calibrate --representation pooled), no autoencoder"})
	}
	var alt []string
	for k := range files.Alt {
		alt = append(alt, k)
	}
	sort.Strings(alt)
	for _, k := range alt {
		vs = append(vs, Variant{Label: "share-clusters-" + k, Attention: "share", Preset: "paper", Clusters: files.Alt[k], What: "clusters cut at " + k})
	}
	if clusters == "" {
		// Without a cluster file the sharing ablations equal no-sharing.
		vs = slices.DeleteFunc(vs, func(v Variant) bool {
			return v.Attention == "share" && v.Clusters == "" && v.Label != "share-no-sharing"
		})
	}
	// Half the samples: the comparisons are paired, 200 samples per row.
	for i := range vs {
		vs[i].Samples = 50
	}
	return vs
}
