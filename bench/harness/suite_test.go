package harness

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseVariant(t *testing.T) {
	cf := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(cf, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := ParseVariant("noexcl=share/paper:exclusion=none,gamma=0.95@" + cf)
	if err != nil {
		t.Fatal(err)
	}
	if v.Label != "noexcl" || v.Attention != "share" || v.Preset != "paper:exclusion=none,gamma=0.95" || v.Clusters != cf {
		t.Fatalf("%+v", v)
	}
	if back, err := ParseVariant(v.String()); err != nil || back != v {
		t.Fatalf("round trip %+v %v", back, err)
	}
	if v, err := ParseVariant("d=dense"); err != nil || v.Preset != "" || v.Clusters != "" {
		t.Fatalf("%+v %v", v, err)
	}
	for _, bad := range []string{"x", "=share", "x=magic", "x=share/paper:gamma=3", "x=flex@" + cf, "x=share@/no/such/file.json", "a b=dense"} {
		if _, err := ParseVariant(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestVariantKeeps(t *testing.T) {
	for _, tc := range []struct {
		k, total int
		want     []int
	}{
		{0, 5, []int{0, 1, 2, 3, 4}},
		{50, 100, nil}, // checked by count below
		{20, 100, nil},
		{2, 5, []int{0, 3}},
		{9, 5, []int{0, 1, 2, 3, 4}},
	} {
		var got []int
		for i := 0; i < tc.total; i++ {
			if (Variant{Samples: tc.k}).keeps(i, tc.total) {
				got = append(got, i)
			}
		}
		want := min(max(tc.k, 0), tc.total)
		if tc.k == 0 {
			want = tc.total
		}
		if len(got) != want || (tc.want != nil && !slices.Equal(got, tc.want)) {
			t.Errorf("keeps(k=%d, total=%d) = %v", tc.k, tc.total, got)
		}
		if tc.k == 20 && (got[0] != 0 || got[1] != 5 || got[19] != 95) {
			t.Errorf("20 of 100 not evenly spread: %v", got)
		}
	}
}

// TestSuitePlanOrder: the bench-lm-8k suite runs dense, share and flex
// (perplexity, then the first task), the ablations (the γ ones with their
// perplexity), the late method vs,
// then the other tasks; the ablations take half the samples.
func TestSuitePlanOrder(t *testing.T) {
	st := Suites()["bench-lm-8k"]
	p := st.Params
	p.Clusters = "c.json"
	p.Ablations = st.Ablations(p.Clusters, SuiteFiles{})
	if err := p.Validate(); err != nil && !strings.Contains(err.Error(), "held-out") {
		t.Fatal(err)
	}
	p.AblationTasks = []string{"secret"}
	var order []string
	for _, j := range p.plan() {
		w := j.v.Label + ":" + strings.Join(j.tasks, "+")
		if j.ppl {
			w = j.v.Label + ":ppl"
		}
		order = append(order, w)
	}
	want := []string{"dense:ppl", "dense:secret", "share:ppl", "share:secret", "flex:ppl", "flex:secret"}
	for _, v := range p.Ablations {
		if v.PPL {
			want = append(want, v.Label+":ppl")
		}
		want = append(want, v.Label+":secret")
		if v.Samples != 50 {
			t.Errorf("ablation %s: %d samples, want 50", v.Label, v.Samples)
		}
	}
	want = append(want, "vs:ppl", "vs:secret", "dense:secret2+secret-multi", "share:secret2+secret-multi", "flex:secret2+secret-multi", "vs:secret2+secret-multi")
	if !slices.Equal(order, want) {
		t.Fatalf("plan\n%v\nwant\n%v", order, want)
	}
	// The γ sweep and flex γ 0.95 are scored on the perplexity windows
	// (issue 23's +1 % bar), the other ablations are not.
	for _, l := range []string{"share-gamma0.95", "share-gamma0.98", "flex-gamma0.95"} {
		if !slices.Contains(order, l+":ppl") {
			t.Errorf("ablation %s has no perplexity job: %v", l, order)
		}
	}
	if slices.Contains(order, "share-no-exclusion:ppl") {
		t.Errorf("share-no-exclusion has a perplexity job")
	}
	if vs := p.variants()[3]; vs.Label != "vs" || vs.Samples != 20 {
		t.Fatalf("vs variant %+v", vs)
	}
	if f := p.variants()[2]; f.Preset != "flex" {
		t.Fatalf("flex variant %+v", f)
	}
}
