package kernels

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/shaders"
)

// Kernel variants. An op with more than one kernel lists them in one table,
// in preference order (opTables). A device's tables (tablesOf) keep the
// variants its capabilities allow; they are built once per device, and
// building them checks that every SPIR-V module the tables name is
// embedded. Within a variant the tile is chosen per call, from the
// shapes (chooseTile, chooseCMTile, chooseCMAttnTiles, ChooseAttnTiles).

// variant is one kernel of an op.
type variant struct {
	name    string                  // as errors and AttentionKernel name it
	shaders []string                // every module the variant may dispatch
	usable  func(runtime.Caps) bool // whether a device with these capabilities may run it
}

func always(runtime.Caps) bool { return true }

// dtypeNames expands a module name pattern: each %s in it becomes f16 and
// f32 ("matmul_x%s_y%s" gives four names).
func dtypeNames(pattern string) []string {
	out := []string{pattern}
	for range strings.Count(pattern, "%s") {
		var next []string
		for _, p := range out {
			next = append(next, strings.Replace(p, "%s", "f16", 1), strings.Replace(p, "%s", "f32", 1))
		}
		out = next
	}
	return out
}

// attnModules are the modules of an attention kernel: dense and sparse,
// f16 and f32 output.
func attnModules(base string, extra ...string) []string {
	l := append(dtypeNames(base+"_%s"), dtypeNames(base+"_sparse_%s")...)
	for _, e := range extra {
		l = append(l, dtypeNames(e)...)
	}
	return l
}

// opTables are the variant tables, by op, in preference order.
var opTables = map[string][]variant{
	// MatMul above GEMVMaxM rows: for f16 inputs NV cooperative-matrix-2
	// (matmul_cm2.go) where one of its tiles fits the driver, then KHR
	// cooperative matrices (matmul_cm.go); else the tiled shared-memory
	// kernel.
	"matmul": {
		{name: "cm2", shaders: dtypeNames("matmul_cm2_y%s"), usable: func(c runtime.Caps) bool { return c.CoopMat && c.CoopMat2 }},
		{name: "coopmat", shaders: dtypeNames("matmul_cm1_y%s"), usable: func(c runtime.Caps) bool { return c.CoopMat }},
		{name: "tiled", shaders: dtypeNames("matmul_x%s_y%s"), usable: always},
	},
	// MatMulSwiGLU (matmul_glu.go): the GLU mode of the KHR
	// cooperative-matrix kernel where the device has KHR cooperative
	// matrices (matmul_cm2 has no GLU mode: devices with cooperative
	// matrix 2 take the KHR kernel), else of the tiled kernel.
	"matmul glu": {
		{name: "coopmat", shaders: []string{"matmul_cm1_glu_yf16"}, usable: func(c runtime.Caps) bool { return c.CoopMat }},
		{name: "tiled", shaders: []string{"matmul_glu_xf16_yf16"}, usable: always},
	},
	// MatMul up to GEMVMaxM rows, and MatVec.
	"matvec": {
		{name: "gemv", shaders: dtypeNames("gemv_x%s_y%s"), usable: always},
	},
	// MatMul and MatVec with a block-quantized weight (quant.go): the
	// blocks dequantized in registers, one module per weight type and
	// x/y dtype. The wide kernel (a scale group per invocation, 32- and
	// 128-bit loads) covers Q8_0, Q4_K, Q5_K and Q6_K (quantWideTypes);
	// the reference kernel (8 elements per invocation, 16-bit loads) every
	// type. Both read what every device the runtime opens can (16-bit
	// storage buffers are required); chooseGemvQ picks per call.
	"gemv_q": {
		{name: gemvQWide, shaders: wideModules(), usable: always},
		{name: gemvQRegisters, shaders: quantModules("gemv_%q_x%s_y%s"), usable: always},
	},
	// Dequantize (quant.go): blocks to f16 rows, one module per type.
	"dequant": {
		{name: "blocks", shaders: quantModules("dequant_%q"), usable: always},
	},
	// Embed with a block-quantized table (embed_q.go): rows gathered and
	// dequantized in registers, one module per type.
	"embed_q": {
		{name: "registers", shaders: quantModules("embed_%q"), usable: always},
	},
	// FlashAttention and SparseAttention (attn_cm.go, attn.go): the kinds of
	// cmAttnTiles, then the scalar kernel, which every device runs.
	"attention": {
		{name: "cm2", shaders: attnModules("attn_cm2"), usable: func(c runtime.Caps) bool { return c.CoopMat && c.CoopMat2 }},
		{name: "cm1", shaders: attnModules("attn_cm1"), usable: func(c runtime.Caps) bool {
			return c.CoopMat && c.SubgroupSize >= 16 && c.SubgroupSize <= 64
		}},
		{name: "cmr", shaders: attnModules("attn_cmr"), usable: func(c runtime.Caps) bool { return c.CoopMat }},
		{name: "cmr-cv", shaders: attnModules("attn_cmr_cv"), usable: func(c runtime.Caps) bool { return c.CoopMat && c.CoopMat2Conversions }},
		{name: "scalar", shaders: attnModules("attn", "attn_reduce_%s"), usable: always},
	},
	// DecodeAttention and DecodeAttentionAt (attn_decode.go, attn.go): the
	// one-dispatch split-KV kernel for up to decMaxRows rows (Sq·G), else
	// the scalar kernel with attn_reduce, the reference.
	// Tuning.DecodeAttnScalar keeps to the latter. splitkv2
	// (attn_decode2.go), the split-KV kernel that streams keys through
	// registers, comes first where it applies: on an H100 it took 11 µs a
	// layer against attn_decode's 23 (bench-lm-8k, 5.8K context) and 21
	// against 34 (8B shape, 4.6K); Tuning.DecodeAttnSplitKV1 drops it.
	"decode attention": {
		{name: "splitkv2", shaders: append(dtypeNames("attn_decode2_%s"), dtypeNames("attn_decode2_dyn_%s")...), usable: always},
		{name: "splitkv", shaders: append(dtypeNames("attn_decode_%s"), dtypeNames("attn_decode_dyn_%s")...), usable: always},
		{name: "scalar", shaders: append(dtypeNames("attn_%s"), append(dtypeNames("attn_dyn_%s"), dtypeNames("attn_reduce_%s")...)...), usable: always},
	},
	// BlockMap, BlockMapCSR and BlockMapIndirect (blockmap.go, qk_cm.go):
	// cooperative matrices where D is a multiple of 16 and a tile fits
	// (qkTileFor), else the scalar kernel. All take the same grid and push
	// constants (kpw key blocks per workgroup, blockmap.go).
	"blockmap": {
		{name: "coopmat", shaders: []string{"blockmap_cm_dense", "blockmap_cm_csr"}, usable: qkCMUsable},
		{name: "scalar", shaders: []string{"blockmap_dense", "blockmap_csr"}, usable: always},
	},
	// The score passes of LastBlockEstimates (est.go, qk_cm.go), chosen as
	// the block map's; the combining passes are the same for both.
	"estimate": {
		{name: "coopmat", shaders: []string{"est_last_cm_stats", "est_last_cm_stats_lse", "est_last_cm_vs", "est_last_cm_vs_slash", "est_last_lse", "est_last_slash"}, usable: qkCMUsable},
		{name: "scalar", shaders: []string{"est_last_stats", "est_last_stats_lse", "est_last_vs", "est_last_vs_slash", "est_last_lse", "est_last_slash"}, usable: always},
	},
	// CoverCounts (est.go): the 15-probe search with subgroup sums, then
	// the reference without them; private bins per invocation (subgroup
	// sums where the device has them) only when forced. On an H100 (2026-12-07, traced prefills of
	// bench-lm-8k) est_cover_bins took 68 µs a layer at 5.7K tokens, where
	// est_cover had taken 52 µs at 8K: one 512-wide workgroup per (head,
	// vector) with 32 KiB of bins keeps too few warps in flight.
	// est_cover_sg, est_cover's search with the vector in shared memory
	// and one barrier a pass, comes first where subgroup arithmetic is
	// available (on an H100 at 8K it traced at 54 µs a layer, no faster
	// than est_cover; each pass now also drops the entries below the
	// search's bracket; Tuning.Cover picks another for an A/B).
	// est_cover_hist (after sg, so not the default) spreads the work over
	// grid (⌈S/CH⌉, Hq, 2): exact chunk histograms over the exponent, then
	// the last workgroup of a (head, vector) searches inside the crossing
	// bin only; on an H100 it took 56 µs against sg's 52 at 8K and 71
	// against 81 at 16K (bench/RESULTS.md, 2026-12-08).
	"cover": {
		{name: "sg", shaders: []string{"est_cover_sg"}, usable: func(c runtime.Caps) bool { return c.SubgroupArithmetic }},
		{name: "hist", shaders: []string{"est_cover_hist"}, usable: func(c runtime.Caps) bool { return c.SubgroupArithmetic }},
		{name: "probes", shaders: []string{"est_cover"}, usable: always},
		{name: "bins", shaders: []string{"est_cover_bins"}, usable: always},
	},
}

// variantUsable reports whether op's variant name may run with caps (false
// for an unknown name).
func variantUsable(op, name string, caps runtime.Caps) bool {
	for _, v := range opTables[op] {
		if v.name == name {
			return v.usable(caps)
		}
	}
	return false
}

// deviceTables are the variants one device may run.
type deviceTables struct {
	// ops holds the usable variant names of each op, preference order.
	ops map[string][]string
	// cmAttn are the cooperative-matrix attention configurations of the
	// usable kinds, preference order: the device's Tuning.AttnTiles first,
	// only attn_cm1's with Tuning.AttnOnlyCM1. A call takes the first that
	// fits its head dim and block size.
	cmAttn []cmAttnTiles
}

// has reports whether the device may run op's variant name.
func (t *deviceTables) has(op, name string) bool { return slices.Contains(t.ops[op], name) }

// tablesKey is the key of a device's tables in runtime.Device.Value.
type tablesKey struct{}

// tablesOf returns dev's tables, built on first use.
func tablesOf(dev *runtime.Device) (*deviceTables, error) {
	v, err := dev.Value(tablesKey{}, func() (any, error) { return buildTables(opTables, dev.Caps(), dev.Tuning()) })
	if err != nil {
		return nil, err
	}
	return v.(*deviceTables), nil
}

// buildTables keeps the variants of tables that caps allow, failing when
// any variant names a module that is not embedded.
func buildTables(tables map[string][]variant, caps runtime.Caps, tu runtime.Tuning) (*deviceTables, error) {
	t := &deviceTables{ops: map[string][]string{}}
	ops := make([]string, 0, len(tables))
	for op := range tables {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		for _, v := range tables[op] {
			for _, sh := range v.shaders {
				if !shaders.Has(sh) {
					return nil, fmt.Errorf("kernels: %s variant %s dispatches shader %s, which is not embedded (run make shaders)", op, v.name, sh)
				}
			}
			if v.usable(caps) && !(op == "decode attention" && decodeAttnDropped(v.name, tu)) {
				t.ops[op] = append(t.ops[op], v.name)
			}
		}
	}
	list := cmAttnTileList
	if a := tu.AttnTiles; a != (runtime.AttnTiles{}) {
		c := cmAttnTiles{BR: a.BR, BC: a.BC, RF: a.RF, Kind: a.Kind, Fold: a.Fold}
		o, err := parseCMAttnOpt(a.Opts)
		if err != nil {
			return nil, fmt.Errorf("attention tiles (Tuning.AttnTiles, SHAREPREFILL_CM_ATTN_TILES): %w", err)
		}
		if bad := o &^ o.allowed(c.kind()); bad != 0 {
			return nil, fmt.Errorf("attention tiles (Tuning.AttnTiles, SHAREPREFILL_CM_ATTN_TILES): variant %s does not apply to kind %s", bad, c.kind())
		}
		c.Opt = o
		list = append([]cmAttnTiles{c}, list...)
	}
	for _, c := range list {
		if t.has("attention", c.kind()) && (!tu.AttnOnlyCM1 || c.kind() == "cm1") {
			t.cmAttn = append(t.cmAttn, c)
		}
	}
	return t, nil
}

// decodeAttnDropped reports whether tu leaves the decode attention variant
// name out of a device's table: splitkv2 with Tuning.DecodeAttnSplitKV1 or
// DecodeAttnScalar, splitkv with DecodeAttnScalar.
func decodeAttnDropped(name string, tu runtime.Tuning) bool {
	switch name {
	case "splitkv2":
		return tu.DecodeAttnSplitKV1 || tu.DecodeAttnScalar
	case "splitkv":
		return tu.DecodeAttnScalar
	}
	return false
}
