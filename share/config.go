package share

import (
	"errors"
	"fmt"
	"math"
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
}

// PresetNames lists the names accepted by Preset.
var PresetNames = []string{"paper", "release"}

// DefaultConfig returns the "paper" preset.
func DefaultConfig() Config {
	c, _ := Preset("paper")
	return c
}

// Preset returns the named knob set of docs/algorithm.md#presets: "paper" (the
// default; an empty name selects it) or "release" (the official evaluation
// scripts).
func Preset(name string) (Config, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "paper":
		return Config{
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
		}, nil
	case "release":
		return Config{
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
		}, nil
	}
	return Config{}, fmt.Errorf("share: unknown preset %q (want one of %s)", name, strings.Join(PresetNames, ", "))
}

// jsdMax is the largest possible JSD with the natural log: √ln2.
var jsdMax = math.Sqrt(math.Ln2)

// Validate reports the first invalid knob.
func (c *Config) Validate() error {
	var errs []error
	if c.BlockSize < 1 {
		errs = append(errs, fmt.Errorf("BlockSize %d must be ≥ 1", c.BlockSize))
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
	if !(c.Gamma > 0 && c.Gamma <= 1) {
		errs = append(errs, fmt.Errorf("Gamma %v must be in (0, 1]", c.Gamma))
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
		errs = append(errs, fmt.Errorf("Delta %v must be a finite value ≥ 0", c.Delta))
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
