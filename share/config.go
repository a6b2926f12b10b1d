package share

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Exclusion selects how highly sparse heads are kept out of sharing
// (docs/algorithm.md#exclusion).
type Exclusion int

const (
	// ExcludeJSUniform is the paper form: a head whose estimate X is far from
	// the token-uniform distribution (JSD(X, U) > Delta) takes VS directly.
	ExcludeJSUniform Exclusion = iota
	// ExcludeVSCoverage is the release form: a cluster stops sharing once
	// the pivot's own VS set captures at least TauFallback of its mass.
	ExcludeVSCoverage
	// ExcludeNone disables exclusion (the paper's ablation).
	ExcludeNone
)

// String returns the knob value as written in configs and statistics.
func (e Exclusion) String() string {
	switch e {
	case ExcludeJSUniform:
		return "js-uniform"
	case ExcludeVSCoverage:
		return "vs-coverage"
	case ExcludeNone:
		return "none"
	}
	return fmt.Sprintf("Exclusion(%d)", int(e))
}

// ExclusionDist selects the estimate X compared with the uniform
// distribution under ExcludeJSUniform (docs/algorithm.md#exclusion; our choice).
type ExclusionDist int

const (
	// DistVertical compares the block vertical distribution V (default).
	DistVertical ExclusionDist = iota
	// DistSlash compares the block slash distribution S.
	DistSlash
	// DistPooled compares the pooled estimate â.
	DistPooled
)

// String returns the knob value as written in configs and statistics.
func (d ExclusionDist) String() string {
	switch d {
	case DistVertical:
		return "vertical"
	case DistSlash:
		return "slash"
	case DistPooled:
		return "pooled"
	}
	return fmt.Sprintf("ExclusionDist(%d)", int(d))
}

// Symbol names the distribution in formulas: V (block vertical of the last
// B queries), S (block slash) or â (pooled estimate).
func (d ExclusionDist) Symbol() string {
	switch d {
	case DistVertical:
		return "V"
	case DistSlash:
		return "S"
	case DistPooled:
		return "â"
	}
	return d.String()
}

// ShareScope selects which clusters may elect a pivot (docs/algorithm.md#presets).
type ShareScope int

const (
	// ScopeAll lets every cluster of the file elect a pivot and share.
	ScopeAll ShareScope = iota
	// ScopeSharedClusters restricts pivots to the file's shared_clusters.
	ScopeSharedClusters
)

// String returns the knob value as written in configs and statistics.
func (s ShareScope) String() string {
	switch s {
	case ScopeAll:
		return "all"
	case ScopeSharedClusters:
		return "shared-clusters"
	}
	return fmt.Sprintf("ShareScope(%d)", int(s))
}

// Config holds every knob of the SharePrefill online phase
// (docs/algorithm.md#presets). Budgets are in tokens; thresholds are JSD values in
// [0, √ln2] except Gamma and TauFallback, which are mass fractions.
type Config struct {
	// BlockSize is the block edge B in tokens (the kernel tile and the
	// estimate window).
	BlockSize int
	// MinBudget is the floor on the vertical and slash budgets in tokens;
	// it is also the VS size of query-aware and shared heads.
	MinBudget int
	// MaxBudget caps the vertical and slash budgets in tokens; 0 means no cap.
	MaxBudget int
	// Gamma is the cumulative mass threshold γ used by the budgets, the
	// query-aware global cut and the pivot row cover (docs/algorithm.md#gamma).
	Gamma float64
	// TauShare is the share gate on JSD(V_ref, V) and JSD(S_ref, S).
	TauShare float64
	// Exclusion selects the exclusion policy for highly sparse heads.
	Exclusion Exclusion
	// Delta is the JSUniform threshold on JSD(X, U).
	Delta float64
	// ExclusionDist selects X for the JSUniform test.
	ExclusionDist ExclusionDist
	// TauFallback is the VSCoverage threshold on vs_ratio.
	TauFallback float64
	// TauQuery is the query-aware gate on JSD(â, V); 0 switches it off.
	TauQuery float64
	// ShareScope selects which clusters may elect a pivot.
	ShareScope ShareScope
	// VSRatioCompat reproduces the release's vs_ratio over-count
	// (docs/algorithm.md#compatibility-switches).
	VSRatioCompat bool
	// NaNCompat reproduces the release JSD without an epsilon: any zero
	// entry makes the divergence NaN, and every gate comparison fails
	// (docs/algorithm.md#js-gates).
	NaNCompat bool
	// DenseBelow makes every head dense when n < DenseBelow ([project],
	// default 0: never). It exists only to measure the crossover length.
	DenseBelow int
	// ShortBypass is FlexPrefill's short-prompt bypass: every head is dense
	// when n ≤ ShortBypassLen() = max(2B, ⌈MinBudget/B⌉·B) (on in the
	// "flex" preset only). SharePrefill's release has no bypass (§3.0).
	ShortBypass bool
}

// PresetNames lists the base names accepted by Preset.
var PresetNames = []string{"paper", "release", "flex"}

// DefaultConfig returns the "paper" preset.
func DefaultConfig() Config {
	c, _ := Preset("paper")
	return c
}

// Preset returns a named knob set, optionally with overrides:
//
//	base[:knob=value[,knob=value...]]
//
// The bases are "paper" (the default; an empty spec selects it) and
// "release", SharePrefill's two presets of docs/algorithm.md#presets, and "flex",
// FlexPrefill's own defaults (FlexConfig). Overrides name the knobs as
// PresetKnobs lists them, e.g. "paper:exclusion=none" (the ablation without
// sparse-head exclusion) or "release:gamma=0.9,tau_share=0.2". The result
// is validated.
func Preset(spec string) (Config, error) {
	spec = strings.TrimSpace(spec)
	base, over, _ := strings.Cut(spec, ":")
	var c Config
	switch strings.ToLower(strings.TrimSpace(base)) {
	case "", "paper":
		c = Config{
			BlockSize:     128,
			MinBudget:     1024,
			Gamma:         0.9,
			TauShare:      0.2,
			Exclusion:     ExcludeJSUniform,
			Delta:         0.3,
			ExclusionDist: DistVertical,
			TauFallback:   0.95, // unused under JSUniform
			TauQuery:      0,
			ShareScope:    ScopeAll,
		}
	case "release":
		c = Config{
			BlockSize:     128,
			MinBudget:     1024,
			Gamma:         0.95,
			TauShare:      0.5,
			Exclusion:     ExcludeVSCoverage,
			Delta:         0.3, // unused under VSCoverage
			ExclusionDist: DistVertical,
			TauFallback:   0.95,
			TauQuery:      0.1,
			ShareScope:    ScopeSharedClusters,
		}
	case "flex":
		c = FlexConfig()
	default:
		return Config{}, fmt.Errorf("share: unknown preset %q (want one of %s, optionally followed by :knob=value,...)", base, strings.Join(PresetNames, ", "))
	}
	if strings.TrimSpace(over) != "" {
		for _, kv := range strings.Split(over, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return Config{}, fmt.Errorf("share: preset %q: override %q is not knob=value", spec, kv)
			}
			if err := c.setKnob(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)); err != nil {
				return Config{}, fmt.Errorf("share: preset %q: %w", spec, err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("share: preset %q: %w", spec, err)
	}
	return c, nil
}

// FlexConfig returns FlexPrefill's own defaults (arXiv 2502.20766, ICLR'25;
// bytedance/FlexPrefill at a24b27bf): block 128, γ = 0.9, τ = 0.1 (the
// query-aware gate JSD(â, V) < τ), min_budget 1024 tokens, no max_budget,
// and the short-prompt dense bypass (ShortBypass: every head dense when
// n ≤ max(2B, ⌈min_budget/B⌉·B), 1024 tokens here), which
// flex_prefill_attention applies before any estimate. γ = 0.9 and τ = 0.1
// are the library README's values and those of the paper's scripts for
// Yi-9B-200K and Qwen2-7B (experiments/scripts/flex_prefill/*.sh; the
// scripts use γ = 0.95 for Llama-3.1-8B and GLM-4-9B-1M); min_budget 1024
// is the scripts' value (the README example uses 512). FlexPrefill has no
// clusters and no exclusion: Exclusion is ExcludeNone and TauShare,
// Delta and TauFallback are unused.
func FlexConfig() Config {
	return Config{
		BlockSize:     128,
		MinBudget:     1024,
		Gamma:         0.9,
		TauShare:      0, // unused: no clusters
		Exclusion:     ExcludeNone,
		Delta:         0.3, // unused
		ExclusionDist: DistVertical,
		TauFallback:   0.95, // unused
		TauQuery:      0.1,
		ShareScope:    ScopeAll,
		ShortBypass:   true,
	}
}

// PresetKnobs are the override names of Preset, in Config field order.
var PresetKnobs = []string{"block", "min_budget", "max_budget", "gamma", "tau_share", "exclusion", "delta",
	"exclusion_dist", "tau_fallback", "tau_query", "share_scope", "vs_ratio_compat", "nan_compat", "dense_below", "short_bypass"}

// setKnob sets one knob from its override name and text value.
func (c *Config) setKnob(k, v string) error {
	num := func(dst *float64) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("knob %s: %q is not a number", k, v)
		}
		*dst = x
		return nil
	}
	integer := func(dst *int) error {
		x, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("knob %s: %q is not an integer", k, v)
		}
		*dst = x
		return nil
	}
	boolean := func(dst *bool) error {
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("knob %s: %q is not true or false", k, v)
		}
		*dst = x
		return nil
	}
	switch k {
	case "block":
		return integer(&c.BlockSize)
	case "min_budget":
		return integer(&c.MinBudget)
	case "max_budget":
		return integer(&c.MaxBudget)
	case "gamma":
		return num(&c.Gamma)
	case "tau_share":
		return num(&c.TauShare)
	case "exclusion":
		return c.Exclusion.UnmarshalText([]byte(v))
	case "delta":
		return num(&c.Delta)
	case "exclusion_dist":
		return c.ExclusionDist.UnmarshalText([]byte(v))
	case "tau_fallback":
		return num(&c.TauFallback)
	case "tau_query":
		return num(&c.TauQuery)
	case "share_scope":
		return c.ShareScope.UnmarshalText([]byte(v))
	case "vs_ratio_compat":
		return boolean(&c.VSRatioCompat)
	case "nan_compat":
		return boolean(&c.NaNCompat)
	case "dense_below":
		return integer(&c.DenseBelow)
	case "short_bypass":
		return boolean(&c.ShortBypass)
	}
	return fmt.Errorf("unknown knob %q (want one of %s)", k, strings.Join(PresetKnobs, ", "))
}

// ShortBypassLen is the longest prompt that FlexPrefill's short-prompt
// bypass computes densely: max(2B, ⌈MinBudget/B⌉·B) tokens.
func (c *Config) ShortBypassLen() int {
	return max(2*c.BlockSize, ceilDiv(c.MinBudget, c.BlockSize)*c.BlockSize)
}

// DenseFor says whether a prompt of n tokens skips planning and runs every
// head densely: n < DenseBelow, or, with ShortBypass, n ≤ ShortBypassLen().
func (c *Config) DenseFor(n int) bool {
	return n < c.DenseBelow || (c.ShortBypass && n <= c.ShortBypassLen())
}

// DenseReason is the statistics reason of a call of n tokens that DenseFor
// makes dense.
func (c *Config) DenseReason(n int) string {
	if c.ShortBypass && n <= c.ShortBypassLen() {
		return fmt.Sprintf("short-prompt bypass: n = %d ≤ max(2B, ⌈min_budget/B⌉·B) = %d", n, c.ShortBypassLen())
	}
	return fmt.Sprintf("n = %d below DenseBelow = %d", n, c.DenseBelow)
}

// ExclusionKey is the short name of the exclusion rule in the statistics
// (HeadStat.ExcludedBy, Summary.ExcludedBy): "js-uniform(V)" (or (S), (â))
// or "vs-coverage"; "" for ExcludeNone.
func (c *Config) ExclusionKey() string {
	switch c.Exclusion {
	case ExcludeJSUniform:
		return "js-uniform(" + c.ExclusionDist.Symbol() + ")"
	case ExcludeVSCoverage:
		return "vs-coverage"
	}
	return ""
}

// ExclusionRule describes the exclusion test in words, naming the
// distribution it tests, as the statistics report it.
func (c *Config) ExclusionRule() string {
	switch c.Exclusion {
	case ExcludeJSUniform:
		return fmt.Sprintf("js-uniform: a head is excluded (VS with γ budgets, never pivot or shared) when JSD(%s, U) > δ = %g, U the token-uniform distribution pooled to blocks", c.ExclusionDist.Symbol(), c.Delta)
	case ExcludeVSCoverage:
		return fmt.Sprintf("vs-coverage: a cluster stops sharing when its pivot's own γ-budget VS set covers vs_ratio ≥ τ_f = %g of the pivot's exact block map; later members take VS with γ budgets", c.TauFallback)
	case ExcludeNone:
		return "none: no head is excluded"
	}
	return c.Exclusion.String()
}

// jsdMax is the largest possible JSD with the natural log: √ln2.
var jsdMax = math.Sqrt(math.Ln2)

// Validate reports the first invalid knob.
func (c *Config) Validate() error {
	var errs []error
	if err := checkBlockSize(c.BlockSize); err != nil {
		errs = append(errs, fmt.Errorf("BlockSize: %w", err))
	}
	if c.MinBudget < 0 {
		errs = append(errs, fmt.Errorf("MinBudget %d must be ≥ 0", c.MinBudget))
	}
	if c.MaxBudget < 0 {
		errs = append(errs, fmt.Errorf("MaxBudget %d must be ≥ 0 (0 = no cap)", c.MaxBudget))
	}
	if c.MaxBudget > 0 && c.MaxBudget < c.MinBudget {
		errs = append(errs, fmt.Errorf("MaxBudget %d is below MinBudget %d", c.MaxBudget, c.MinBudget))
	}
	if err := CheckGamma(c.Gamma); err != nil {
		errs = append(errs, err)
	}
	if !(c.TauShare >= 0) || math.IsInf(c.TauShare, 0) {
		errs = append(errs, fmt.Errorf("TauShare %v must be a finite value ≥ 0", c.TauShare))
	}
	switch c.Exclusion {
	case ExcludeJSUniform, ExcludeVSCoverage, ExcludeNone:
	default:
		errs = append(errs, fmt.Errorf("unknown Exclusion %d", int(c.Exclusion)))
	}
	if !(c.Delta >= 0) || math.IsInf(c.Delta, 0) {
		errs = append(errs, fmt.Errorf("delta (δ) %v must be a finite value ≥ 0", c.Delta))
	}
	switch c.ExclusionDist {
	case DistVertical, DistSlash, DistPooled:
	default:
		errs = append(errs, fmt.Errorf("unknown ExclusionDist %d", int(c.ExclusionDist)))
	}
	if !(c.TauFallback >= 0) || math.IsInf(c.TauFallback, 0) {
		errs = append(errs, fmt.Errorf("TauFallback %v must be a finite value ≥ 0", c.TauFallback))
	}
	if !(c.TauQuery >= 0) || math.IsInf(c.TauQuery, 0) {
		errs = append(errs, fmt.Errorf("TauQuery %v must be a finite value ≥ 0", c.TauQuery))
	}
	switch c.ShareScope {
	case ScopeAll, ScopeSharedClusters:
	default:
		errs = append(errs, fmt.Errorf("unknown ShareScope %d", int(c.ShareScope)))
	}
	if c.DenseBelow < 0 {
		errs = append(errs, fmt.Errorf("DenseBelow %d must be ≥ 0", c.DenseBelow))
	}
	if len(errs) > 0 {
		return fmt.Errorf("share: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// CheckGamma checks γ, the cumulative-mass threshold of the token budgets,
// the pivot patterns and the query-aware cut (docs/algorithm.md#budgets):
// 0 < γ ≤ 1. It is the one rule for γ: Config.Validate and Needs.Validate
// apply it.
func CheckGamma(gamma float64) error {
	if !(gamma > 0 && gamma <= 1) {
		return fmt.Errorf("gamma (γ) %v outside (0, 1]", gamma)
	}
	return nil
}

// checkBlockSize checks the block size of the CPU planners: B ≥ 1. (The
// block-sparse attention of the GPU path needs a power of two ≥ 8, checked
// by kernels.CheckBlockSize where share/gpu takes a planner.)
func checkBlockSize(b int) error {
	if b < 1 {
		return fmt.Errorf("block size %d < 1", b)
	}
	return nil
}

// NumBlocks returns nb = ⌈n/B⌉.
func NumBlocks(n, blockSize int) int {
	if n <= 0 || blockSize <= 0 {
		return 0
	}
	return (n + blockSize - 1) / blockSize
}

// budgetRange returns the clamp range [lo, hi] in blocks for nv and ns:
// [⌈MinBudget/B⌉, min(⌈MaxBudget/B⌉, nb)], with hi winning when lo > hi.
func (c *Config) budgetRange(nb int) (lo, hi int) {
	lo = ceilDiv(c.MinBudget, c.BlockSize)
	hi = nb
	if c.MaxBudget > 0 {
		hi = min(hi, ceilDiv(c.MaxBudget, c.BlockSize))
	}
	return lo, hi
}

// BlockBudget turns a token count k (from TokenBudget) into a block budget:
// ⌊k/B⌋ + 1 clamped to [⌈MinBudget/B⌉, min(⌈MaxBudget/B⌉, nb)]
// (docs/algorithm.md#budgets). When the floor exceeds the cap the cap wins.
func (c *Config) BlockBudget(k, nb int) int {
	lo, hi := c.budgetRange(nb)
	b := k/c.BlockSize + 1
	b = max(b, lo)
	return min(b, hi)
}

// FloorBudget is the VS budget of query-aware and shared heads:
// ⌈MinBudget/B⌉ clamped to the cap and to nb.
func (c *Config) FloorBudget(nb int) int {
	lo, hi := c.budgetRange(nb)
	return min(lo, hi)
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// MarshalText encodes the policy name.
func (e Exclusion) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText decodes a policy name.
func (e *Exclusion) UnmarshalText(b []byte) error {
	for _, v := range []Exclusion{ExcludeJSUniform, ExcludeVSCoverage, ExcludeNone} {
		if v.String() == string(b) {
			*e = v
			return nil
		}
	}
	return fmt.Errorf("share: unknown exclusion %q", b)
}

// MarshalText encodes the distribution name.
func (d ExclusionDist) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes a distribution name.
func (d *ExclusionDist) UnmarshalText(b []byte) error {
	for _, v := range []ExclusionDist{DistVertical, DistSlash, DistPooled} {
		if v.String() == string(b) {
			*d = v
			return nil
		}
	}
	return fmt.Errorf("share: unknown exclusion distribution %q", b)
}

// MarshalText encodes the scope name.
func (s ShareScope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a scope name.
func (s *ShareScope) UnmarshalText(b []byte) error {
	for _, v := range []ShareScope{ScopeAll, ScopeSharedClusters} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("share: unknown share scope %q", b)
}
