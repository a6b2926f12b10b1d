package share

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePlannerKind(t *testing.T) {
	for in, want := range map[string]PlannerKind{"dense": KindDense, "VS": KindVerticalSlash, " flex ": KindFlex, "Share": KindShare} {
		got, err := ParsePlannerKind(in)
		if err != nil || got != want {
			t.Errorf("ParsePlannerKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "bogus", "shareprefill", "vertical-slash"} {
		_, err := ParsePlannerKind(in)
		if err == nil || !strings.Contains(err.Error(), `"`+in+`"`) || !strings.Contains(err.Error(), "dense, vs, flex or share") {
			t.Errorf("ParsePlannerKind(%q): %v; want an error naming the value and listing dense, vs, flex or share", in, err)
		}
	}
}

func TestNewPlanner(t *testing.T) {
	cf, err := LoadClusters("testdata/clusters_official_small.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind     PlannerKind
		opts     PlannerOptions
		name     string
		gamma    float64 // of the SharePrefill configuration, 0: not one
		clusters bool
	}{
		{KindDense, PlannerOptions{}, "dense", 0, false},
		{KindVerticalSlash, PlannerOptions{}, "vertical-slash", 0, false},
		{KindFlex, PlannerOptions{}, "flexprefill", FlexConfig().Gamma, false},
		{KindFlex, PlannerOptions{Preset: "paper:gamma=0.8"}, "flexprefill", 0.8, false},
		{KindShare, PlannerOptions{}, "shareprefill", DefaultConfig().Gamma, false},
		{KindShare, PlannerOptions{Preset: "release", Clusters: cf}, "shareprefill", 0.95, true},
		{"SHARE", PlannerOptions{}, "shareprefill", DefaultConfig().Gamma, false},
	} {
		p, err := NewPlanner(c.kind, c.opts)
		if err != nil {
			t.Fatalf("%s %+v: %v", c.kind, c.opts, err)
		}
		if p.Name() != c.name {
			t.Errorf("%s: planner %s, want %s", c.kind, p.Name(), c.name)
		}
		if sp, ok := p.(*SharePrefill); ok {
			if sp.Config().Gamma != c.gamma || (sp.clusters != nil) != c.clusters {
				t.Errorf("%s %+v: γ %v, clusters %v; want γ %v, clusters %v", c.kind, c.opts, sp.Config().Gamma, sp.clusters != nil, c.gamma, c.clusters)
			}
		} else if c.gamma != 0 {
			t.Errorf("%s: planner %T, want a *SharePrefill", c.kind, p)
		}
	}
	for _, c := range []struct {
		kind PlannerKind
		opts PlannerOptions
		want string
	}{
		{"bogus", PlannerOptions{}, `unknown attention method "bogus"`},
		{KindFlex, PlannerOptions{Clusters: cf}, "a cluster file needs attention method share, not flex"},
		{KindVerticalSlash, PlannerOptions{Clusters: cf}, "a cluster file needs attention method share, not vs"},
		{KindShare, PlannerOptions{Preset: "nope"}, `unknown preset "nope"`},
		{KindShare, PlannerOptions{Preset: "paper:gamma=2"}, "gamma"},
	} {
		p, err := NewPlanner(c.kind, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v; want an error containing %q", c.kind, c.opts, err, c.want)
		}
		if p != nil {
			t.Errorf("%s %+v: planner %#v with the error, want nil", c.kind, c.opts, p)
		}
	}
}

// TestAsPlannerNoTypedNil: a constructor's error gives a nil Planner (a
// typed nil pointer in the interface would compare non-nil).
func TestAsPlannerNoTypedNil(t *testing.T) {
	if p, err := asPlanner[*Dense](nil, errors.New("bad")); p != nil || err == nil {
		t.Errorf("asPlanner(nil, error) = %#v, %v; want nil and the error", p, err)
	}
}
