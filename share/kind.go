package share

import (
	"fmt"
	"strings"
)

// PlannerKind names a prefill attention method: exact dense attention or one
// of the sparse planners. (Method, by contrast, is what a planner chose for
// one head.)
type PlannerKind string

// The prefill attention methods.
const (
	// KindDense is exact causal attention for every head.
	KindDense PlannerKind = "dense"
	// KindVerticalSlash is MInference's vertical-slash pattern (VerticalSlash).
	KindVerticalSlash PlannerKind = "vs"
	// KindFlex is FlexPrefill (NewFlexPrefill).
	KindFlex PlannerKind = "flex"
	// KindShare is SharePrefill (NewSharePrefill).
	KindShare PlannerKind = "share"
)

// PlannerKinds returns every kind, dense first.
func PlannerKinds() []PlannerKind {
	return []PlannerKind{KindDense, KindVerticalSlash, KindFlex, KindShare}
}

// ParsePlannerKind parses a kind name in any letter case ("dense", "vs",
// "flex" or "share"). Any other string, the empty one included, is an error
// that names it and lists the valid names.
func ParsePlannerKind(s string) (PlannerKind, error) {
	k := PlannerKind(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range PlannerKinds() {
		if k == v {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown attention method %q (%s)", s, kindList())
}

// kindList is "dense, vs, flex or share".
func kindList() string {
	ks := PlannerKinds()
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = string(k)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// PlannerOptions configures NewPlanner.
type PlannerOptions struct {
	// Preset is a Preset spec. Empty selects the kind's default: "flex"
	// (FlexConfig) for KindFlex, "paper" for the others. KindVerticalSlash
	// takes DefaultVSConfig and uses no preset; KindDense uses only its
	// block size.
	Preset string
	// Clusters is the cluster file of KindShare (nil: every head alone). It
	// is checked against the model when a call begins; a cluster file for
	// another kind is an error.
	Clusters *ClusterFile
}

// NewPlanner returns the planner of kind with the options o.
func NewPlanner(kind PlannerKind, o PlannerOptions) (Planner, error) {
	k, err := ParsePlannerKind(string(kind))
	if err != nil {
		return nil, fmt.Errorf("share: new planner: %w", err)
	}
	preset := o.Preset
	if k == KindFlex && strings.TrimSpace(preset) == "" {
		preset = "flex"
	}
	cfg, err := Preset(preset)
	if err != nil {
		return nil, err
	}
	if o.Clusters != nil && k != KindShare {
		return nil, fmt.Errorf("share: new planner: a cluster file needs attention method %s, not %s", KindShare, k)
	}
	switch k {
	case KindDense:
		return asPlanner(NewDense(cfg.BlockSize))
	case KindVerticalSlash:
		return asPlanner(NewVerticalSlash(DefaultVSConfig()))
	case KindFlex:
		return asPlanner(NewFlexPrefill(cfg))
	}
	return asPlanner(NewSharePrefill(cfg, o.Clusters))
}

// asPlanner returns a constructor's result as a Planner: nil, not a typed
// nil pointer, with an error.
func asPlanner[P Planner](p P, err error) (Planner, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
