package kernels

import (
	"slices"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/shaders"
)

// TestVariantShadersEmbedded: every module every variant table names is in
// the embedded SPIR-V, and every table ends with a variant all devices run.
func TestVariantShadersEmbedded(t *testing.T) {
	for op, vs := range opTables {
		if len(vs) == 0 || !vs[len(vs)-1].usable(runtime.Caps{}) {
			t.Errorf("%s: the last variant must run on every device", op)
		}
		for _, v := range vs {
			if len(v.shaders) == 0 {
				t.Errorf("%s variant %s names no shader", op, v.name)
			}
			for _, sh := range v.shaders {
				if !shaders.Has(sh) {
					t.Errorf("%s variant %s: shader %s is not embedded", op, v.name, sh)
				}
			}
		}
	}
	if _, err := buildTables(opTables, runtime.Caps{}, runtime.Tuning{}); err != nil {
		t.Error(err)
	}
}

// TestBuildTablesChecksShaders: a table naming a missing module is an error
// naming it, even for a variant the device cannot run.
func TestBuildTablesChecksShaders(t *testing.T) {
	bad := map[string][]variant{"op": {
		{name: "fancy", shaders: []string{"matmul_cm1_yf16", "no_such_module"}, usable: func(c runtime.Caps) bool { return c.CoopMat }},
		{name: "plain", shaders: []string{"fill"}, usable: always},
	}}
	_, err := buildTables(bad, runtime.Caps{}, runtime.Tuning{})
	if err == nil || !strings.Contains(err.Error(), "no_such_module") || !strings.Contains(err.Error(), "fancy") {
		t.Errorf("buildTables = %v, want an error naming variant fancy and shader no_such_module", err)
	}
}

// TestDeviceTables: the capabilities choose the variants and the attention
// configurations, the tuning puts its configuration first and can keep to
// attn_cm1, and a device builds its tables once.
func TestDeviceTables(t *testing.T) {
	kinds := func(tb *deviceTables) []string {
		var l []string
		for _, c := range tb.cmAttn {
			if !slices.Contains(l, c.kind()) {
				l = append(l, c.kind())
			}
		}
		return l
	}
	for _, c := range []struct {
		name      string
		caps      runtime.Caps
		tu        runtime.Tuning
		attn      []string
		cmKinds   []string
		firstTile cmAttnTiles
		matmul    []string
	}{
		{"scalar", runtime.Caps{SubgroupSize: 32}, runtime.Tuning{}, []string{"scalar"}, nil, cmAttnTiles{}, []string{"tiled"}},
		{"khr sg8", runtime.Caps{CoopMat: true, SubgroupSize: 8}, runtime.Tuning{}, []string{"cmr", "scalar"}, []string{"cmr"}, cmAttnTiles{BR: 128, BC: 32, RF: 1, Kind: "cmr"}, []string{"coopmat", "tiled"}},
		{"khr sg32", runtime.Caps{CoopMat: true, SubgroupSize: 32}, runtime.Tuning{}, []string{"cm1", "cmr", "scalar"}, []string{"cm1", "cmr"}, cmAttnTiles{BR: 128, BC: 32}, []string{"coopmat", "tiled"}},
		{"nv", runtime.Caps{CoopMat: true, CoopMat2: true, CoopMat2Conversions: true, SubgroupSize: 32}, runtime.Tuning{},
			[]string{"cm2", "cm1", "cmr", "cmr-cv", "scalar"}, []string{"cm2", "cm1", "cmr"}, cmAttnTiles{BR: 128, BC: 128, RF: 1, Kind: "cm2", OptSmallD: optFoldScale}, []string{"cm2", "coopmat", "tiled"}},
		{"nv tuned", runtime.Caps{CoopMat: true, CoopMat2: true, CoopMat2Conversions: true, SubgroupSize: 32},
			runtime.Tuning{AttnTiles: runtime.AttnTiles{BR: 128, BC: 64, RF: 1, Kind: "cmr-cv"}},
			[]string{"cm2", "cm1", "cmr", "cmr-cv", "scalar"}, []string{"cmr-cv", "cm2", "cm1", "cmr"}, cmAttnTiles{BR: 128, BC: 64, RF: 1, Kind: "cmr-cv"}, []string{"cm2", "coopmat", "tiled"}},
		{"nv cm1 only", runtime.Caps{CoopMat: true, CoopMat2: true, SubgroupSize: 32}, runtime.Tuning{AttnOnlyCM1: true},
			[]string{"cm2", "cm1", "cmr", "scalar"}, []string{"cm1"}, cmAttnTiles{BR: 128, BC: 32}, []string{"cm2", "coopmat", "tiled"}},
	} {
		tb, err := buildTables(opTables, c.caps, c.tu)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := tb.ops["attention"]; !slices.Equal(got, c.attn) {
			t.Errorf("%s: attention variants %v, want %v", c.name, got, c.attn)
		}
		if got := tb.ops["matmul"]; !slices.Equal(got, c.matmul) {
			t.Errorf("%s: matmul variants %v, want %v", c.name, got, c.matmul)
		}
		// MatMulSwiGLU takes the KHR kernel wherever there are cooperative
		// matrices (matmul_cm2 has no GLU mode).
		wantGLU := []string{"tiled"}
		if c.caps.CoopMat {
			wantGLU = []string{"coopmat", "tiled"}
		}
		if got := tb.ops["matmul glu"]; !slices.Equal(got, wantGLU) {
			t.Errorf("%s: matmul glu variants %v, want %v", c.name, got, wantGLU)
		}
		// The block map and the estimate take cooperative matrices exactly
		// where the matmul does (every case here has a subgroup size that
		// divides 256).
		for _, op := range []string{"blockmap", "estimate"} {
			want := []string{"scalar"}
			if c.caps.CoopMat {
				want = []string{"coopmat", "scalar"}
			}
			if got := tb.ops[op]; !slices.Equal(got, want) {
				t.Errorf("%s: %s variants %v, want %v", c.name, op, got, want)
			}
		}
		if got := kinds(tb); !slices.Equal(got, c.cmKinds) {
			t.Errorf("%s: attention configuration kinds %v, want %v", c.name, got, c.cmKinds)
		}
		if len(tb.cmAttn) > 0 && tb.cmAttn[0] != c.firstTile {
			t.Errorf("%s: first configuration %v, want %v", c.name, tb.cmAttn[0], c.firstTile)
		}
	}

	d := gputest.Device(t)
	a, err := tablesOf(d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tablesOf(d)
	if a != b {
		t.Error("tablesOf built a device's tables twice")
	}
}

// TestBuildTablesAttnOpts: a tuned attention tile's variants must apply to
// its kind, and their names must be known.
func TestBuildTablesAttnOpts(t *testing.T) {
	caps := runtime.Caps{CoopMat: true, CoopMat2: true, SubgroupSize: 32}
	for _, c := range []struct {
		a  runtime.AttnTiles
		ok bool
	}{
		{runtime.AttnTiles{BR: 128, BC: 64, RF: 1, Kind: "cm2", Opts: "fs+pipe"}, true},
		{runtime.AttnTiles{BR: 128, BC: 32, RF: 1, Kind: "cmr", Opts: "fs"}, true},
		{runtime.AttnTiles{BR: 128, BC: 32, RF: 1, Kind: "cmr", Opts: "pipe"}, false},
		{runtime.AttnTiles{BR: 128, BC: 32, Kind: "cm1", Opts: "fs"}, false},
		{runtime.AttnTiles{BR: 128, BC: 64, RF: 1, Kind: "cm2", Opts: "fast"}, false},
	} {
		tb, err := buildTables(opTables, caps, runtime.Tuning{AttnTiles: c.a})
		if (err == nil) != c.ok {
			t.Errorf("%+v: error %v, want ok=%v", c.a, err, c.ok)
			continue
		}
		if c.ok {
			want, _ := parseCMAttnOpt(c.a.Opts)
			if tb.cmAttn[0].Opt != want {
				t.Errorf("%+v: first tile %v, want variants %v", c.a, tb.cmAttn[0], want)
			}
		}
	}
}
