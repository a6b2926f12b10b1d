package share_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/share"
)

func TestClusterFileRoundTrip(t *testing.T) {
	for _, name := range []string{"clusters_official_small.json", "clusters_extended_small.json"} {
		f, err := share.LoadClusters(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(4, 8); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(f.Clusters) != 6 {
			t.Fatalf("%s: %d clusters", name, len(f.Clusters))
		}
		if ids := f.IDs(); !reflect.DeepEqual(ids, []string{"1", "2", "3", "4", "5", "6"}) {
			t.Fatalf("ids %v", ids)
		}
		path := filepath.Join(t.TempDir(), "out.json")
		if err := share.WriteClusters(path, f); err != nil {
			t.Fatal(err)
		}
		g, err := share.LoadClusters(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f, g) {
			t.Fatalf("%s: round trip differs:\n%+v\n%+v", name, f, g)
		}
		// Atomic write leaves no temporary file behind.
		ents, _ := os.ReadDir(filepath.Dir(path))
		if len(ents) != 1 {
			t.Fatalf("directory holds %d entries after the write", len(ents))
		}
	}
	off, _ := share.LoadClusters("testdata/clusters_official_small.json")
	if off.Meta != nil || !reflect.DeepEqual(off.SharedClusters, []string{"3"}) {
		t.Fatal("official file: meta must be nil and shared_clusters [\"3\"]")
	}
	ext, _ := share.LoadClusters("testdata/clusters_extended_small.json")
	if ext.Meta == nil || ext.Meta.NumLayers != 4 || len(ext.Meta.Noise) != 2 || ext.Meta.Selection.PerCluster["3"].Keep != 0.93 {
		t.Fatalf("extended meta %+v", ext.Meta)
	}
	// Lookup covers every listed head.
	lk := off.Lookup()
	if len(lk) != 32 || lk[share.HeadRef{0, 7}] != "3" {
		t.Fatalf("lookup %d entries, (0,7) → %q", len(lk), lk[share.HeadRef{0, 7}])
	}
}

func TestClusterFileErrors(t *testing.T) {
	tests := []struct {
		name, json string
		layers     int
		heads      int
		want       string // substring of the error
	}{
		{"duplicate head across clusters", `{"clusters": {"1": [[0, 1], [2, 3]], "2": [[2, 3]]}, "shared_clusters": []}`, 4, 8, `duplicate head (2,3): in clusters "1" and "2"`},
		{"duplicate head in one cluster", `{"clusters": {"1": [[0, 1], [0, 1]]}}`, 4, 8, `listed twice in cluster "1"`},
		{"duplicate id", `{"clusters": {"1": [[0, 1]], "1": [[2, 3]]}}`, 4, 8, `cluster id "1" appears twice`},
		{"out-of-range layer", `{"clusters": {"1": [[4, 0]]}}`, 4, 8, `layer 4 out of range [0, 4)`},
		{"out-of-range head", `{"clusters": {"1": [[0, 8]]}}`, 4, 8, `query head 8 out of range [0, 8)`},
		{"meta layers mismatch", `{"clusters": {"1": [[0, 0]]}, "meta": {"num_layers": 32}}`, 4, 8, `meta.num_layers = 32 but the model has 4 layers`},
		{"meta heads mismatch", `{"clusters": {"1": [[0, 0]]}, "meta": {"num_q_heads": 32}}`, 4, 8, `meta.num_q_heads = 32 but the model has 8 query heads`},
		{"non-decimal id", `{"clusters": {"c9": [[0, 0]]}}`, 4, 8, `cluster id "c9": not a decimal string`},
		{"leading zero id", `{"clusters": {"09": [[0, 0]]}}`, 4, 8, `leading zero`},
		{"negative id", `{"clusters": {"-1": [[0, 0]]}}`, 4, 8, `not a decimal string`},
		{"shared missing", `{"clusters": {"1": [[0, 0]]}, "shared_clusters": ["2"]}`, 4, 8, `shared_clusters: cluster "2" does not exist`},
		{"shared twice", `{"clusters": {"1": [[0, 0]]}, "shared_clusters": ["1", "1"]}`, 4, 8, `listed twice`},
		{"three elements", `{"clusters": {"1": [[0, 0, 1]]}}`, 4, 8, `got 3 elements`},
		{"float entry", `{"clusters": {"1": [[0.5, 0]]}}`, 4, 8, `not a non-negative integer`},
		{"negative entry", `{"clusters": {"1": [[0, -2]]}}`, 4, 8, `not a non-negative integer`},
		{"empty cluster", `{"clusters": {"1": []}}`, 4, 8, `cluster "1" is empty`},
		{"missing clusters", `{"shared_clusters": []}`, 4, 8, `missing "clusters"`},
		{"not json", `{"clusters": `, 4, 8, `parse cluster file`},
		{"trailing data", `{"clusters": {"1": [[0, 0]]}} x`, 4, 8, `trailing data`},
		{"bad format", `{"clusters": {"1": [[0, 0]]}, "meta": {"format": "v9"}}`, 4, 8, `meta.format`},
		{"noise overlaps", `{"clusters": {"1": [[0, 0]]}, "meta": {"noise": [[0, 0]]}}`, 4, 8, `meta.noise: head (0,0) is also in cluster "1"`},
		{"noise out of range", `{"clusters": {"1": [[0, 0]]}, "meta": {"noise": [[9, 0]]}}`, 4, 8, `meta.noise head (9,0): layer 9 out of range`},
	}
	for _, tc := range tests {
		f, err := share.ParseClusters([]byte(tc.json))
		if err == nil {
			err = f.Validate(tc.layers, tc.heads)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	if _, err := share.LoadClusters("testdata/does-not-exist.json"); err == nil || !strings.Contains(err.Error(), "load clusters") {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzParseClusters checks that parsing never panics, that accepted files
// survive Marshal → Parse unchanged, and that Validate never panics.
func FuzzParseClusters(f *testing.F) {
	for _, name := range []string{"clusters_official_small.json", "clusters_extended_small.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := share.ParseClusters(data)
		if err != nil {
			if c != nil {
				t.Fatal("non-nil file with an error")
			}
			return
		}
		_ = c.Validate(4, 8)
		_ = c.Validate(1<<20, 1<<20)
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed file: %v", err)
		}
		d, err := share.ParseClusters(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, d) {
			t.Fatalf("round trip differs:\n%+v\n%+v", c, d)
		}
	})
}
