package shareprefill

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/share"
	sgpu "github.com/shareprefill/shareprefill/share/gpu"
)

// sparseStats adapts share/gpu's statistics to attentionStats.
type sparseStats struct{ a *sgpu.Attention }

// Summary is one line: planner, density and heads per method.
func (s sparseStats) Summary() string {
	st := s.a.PlannedStats()
	if st == nil {
		if last := s.a.Stats(); last != nil && s.a.Calls().Planned == 0 {
			return fmt.Sprintf("%s: every call ran dense (%s)", s.a.Planner().Name(), last.Note)
		}
		return s.a.Planner().Name() + " (no prefill yet)"
	}
	sum := st.Summarize()
	var parts []string
	keys := make([]string, 0, len(sum.HeadsPerMethod))
	for k := range sum.HeadsPerMethod {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, sum.HeadsPerMethod[k]))
	}
	line := fmt.Sprintf("%s, density %.3f, heads: %s", st.Planner, sum.MeanDensity, strings.Join(parts, ", "))
	if sum.Excluded > 0 {
		line += fmt.Sprintf(" (%d excluded as highly sparse)", sum.Excluded)
	}
	if st.Note != "" {
		line += "; " + st.Note
	}
	return line
}

// JSON returns the last planned call's statistics.
func (s sparseStats) JSON() ([]byte, error) {
	st := s.a.PlannedStats()
	if st == nil {
		st = s.a.Stats()
	}
	if st == nil {
		return []byte("{}\n"), nil
	}
	st.Summarize()
	return st.JSON()
}

// NewPlanner builds the share planner for an attention kind: "vs"
// (MInference vertical-slash), "flex" (FlexPrefill) or "share"
// (SharePrefill, with the cluster file at clusters, or none). preset is a
// share.Preset spec: "paper" (default), "release" or "flex", optionally with
// knob overrides; "flex" defaults to "flex" (FlexPrefill's own defaults).
func NewPlanner(kind, preset, clusters string, cfg *model.Config) (share.Planner, error) {
	if kind == "flex" && strings.TrimSpace(preset) == "" {
		preset = "flex"
	}
	pc, err := share.Preset(preset)
	if err != nil {
		return nil, fmt.Errorf("--preset: %w", err)
	}
	if clusters != "" && kind != "share" {
		return nil, fmt.Errorf("--clusters needs --attn share")
	}
	switch kind {
	case "vs":
		return share.NewVerticalSlash(share.DefaultVSConfig())
	case "flex":
		return share.NewFlexPrefill(pc)
	case "share":
		var cf *share.ClusterFile
		if clusters != "" {
			if cf, err = share.LoadClusters(clusters); err != nil {
				return nil, err
			}
			if err := cf.Validate(cfg.NumLayers, cfg.NumHeads); err != nil {
				return nil, fmt.Errorf("cluster file %s does not fit the model (%d layers, %d heads): %w", clusters, cfg.NumLayers, cfg.NumHeads, err)
			}
		}
		return share.NewSharePrefill(pc, cf)
	}
	return nil, fmt.Errorf("unknown attention %q (dense, vs, flex or share)", kind)
}

// newSparseAttention builds a sparse prefill attention backend.
func newSparseAttention(kind string, opts Options, cfg *model.Config) (model.Attention, attentionStats, error) {
	p, err := NewPlanner(kind, opts.Preset, opts.Clusters, cfg)
	if err != nil {
		return nil, nil, err
	}
	a, err := sgpu.New(p, sgpu.Options{})
	if err != nil {
		return nil, nil, err
	}
	return a, sparseStats{a}, nil
}
