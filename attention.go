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

// newSparseAttention builds the sparse prefill attention of kind (not
// KindDense) for a model of cfg's shape; opts.Clusters, if set, is for
// KindShare.
func newSparseAttention(kind share.PlannerKind, opts Options, cfg *model.Config) (*sgpu.Attention, error) {
	po := share.PlannerOptions{Preset: opts.Preset}
	if opts.Clusters != "" {
		cf, err := share.LoadClusters(opts.Clusters)
		if err != nil {
			return nil, err
		}
		if err := cf.Validate(cfg.NumLayers, cfg.NumHeads); err != nil {
			return nil, fmt.Errorf("cluster file %s does not fit the model (%d layers, %d heads): %w", opts.Clusters, cfg.NumLayers, cfg.NumHeads, err)
		}
		po.Clusters = cf
	}
	p, err := share.NewPlanner(kind, po)
	if err != nil {
		return nil, err
	}
	return sgpu.New(p, sgpu.Options{})
}
