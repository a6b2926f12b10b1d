package runtime_test

import (
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestTuningFromEnv: Open reads every tuning variable once into
// Device.Tuning, with defaults for the optional fields, and an explicit
// field wins over its variable.
func TestTuningFromEnv(t *testing.T) {
	t.Setenv("SHAREPREFILL_CM_TILE", "128,128,32,64,64")
	t.Setenv("SHAREPREFILL_CM_ATTN_TILES", "128,64,2,cm2,4")
	t.Setenv("SHAREPREFILL_CM_ATTN", "cm1")
	t.Setenv("SHAREPREFILL_CM2_ROWSTAT", "32")
	t.Setenv("SHAREPREFILL_CM2_TILE", "256,256,128,64")
	t.Setenv("SHAREPREFILL_PREFILL_ADD", "separate")
	t.Setenv("SHAREPREFILL_PREFILL_QKV", "separate")
	t.Setenv("SHAREPREFILL_PREFILL_MLP", "separate")
	t.Setenv("SHAREPREFILL_EST_KPW", "3")
	t.Setenv("SHAREPREFILL_EST_SLASH", "separate")
	t.Setenv("SHAREPREFILL_EST_PREFETCH", "off")
	t.Setenv("SHAREPREFILL_GEMVQ", "wide,128,2")
	t.Setenv("SHAREPREFILL_DECODE_ATTN", "scalar")
	t.Setenv("SHAREPREFILL_GEMV", "64")
	t.Setenv("SHAREPREFILL_DECODE_SPLIT", "96")
	t.Setenv("SHAREPREFILL_DECODE_NORMFUSE", "64")
	t.Setenv("SHAREPREFILL_COVER", "sg-scan,512")
	t.Setenv("SHAREPREFILL_MATMUL_STORE", "scratch")
	t.Setenv("SHAREPREFILL_PLAN_ROWCOVER", "bisect")
	t.Setenv("SHAREPREFILL_PLAN_COMPACT", "separate")
	t.Setenv("SHAREPREFILL_PLAN_TOPK", "separate")
	explicit := runtime.MatMulTile{BM: 64, BN: 64, BK: 16, WM: 32, WN: 32, GM: 4, NS: 1}
	d := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{MatMulTile: explicit}})
	want := runtime.Tuning{
		MatMulTile:          explicit,
		MatMulCM2Tile:       runtime.MatMulCM2Tile{WG: 256, BM: 256, BN: 128, BK: 64, GM: 8, Unroll: 8},
		PrefillAddSeparate:  true,
		PrefillQKVSeparate:  true,
		PrefillMLPSeparate:  true,
		AttnTiles:           runtime.AttnTiles{BR: 128, BC: 64, RF: 2, Kind: "cm2", Fold: 4},
		AttnOnlyCM1:         true,
		AttnRowStat:         32,
		EstBlocksPerGroup:   3,
		EstSlashSeparate:    true,
		EstPrefetchOff:      true,
		MatMulStoreScratch:  true,
		PlanRowCoverBisect:  true,
		PlanCompactSeparate: true,
		PlanTopKSeparate:    true,
		GemvQ:               runtime.GemvQ{Variant: "wide", WG: 128, Rows: 2},
		DecodeAttnScalar:    true,
		Gemv:                runtime.Gemv{WG: 64},
		DecodeSplitGroups:   96,
		DecodeNormFuseMiB:   64,
		Cover:               runtime.Cover{Variant: "sg-scan", WG: 512},
	}
	if got := d.Tuning(); got != want {
		t.Errorf("Tuning() = %+v\nwant %+v", got, want)
	}

	t.Setenv("SHAREPREFILL_CM_TILE", "128,128,32,64,64,4,1")
	t.Setenv("SHAREPREFILL_CM2_TILE", "128,128,128,32,2,1")
	d2 := gputest.Open(t, runtime.Options{})
	if got, want := d2.Tuning().MatMulTile, (runtime.MatMulTile{BM: 128, BN: 128, BK: 32, WM: 64, WN: 64, GM: 4, NS: 1}); got != want {
		t.Errorf("MatMulTile = %+v, want %+v", got, want)
	}
	if got, want := d2.Tuning().MatMulCM2Tile, (runtime.MatMulCM2Tile{WG: 128, BM: 128, BN: 128, BK: 32, GM: 2, Unroll: 1}); got != want {
		t.Errorf("MatMulCM2Tile = %+v, want %+v", got, want)
	}
}

// TestTuningDecodeAttn: SHAREPREFILL_DECODE_ATTN=splitkv sets
// DecodeAttnSplitKV1, splitkv2 (the default) sets nothing, and a Tuning
// with both older decode attention kernels forced is an error from Open.
func TestTuningDecodeAttn(t *testing.T) {
	t.Setenv("SHAREPREFILL_DECODE_ATTN", "splitkv")
	d := gputest.Open(t, runtime.Options{})
	if got := d.Tuning(); !got.DecodeAttnSplitKV1 || got.DecodeAttnScalar {
		t.Errorf("SHAREPREFILL_DECODE_ATTN=splitkv: Tuning() = %+v, want DecodeAttnSplitKV1 only", got)
	}
	t.Setenv("SHAREPREFILL_DECODE_ATTN", "splitkv2")
	d2 := gputest.Open(t, runtime.Options{})
	if got := d2.Tuning(); got.DecodeAttnSplitKV1 || got.DecodeAttnScalar {
		t.Errorf("SHAREPREFILL_DECODE_ATTN=splitkv2: Tuning() = %+v, want neither older kernel", got)
	}
	t.Setenv("SHAREPREFILL_DECODE_ATTN", "")
	bad, err := runtime.Open(runtime.Options{Tuning: runtime.Tuning{DecodeAttnScalar: true, DecodeAttnSplitKV1: true}})
	if err == nil {
		bad.Close()
		t.Fatal("Open with DecodeAttnScalar and DecodeAttnSplitKV1 succeeded")
	}
	if !strings.Contains(err.Error(), "DecodeAttnSplitKV1") {
		t.Errorf("error %q does not name DecodeAttnSplitKV1", err)
	}
}

// TestTuningMalformed: a malformed tuning variable is an error from Open
// that names the variable (before any device is touched).
func TestTuningMalformed(t *testing.T) {
	for _, c := range []struct{ name, val string }{
		{"SHAREPREFILL_CM_TILE", "128,128,32,64,64,8,1,1"},
		{"SHAREPREFILL_CM_TILE", "128,128,32,64"},
		{"SHAREPREFILL_CM_TILE", "128,128,x,64,64"},
		{"SHAREPREFILL_CM2_TILE", "256,256,128"},
		{"SHAREPREFILL_CM2_TILE", "256,256,128,64,8,4,1"},
		{"SHAREPREFILL_CM2_TILE", "256,256,x,64"},
		{"SHAREPREFILL_CM_ATTN_TILES", "128,128,1,cm2,4,256"},
		{"SHAREPREFILL_CM_ATTN_TILES", "128,128,1,cmr,4"},
		{"SHAREPREFILL_CM_ATTN_TILES", "128,128,1,cm3"},
		{"SHAREPREFILL_CM_ATTN_TILES", "128,128,1,cm2,x"},
		{"SHAREPREFILL_CM_ATTN_TILES", "128"},
		{"SHAREPREFILL_CM_ATTN_TILES", "a,32"},
		{"SHAREPREFILL_CM_ATTN", "cm2"},
		{"SHAREPREFILL_CM2_ROWSTAT", "-1"},
		{"SHAREPREFILL_EST_KPW", "2,2"},
		{"SHAREPREFILL_EST_KPW", "x"},
		{"SHAREPREFILL_EST_SLASH", "split"},
		{"SHAREPREFILL_EST_PREFETCH", "yes"},
		{"SHAREPREFILL_PLAN_ROWCOVER", "sort"},
		{"SHAREPREFILL_PLAN_COMPACT", "later"},
		{"SHAREPREFILL_PLAN_TOPK", "radix"},
		{"SHAREPREFILL_PREFILL_ADD", "later"},
		{"SHAREPREFILL_PREFILL_QKV", "stacked"},
		{"SHAREPREFILL_PREFILL_MLP", "glu"},
		{"SHAREPREFILL_GEMVQ", "fast"},
		{"SHAREPREFILL_GEMVQ", "wide,96"},
		{"SHAREPREFILL_GEMVQ", "wide,64,9"},
		{"SHAREPREFILL_GEMVQ", "wide,64,2,1"},
		{"SHAREPREFILL_GEMVQ", "registers,64"},
		{"SHAREPREFILL_DECODE_ATTN", "splitkv3"},
		{"SHAREPREFILL_GEMV", "96"},
		{"SHAREPREFILL_GEMV", "64,9"},
		{"SHAREPREFILL_GEMV", "64,2,1"},
		{"SHAREPREFILL_DECODE_SPLIT", "x"},
		{"SHAREPREFILL_DECODE_SPLIT", "100000"},
		{"SHAREPREFILL_DECODE_NORMFUSE", "-3"},
		{"SHAREPREFILL_COVER", "fast"},
		{"SHAREPREFILL_COVER", "sg,96"},
		{"SHAREPREFILL_COVER", "probes,256"},
		{"SHAREPREFILL_COVER", "sg,256,1"},
		{"SHAREPREFILL_COVER", "hist,16"},
	} {
		t.Run(c.name+"="+c.val, func(t *testing.T) {
			t.Setenv(c.name, c.val)
			d, err := runtime.Open(runtime.Options{})
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.name+"=") {
				t.Errorf("error %q does not name %s", err, c.name)
			}
		})
	}
}

// TestParseAttnTiles: the SHAREPREFILL_CM_ATTN_TILES form, KIND defaulting
// to cmr.
func TestParseCover(t *testing.T) {
	for in, want := range map[string]runtime.Cover{
		"sg":          {Variant: "sg"},
		"hist":        {Variant: "hist"},
		"hist,1024":   {Variant: "hist", WG: 1024},
		" bins , 64 ": {Variant: "bins", WG: 64},
		"probes":      {Variant: "probes"},
	} {
		got, err := runtime.ParseCover(in)
		if err != nil || got != want {
			t.Errorf("ParseCover(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "hist,", "hist,48", "probes,64", "radix"} {
		if c, err := runtime.ParseCover(in); err == nil {
			t.Errorf("ParseCover(%q) = %+v, want an error", in, c)
		}
	}
}

func TestParseAttnTiles(t *testing.T) {
	for _, c := range []struct {
		in   string
		want runtime.AttnTiles
	}{
		{"128,64", runtime.AttnTiles{BR: 128, BC: 64, Kind: "cmr"}},
		{"64,32,2,cmr-cv", runtime.AttnTiles{BR: 64, BC: 32, RF: 2, Kind: "cmr-cv"}},
		{"128,32,1,cm1", runtime.AttnTiles{BR: 128, BC: 32, RF: 1, Kind: "cm1"}},
		{"128,128,1,cm2,4", runtime.AttnTiles{BR: 128, BC: 128, RF: 1, Kind: "cm2", Fold: 4}},
		{"128,64,1,cm2,1,fs+pipe", runtime.AttnTiles{BR: 128, BC: 64, RF: 1, Kind: "cm2", Fold: 1, Opts: "fs+pipe"}},
		{"128,32,1,cmr,0,fs", runtime.AttnTiles{BR: 128, BC: 32, RF: 1, Kind: "cmr", Opts: "fs"}},
	} {
		got, err := runtime.ParseAttnTiles(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseAttnTiles(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// TestParseAttnTilesErrors: malformed forms are errors that name the field.
func TestParseAttnTilesErrors(t *testing.T) {
	for _, in := range []string{"128", "128,64,1,cm3", "128,32,1,cmr,4", "128,64,1,cm2,1,fast", "128,64,1,cm2,1,fs+", "128,64,1,cm2,1,fs,x", "a,64"} {
		if got, err := runtime.ParseAttnTiles(in); err == nil {
			t.Errorf("ParseAttnTiles(%q) = %+v, want an error", in, got)
		}
	}
}

// TestParseGemvQ: the SHAREPREFILL_GEMVQ form, WG and R optional.
func TestParseGemvQ(t *testing.T) {
	for _, c := range []struct {
		in   string
		want runtime.GemvQ
	}{
		{"registers", runtime.GemvQ{Variant: "registers"}},
		{"wide", runtime.GemvQ{Variant: "wide"}},
		{"wide,32", runtime.GemvQ{Variant: "wide", WG: 32}},
		{" wide , 256 , 8", runtime.GemvQ{Variant: "wide", WG: 256, Rows: 8}},
	} {
		got, err := runtime.ParseGemvQ(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseGemvQ(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}
