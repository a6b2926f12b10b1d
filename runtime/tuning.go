package runtime

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Tuning overrides the kernels' automatic choices of cooperative-matrix
// tiles and kernels. It exists for tuning runs on a device (the figures are
// in bench/RESULTS.md); the zero value means automatic, which is what
// applications want. Each field has an environment variable, listed with
// it, which Open reads once; a field that is set wins over its variable.
// Tile fields are checked against the device when a kernel uses them (an
// error names the tile); malformed variables are an error from Open.
type Tuning struct {
	// MatMulTile replaces the tile of the cooperative-matrix matmul
	// (SHAREPREFILL_CM_TILE=BM,BN,BK,WM,WN[,GM[,NS]]; GM defaults to 8 and
	// NS, the shared-memory stages, to 2). The zero value: automatic.
	MatMulTile MatMulTile
	// MatMulCM2Tile replaces the tile list of the NV cooperative-matrix-2
	// matmul (matmul_cm2) with this one tile for every call
	// (SHAREPREFILL_CM2_TILE=WG,BM,BN,BK[,GM[,UNROLL]]; GM and UNROLL
	// default to 8). The zero value: automatic.
	MatMulCM2Tile MatMulCM2Tile
	// PrefillAddSeparate keeps prefill's residual adds in dispatches of
	// their own (the o- and down-projections into a temporary, then
	// add_inplace) instead of the matmuls' epilogue (kernels.MatMulAdd)
	// (SHAREPREFILL_PREFILL_ADD=separate; "fused" is the default): for A/B
	// runs on a device.
	PrefillAddSeparate bool
	// PrefillQKVSeparate keeps prefill's q, k and v projections in three
	// matmuls followed by kernels.RopeKV instead of one matmul with the
	// stacked weights followed by kernels.RopeQKV
	// (SHAREPREFILL_PREFILL_QKV=separate; "fused" is the default): for A/B
	// runs on a device.
	PrefillQKVSeparate bool
	// PrefillMLPSeparate keeps prefill's gate and up projections in two
	// matmuls followed by kernels.SwiGLU instead of one
	// kernels.MatMulSwiGLU with the stacked weights
	// (SHAREPREFILL_PREFILL_MLP=separate; "fused" is the default): for A/B
	// runs on a device.
	PrefillMLPSeparate bool
	// AttnTiles is a cooperative-matrix attention configuration tried
	// before the built-in list (SHAREPREFILL_CM_ATTN_TILES=BR,BC[,RF[,KIND[,FOLD[,OPTS]]]],
	// KIND one of cm1, cmr, cmr-cv, cm2; FOLD above 1 only with cm2; OPTS
	// the kernel variants joined by "+", see AttnTiles.Opts). The zero
	// value: none.
	AttnTiles AttnTiles
	// AttnOnlyCM1 keeps cooperative-matrix attention to the attn_cm1
	// kernel (SHAREPREFILL_CM_ATTN=cm1).
	AttnOnlyCM1 bool
	// AttnRowStat is the column count of attn_cm2's row statistics
	// (SHAREPREFILL_CM2_ROWSTAT); 0: the driver's column granularity.
	AttnRowStat int
	// DecodeAttnScalar keeps decode attention to the scalar kernel with
	// its separate reduction (attn.comp, attn_reduce.comp) instead of the
	// one-dispatch split-KV kernels (SHAREPREFILL_DECODE_ATTN=scalar): the
	// reference, for comparisons on a device.
	DecodeAttnScalar bool
	// DecodeAttnSplitKV1 keeps decode attention to the first split-KV
	// kernel (attn_decode.comp, keys staged through shared memory) instead
	// of attn_decode2.comp, which streams each lane cluster's keys through
	// registers and is the default where it applies
	// (SHAREPREFILL_DECODE_ATTN=splitkv): for comparisons on a device. It
	// excludes DecodeAttnScalar.
	DecodeAttnSplitKV1 bool
	// EstBlocksPerGroup is the count of key blocks each workgroup of the
	// last-block estimate's cooperative-matrix score passes takes
	// (SHAREPREFILL_EST_KPW); 0: automatic (from the block and head
	// counts).
	EstBlocksPerGroup int
	// EstSlashSeparate keeps the last-block estimate's slash combination
	// in a dispatch of its own (est_last_slash) instead of the V pass's
	// workgroups that complete each chunk's partials
	// (SHAREPREFILL_EST_SLASH=separate; "fused" is the default): for A/B
	// runs on a device.
	EstSlashSeparate bool
	// EstPrefetchOff stages each K tile of the last-block estimate's
	// cooperative-matrix score passes and of the cooperative-matrix block
	// map (blockmap_cm_*) from global memory when it is computed instead
	// of fetching it into registers one tile ahead, during the previous
	// tile's matrix products (SHAREPREFILL_EST_PREFETCH=off; "on" is the
	// default): for A/B runs on a device. Both give the same bits.
	EstPrefetchOff bool
	// MatMulStoreScratch makes the KHR cooperative-matrix matmul
	// (matmul_cm1, its GLU mode too) store every output fragment through
	// its shared-memory scratch, as it did before the fragments of whole,
	// aligned tiles went straight to memory
	// (SHAREPREFILL_MATMUL_STORE=direct|scratch, default direct; the same
	// values).
	MatMulStoreScratch bool
	// PlanRowCoverBisect keeps the pivots' row cover (plan_rowcover) on
	// its bisection at every size instead of the rank cut it takes up to
	// 256 blocks (SHAREPREFILL_PLAN_ROWCOVER=bisect; "rank" is the
	// default): for A/B runs on a device. Both keep the same blocks.
	PlanRowCoverBisect bool
	// PlanCompactSeparate keeps the CSR compaction of the plan in a
	// dispatch of its own (plan_compact after plan_union_scan) instead of
	// the union's last workgroup (plan_union_csr), which it takes while
	// the compaction is short (SHAREPREFILL_PLAN_COMPACT=separate; "fused"
	// is the default): for A/B runs on a device. Both write the same lists.
	PlanCompactSeparate bool
	// PlanTopKSeparate keeps the SharePrefill plan's VS selection in a
	// dispatch of its own (plan_topk) instead of the union's workgroups
	// (plan_union_csr_vs), which take it up to 257 blocks while the
	// compaction is fused too (SHAREPREFILL_PLAN_TOPK=separate; "fused" is
	// the default): for A/B runs on a device. Both select the same blocks.
	PlanTopKSeparate bool
	// GemvQ replaces the quantized mat-vec kernel's choice
	// (SHAREPREFILL_GEMVQ=KIND[,WG[,R]], KIND wide or registers). The zero
	// value: automatic.
	GemvQ GemvQ
	// Gemv replaces the f16 mat-vec kernels' workgroup shape (gemv.comp,
	// gemv_fused.comp): WG invocations (a power of two) and Rows rows of
	// the weight per workgroup (SHAREPREFILL_GEMV=WG[,R]). Zero fields are
	// automatic.
	Gemv Gemv
	// DecodeSplitGroups is the workgroup count the split-KV decode
	// attention aims at (SHAREPREFILL_DECODE_SPLIT): fewer, longer splits
	// below the default, more and shorter above it. 0: automatic.
	DecodeSplitGroups int
	// DecodeNormFuseMiB is the largest weight matrix, in MiB, whose decode
	// mat-vecs take the RMSNorm-fused kernels (SHAREPREFILL_DECODE_NORMFUSE);
	// larger ones take RMSNorm apart. 0: automatic (4).
	DecodeNormFuseMiB int
	// Cover replaces the γ budget kernel's choice (kernels.CoverCounts;
	// SHAREPREFILL_COVER=VARIANT[,WG], VARIANT sg, sg-scan, hist, probes or
	// bins, WG the workgroup size of sg, sg-scan, hist or bins, a power of
	// two in 32…1024). The zero value: automatic.
	Cover Cover
}

// Cover names the γ budget kernel: Variant "sg", "sg-scan" (est_cover_sg
// walking every cached entry in every pass, without dropping those below
// the search's bracket; the same counts), "hist", "probes" or "bins" and,
// for all but probes, WG invocations per workgroup (0: automatic).
type Cover struct {
	Variant string
	WG      uint32
}

// ParseCover parses "VARIANT[,WG]", the form of SHAREPREFILL_COVER.
func ParseCover(s string) (Cover, error) {
	f := strings.Split(s, ",")
	if len(f) > 2 {
		return Cover{}, fmt.Errorf("want VARIANT[,WG]")
	}
	c := Cover{Variant: strings.TrimSpace(f[0])}
	if !slices.Contains([]string{"sg", "sg-scan", "hist", "probes", "bins"}, c.Variant) {
		return Cover{}, fmt.Errorf("variant %q: want sg, sg-scan, hist, probes or bins", c.Variant)
	}
	if len(f) == 2 {
		v, err := strconv.ParseUint(strings.TrimSpace(f[1]), 10, 32)
		if err != nil || v < 32 || v > 1024 || v&(v-1) != 0 {
			return Cover{}, fmt.Errorf("workgroup size %q: want a power of two in 32…1024", f[1])
		}
		if c.Variant == "probes" {
			return Cover{}, fmt.Errorf("the workgroup size is for sg, sg-scan, hist and bins only")
		}
		c.WG = uint32(v)
	}
	return c, nil
}

// maxDecodeSplitGroups bounds Tuning.DecodeSplitGroups.
const maxDecodeSplitGroups = 1 << 16

// Gemv is the workgroup shape of the f16 mat-vec kernels: WG invocations
// (a power of two, 8 … 1024) and Rows rows of the weight per workgroup
// (1 … 8). Zero fields are automatic.
type Gemv struct{ WG, Rows uint32 }

// GemvQ is a quantized mat-vec kernel: Variant "wide" (Q8_0, Q4_K, Q5_K
// and Q6_K weights only) or "registers" (the reference kernel, every
// type); for the wide kernel, WG invocations (a power of two) and Rows
// rows of the weight per workgroup (1 … 8). Zero fields are automatic.
type GemvQ struct {
	Variant  string
	WG, Rows uint32
}

// ParseGemvQ parses "KIND[,WG[,R]]", the form of SHAREPREFILL_GEMVQ.
func ParseGemvQ(s string) (GemvQ, error) {
	f := strings.Split(s, ",")
	if len(f) > 3 {
		return GemvQ{}, fmt.Errorf("want KIND[,WG[,R]]")
	}
	g := GemvQ{Variant: strings.TrimSpace(f[0])}
	if g.Variant != "wide" && g.Variant != "registers" {
		return GemvQ{}, fmt.Errorf("kind %q: want wide or registers", g.Variant)
	}
	var n [2]uint32
	for i, x := range f[1:] {
		v, err := strconv.ParseUint(strings.TrimSpace(x), 10, 32)
		if err != nil {
			return GemvQ{}, fmt.Errorf("field %d: %q is not a non-negative integer", i+2, x)
		}
		n[i] = uint32(v)
	}
	g.WG, g.Rows = n[0], n[1]
	if g.WG != 0 && (g.WG < 8 || g.WG > 1024 || g.WG&(g.WG-1) != 0) {
		return GemvQ{}, fmt.Errorf("workgroup size WG=%d: want a power of two in 8…1024", g.WG)
	}
	if g.Rows > 8 {
		return GemvQ{}, fmt.Errorf("rows R=%d: want 1…8", g.Rows)
	}
	if g.Variant == "registers" && (g.WG != 0 || g.Rows != 0) {
		return GemvQ{}, fmt.Errorf("the workgroup size and rows (WG, R) are for the wide kernel only")
	}
	return g, nil
}

// MatMulTile is a tile of the cooperative-matrix matmul (matmul_cm1): a
// BM×BN output tile per workgroup, BK deep, of WM×WN sub-tiles (one per
// subgroup), workgroups grouped GM tile rows at a time, NS shared-memory
// stages (0 means 2).
type MatMulTile struct{ BM, BN, BK, WM, WN, GM, NS uint32 }

// MatMulCM2Tile is a tile of the NV cooperative-matrix-2 matmul
// (matmul_cm2): a BM×BN output tile per workgroup of WG invocations, BK
// deep, workgroups grouped GM tile rows at a time, UNROLL slabs per loop
// trip on interior tiles.
type MatMulCM2Tile struct{ WG, BM, BN, BK, GM, Unroll uint32 }

// AttnTiles is a cooperative-matrix attention configuration: BR query rows
// per workgroup, BC keys per KV tile, RF 16-row fragments per subgroup (0
// means 1), the kernel Kind (cm1, cmr, cmr-cv or cm2; "" means cm1) and
// attn_cm2's GQA Fold (0 or 1: off). Opts names kernel variants for
// tuning, joined by "+" ("" is the plain kernel): "fs" folds the score
// scale into the exponent (cmr, cmr-cv, cm2), "pipe" computes the next
// KV tile's scores before this tile's softmax (cm2, dense only); the
// kernels package checks that the kind takes them.
type AttnTiles struct {
	BR, BC, RF int
	Kind       string
	Fold       int
	Opts       string
}

// attnKinds are the kernels AttnTiles.Kind names.
var attnKinds = []string{"cm1", "cmr", "cmr-cv", "cm2"}

// AttnOptNames returns the variant names AttnTiles.Opts may hold, in the
// order of the attention kernels' OPT bits (the kernels package parses
// them by position).
func AttnOptNames() []string { return []string{"fs", "pipe"} }

// fromEnv fills every unset field of t from its environment variable.
func (t *Tuning) fromEnv() error {
	if t.MatMulTile == (MatMulTile{}) {
		v, err := envUints("SHAREPREFILL_CM_TILE", "BM,BN,BK,WM,WN[,GM[,NS]]", 5, []uint32{0, 0, 0, 0, 0, 8, 2})
		if err != nil {
			return err
		}
		if v != nil {
			t.MatMulTile = MatMulTile{BM: v[0], BN: v[1], BK: v[2], WM: v[3], WN: v[4], GM: v[5], NS: v[6]}
		}
	}
	if t.MatMulCM2Tile == (MatMulCM2Tile{}) {
		v, err := envUints("SHAREPREFILL_CM2_TILE", "WG,BM,BN,BK[,GM[,UNROLL]]", 4, []uint32{0, 0, 0, 0, 8, 8})
		if err != nil {
			return err
		}
		if v != nil {
			t.MatMulCM2Tile = MatMulCM2Tile{WG: v[0], BM: v[1], BN: v[2], BK: v[3], GM: v[4], Unroll: v[5]}
		}
	}
	if err := envSwitch(&t.PrefillAddSeparate, "SHAREPREFILL_PREFILL_ADD", "fused", "separate"); err != nil {
		return err
	}
	if err := envSwitch(&t.PrefillQKVSeparate, "SHAREPREFILL_PREFILL_QKV", "fused", "separate"); err != nil {
		return err
	}
	if err := envSwitch(&t.PrefillMLPSeparate, "SHAREPREFILL_PREFILL_MLP", "fused", "separate"); err != nil {
		return err
	}
	if t.AttnTiles == (AttnTiles{}) {
		if s := os.Getenv("SHAREPREFILL_CM_ATTN_TILES"); s != "" {
			a, err := ParseAttnTiles(s)
			if err != nil {
				return fmt.Errorf("SHAREPREFILL_CM_ATTN_TILES=%q: %w", s, err)
			}
			t.AttnTiles = a
		}
	}
	if !t.AttnOnlyCM1 {
		switch s := os.Getenv("SHAREPREFILL_CM_ATTN"); s {
		case "":
		case "cm1":
			t.AttnOnlyCM1 = true
		default:
			return fmt.Errorf("SHAREPREFILL_CM_ATTN=%q: the only value is cm1", s)
		}
	}
	if !t.DecodeAttnScalar && !t.DecodeAttnSplitKV1 {
		switch s := os.Getenv("SHAREPREFILL_DECODE_ATTN"); s {
		case "", "splitkv2":
		case "scalar":
			t.DecodeAttnScalar = true
		case "splitkv":
			t.DecodeAttnSplitKV1 = true
		default:
			return fmt.Errorf("SHAREPREFILL_DECODE_ATTN=%q: want splitkv2 (the default), splitkv or scalar", s)
		}
	}
	if t.DecodeAttnScalar && t.DecodeAttnSplitKV1 {
		return fmt.Errorf("Tuning.DecodeAttnScalar and Tuning.DecodeAttnSplitKV1 are both set: choose one decode attention kernel")
	}
	if t.AttnRowStat == 0 {
		v, err := envUints("SHAREPREFILL_CM2_ROWSTAT", "RW", 1, []uint32{0})
		if err != nil {
			return err
		}
		if v != nil {
			t.AttnRowStat = int(v[0])
		}
	}
	if t.GemvQ == (GemvQ{}) {
		if s := os.Getenv("SHAREPREFILL_GEMVQ"); s != "" {
			g, err := ParseGemvQ(s)
			if err != nil {
				return fmt.Errorf("SHAREPREFILL_GEMVQ=%q: %w", s, err)
			}
			t.GemvQ = g
		}
	}
	if t.Gemv == (Gemv{}) {
		v, err := envUints("SHAREPREFILL_GEMV", "WG[,R]", 1, []uint32{0, 0})
		if err != nil {
			return err
		}
		if v != nil {
			t.Gemv = Gemv{WG: v[0], Rows: v[1]}
			if err := t.Gemv.check(); err != nil {
				return fmt.Errorf("SHAREPREFILL_GEMV=%q: %w", os.Getenv("SHAREPREFILL_GEMV"), err)
			}
		}
	}
	if err := t.Gemv.check(); err != nil {
		return fmt.Errorf("Tuning.Gemv: %w", err)
	}
	if err := envBounded(&t.DecodeSplitGroups, "SHAREPREFILL_DECODE_SPLIT", "GROUPS", "DecodeSplitGroups", maxDecodeSplitGroups); err != nil {
		return err
	}
	if err := envBounded(&t.DecodeNormFuseMiB, "SHAREPREFILL_DECODE_NORMFUSE", "MIB", "DecodeNormFuseMiB", 1<<20); err != nil {
		return err
	}
	if t.Cover == (Cover{}) {
		if s := os.Getenv("SHAREPREFILL_COVER"); s != "" {
			c, err := ParseCover(s)
			if err != nil {
				return fmt.Errorf("SHAREPREFILL_COVER=%q: %w", s, err)
			}
			t.Cover = c
		}
	}
	if t.EstBlocksPerGroup == 0 {
		v, err := envUints("SHAREPREFILL_EST_KPW", "KPW", 1, []uint32{0})
		if err != nil {
			return err
		}
		if v != nil {
			t.EstBlocksPerGroup = int(v[0])
		}
	}
	if err := envSwitch(&t.EstSlashSeparate, "SHAREPREFILL_EST_SLASH", "fused", "separate"); err != nil {
		return err
	}
	if err := envSwitch(&t.EstPrefetchOff, "SHAREPREFILL_EST_PREFETCH", "on", "off"); err != nil {
		return err
	}
	if err := envSwitch(&t.MatMulStoreScratch, "SHAREPREFILL_MATMUL_STORE", "direct", "scratch"); err != nil {
		return err
	}
	if err := envSwitch(&t.PlanRowCoverBisect, "SHAREPREFILL_PLAN_ROWCOVER", "rank", "bisect"); err != nil {
		return err
	}
	if err := envSwitch(&t.PlanCompactSeparate, "SHAREPREFILL_PLAN_COMPACT", "fused", "separate"); err != nil {
		return err
	}
	if err := envSwitch(&t.PlanTopKSeparate, "SHAREPREFILL_PLAN_TOPK", "fused", "separate"); err != nil {
		return err
	}
	return nil
}

// envSwitch sets *f, when it is false, from variable name: "" or off
// leave it, on sets it, anything else is an error naming both values.
func envSwitch(f *bool, name, off, on string) error {
	if *f {
		return nil
	}
	switch s := os.Getenv(name); s {
	case "", off:
	case on:
		*f = true
	default:
		return fmt.Errorf("%s=%q: want %s or %s", name, s, off, on)
	}
	return nil
}

// envBounded fills *f, when it is 0, from variable name (one non-negative
// integer, named form in errors), and reports a value outside 0 … max,
// naming the variable it came from or, when set explicitly, Tuning's field.
func envBounded(f *int, name, form, field string, max int) error {
	if *f == 0 {
		v, err := envUints(name, form, 1, []uint32{0})
		if err != nil {
			return err
		}
		if v != nil {
			if int64(v[0]) > int64(max) {
				return fmt.Errorf("%s=%d: want 0 (automatic) … %d", name, v[0], max)
			}
			*f = int(v[0])
		}
	}
	if *f < 0 || *f > max {
		return fmt.Errorf("runtime.Tuning.%s %d: want 0 (automatic) … %d", field, *f, max)
	}
	return nil
}

// envUints parses the comma-separated non-negative integers of variable
// name (nil when unset): at least min of them, at most len(defaults), the
// missing ones taken from defaults. form names the fields in errors.
func envUints(name, form string, min int, defaults []uint32) ([]uint32, error) {
	s := os.Getenv(name)
	if s == "" {
		return nil, nil
	}
	f := strings.Split(s, ",")
	if len(f) < min || len(f) > len(defaults) {
		return nil, fmt.Errorf("%s=%q: want %s", name, s, form)
	}
	v := append([]uint32(nil), defaults...)
	for i, p := range f {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: field %d: want %s of non-negative integers", name, s, i+1, form)
		}
		v[i] = uint32(n)
	}
	return v, nil
}

// check reports a workgroup size that is not a power of two in 8 … 1024
// or a row count above 8.
func (g Gemv) check() error {
	if g.WG != 0 && (g.WG < 8 || g.WG > 1024 || g.WG&(g.WG-1) != 0) {
		return fmt.Errorf("workgroup size WG=%d: want a power of two in 8…1024", g.WG)
	}
	if g.Rows > 8 {
		return fmt.Errorf("rows R=%d: want 1…8", g.Rows)
	}
	return nil
}

// ParseAttnTiles parses "BR,BC[,RF[,KIND[,FOLD[,OPTS]]]]", the form of
// SHAREPREFILL_CM_ATTN_TILES (KIND defaults to cmr; FOLD above 1 is for cm2
// only; OPTS are names of AttnOptNames joined by "+").
func ParseAttnTiles(s string) (AttnTiles, error) {
	f := strings.Split(s, ",")
	if len(f) < 2 || len(f) > 6 {
		return AttnTiles{}, fmt.Errorf("want BR,BC[,RF[,cm1|cmr|cmr-cv|cm2[,FOLD[,OPTS]]]]")
	}
	var n [5]int
	for i, x := range f[:min(len(f), 5)] {
		if i == 3 {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil || v < 0 {
			return AttnTiles{}, fmt.Errorf("field %d: %q is not a non-negative integer", i+1, x)
		}
		n[i] = v
	}
	t := AttnTiles{BR: n[0], BC: n[1], RF: n[2], Kind: "cmr", Fold: n[4]}
	if len(f) > 3 {
		t.Kind = strings.TrimSpace(f[3])
	}
	known := false
	for _, k := range attnKinds {
		known = known || t.Kind == k
	}
	if !known {
		return AttnTiles{}, fmt.Errorf("kind %q: want cm1, cmr, cmr-cv or cm2", t.Kind)
	}
	if t.Fold > 1 && t.Kind != "cm2" {
		return AttnTiles{}, fmt.Errorf("FOLD %d: a fold above 1 is for cm2 only", t.Fold)
	}
	if len(f) > 5 {
		t.Opts = strings.TrimSpace(f[5])
		for _, o := range strings.Split(t.Opts, "+") {
			known := false
			for _, k := range AttnOptNames() {
				known = known || o == k
			}
			if !known {
				return AttnTiles{}, fmt.Errorf("field 6 (OPTS): variant %q: want names of %s joined by +", o, strings.Join(AttnOptNames(), ", "))
			}
		}
	}
	return t, nil
}
