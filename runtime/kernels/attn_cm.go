package kernels

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
)

// Cooperative-matrix (VK_KHR_cooperative_matrix) flash attention
// (shaders/attn_cm1.comp): S = Q·Kᵀ and O += P·V through 16×16×16
// f16×f16→f32 fragments, softmax on scalars in f32 with the same masks and
// statistics as the scalar attn.comp; P is rounded to f16 for P·V (the
// normaliser l sums the f32 probabilities). FlashAttention and
// SparseAttention route here when cmAttnPick finds a configuration
// (SHAREPREFILL_VK_DISABLE_COOPMAT=1 turns it off).

// cmAttnTiles: BR query rows per workgroup, BC keys per KV tile, and the
// kernel: attn_cm1 (Kind "cm1": 16 rows per subgroup, softmax on scalars
// through shared memory) or attn_cmr (Kind "cmr": RF·16 rows per subgroup,
// softmax in registers, K/V prefetched into registers; Kind "cmr-cv": the
// same with P converted to an A operand in registers, which needs
// VK_NV_cooperative_matrix2's conversions; Kind "cm2": attn_cm2,
// workgroup-scope VK_NV_cooperative_matrix2 matrices with BR/(16·RF)
// subgroups, the driver staging the tensor loads).
type cmAttnTiles struct {
	BR, BC int
	RF     int    // cmr: 16-row fragments per subgroup (0 means 1)
	Kind   string // "cm1", "cmr", "cmr-cv" or "cm2" ("" means "cm1")
	// Generic makes attn_cmr use its shared-memory row reductions even
	// where the register ones apply (tests: the path of other layouts).
	Generic bool
	// Fold (attn_cm2, dense only) is the GQA fold: a workgroup takes BR/Fold
	// positions of Fold query heads that share a KV head (0 or 1: off);
	// the K/V tiles it loads serve all of them. Where the heads per KV head
	// or BR do not allow it, a smaller fold is used (cm2Fold).
	Fold int
	// Opt are kernel variants for tuning (the OPT specialization constant
	// of attn_cm2.comp and attn_cmr.comp); 0 is the plain kernel.
	Opt cmAttnOpt
	// OptSmallD are variants a default entry adds at head dims up to
	// smallHeadDim (forHeadDim), where they measured faster.
	OptSmallD cmAttnOpt
}

// smallHeadDim is the largest head dim that takes a tile's OptSmallD.
const smallHeadDim = 64

// forHeadDim is t with its OptSmallD variants added at head dim d ≤
// smallHeadDim.
func (t cmAttnTiles) forHeadDim(d int) cmAttnTiles {
	if d <= smallHeadDim {
		t.Opt |= t.OptSmallD
	}
	return t
}

// cmAttnOpt is a bit set of attention kernel variants, each a bit of the
// shaders' OPT specialization constant.
type cmAttnOpt uint32

const (
	// optFoldScale ("fs"; cm2, cmr, cmr-cv): the score scale folded into
	// the exponent, P = exp2(fma(s, c, -m·c)) on raw scores, which drops
	// the pass S *= c. It applies only to scales with minFoldScale2 ≤ c ≤
	// 1 (c = scale·log2 e); other calls run the kernel without it
	// (cmAttnOpt.spec).
	optFoldScale cmAttnOpt = 1 << iota
	// optPipe ("pipe"; cm2, dense only: SparseAttention ignores it): the
	// next KV tile's scores Q·Kᵀ computed before this tile's softmax, so
	// the compiler may overlap those products with the exponentials.
	optPipe
)

// minFoldScale2 is the smallest scale·log2 e that optFoldScale takes: a
// masked score (-FLT_MAX) then still gives an exponent below -7·10²⁵.
const minFoldScale2 = 0x1p-40

// cmAttnOptNames are the names of the bits of cmAttnOpt, in bit order, as
// runtime.AttnTiles.Opts spells them.
var cmAttnOptNames = runtime.AttnOptNames()

// parseCMAttnOpt turns runtime.AttnTiles.Opts ("fs+pipe") into bits.
func parseCMAttnOpt(s string) (cmAttnOpt, error) {
	var o cmAttnOpt
	if s == "" {
		return 0, nil
	}
	for _, n := range strings.Split(s, "+") {
		i := slices.Index(cmAttnOptNames, n)
		if i < 0 {
			return 0, fmt.Errorf("attention tile variant %q: want names of %s joined by +", n, strings.Join(cmAttnOptNames, ", "))
		}
		o |= 1 << i
	}
	return o, nil
}

func (o cmAttnOpt) String() string {
	var l []string
	for i, n := range cmAttnOptNames {
		if o&(1<<i) != 0 {
			l = append(l, n)
		}
	}
	return strings.Join(l, "+")
}

// allowed returns the variants kernel kind takes.
func (cmAttnOpt) allowed(kind string) cmAttnOpt {
	switch kind {
	case "cm2":
		return optFoldScale | optPipe
	case "cmr", "cmr-cv":
		return optFoldScale
	}
	return 0
}

// spec is the OPT specialization constant for a call with score scale
// scale2 = scale·log2 e: o without optFoldScale where the scale is outside
// [minFoldScale2, 1] (zero, negative, tiny or large), where the folded
// form would be wrong or could overflow.
func (o cmAttnOpt) spec(scale2 float32) uint32 {
	if !(scale2 >= minFoldScale2 && scale2 <= 1) {
		o &^= optFoldScale
	}
	return uint32(o)
}

func (t cmAttnTiles) kind() string {
	if t.Kind == "" {
		return "cm1"
	}
	return t.Kind
}

func (t cmAttnTiles) rf() int {
	if t.RF <= 0 || t.kind() == "cm1" {
		return 1
	}
	return t.RF
}

// subgroups is the number of subgroups of a workgroup.
func (t cmAttnTiles) subgroups() int { return t.BR / (16 * t.rf()) }

func (t cmAttnTiles) String() string {
	if t.kind() == "cm1" {
		return fmt.Sprintf("cm1 %dx%d", t.BR, t.BC)
	}
	g := ""
	if t.Generic {
		g = " generic"
	}
	if t.Fold > 1 {
		g += fmt.Sprintf(" fold%d", t.Fold)
	}
	if t.Opt != 0 {
		g += " " + t.Opt.String()
	}
	return fmt.Sprintf("%s %dx%d rf%d%s", t.kind(), t.BR, t.BC, t.rf(), g)
}

// cmAttnShared mirrors the shared arrays of attn_cm1.comp / attn_cmr.comp;
// attn_cm2 declares none (the driver stages its tensor loads itself).
func cmAttnShared(t cmAttnTiles, d int) int {
	if t.kind() == "cm2" {
		return 0
	}
	nsg := t.subgroups()
	kv := 2 * t.BC * (d/4 + 2) * 8
	if t.kind() == "cm1" {
		return kv + nsg*16*(t.BC+4)*4 + nsg*16*(t.BC+8)*2 + nsg*16*4*4 + nsg*16*4
	}
	s := kv + nsg*256*4 + nsg*16*4
	if t.kind() == "cmr" {
		s += nsg * 16 * (t.BC + 8) * 2
	}
	return s
}

// valid reports whether dev may run t for head dim d: its kind is usable
// (opTables) and the tile fits the subgroup size, the workgroup limit and
// the shared memory.
func (t cmAttnTiles) valid(dev *runtime.Device, d int) bool {
	caps := dev.Caps()
	sg := int(caps.SubgroupSize)
	if !variantUsable("attention", t.kind(), caps) || t.kind() == "scalar" {
		return false
	}
	if t.Opt&^t.Opt.allowed(t.kind()) != 0 {
		return false
	}
	// Workgroup-scope matrices take the workgroup sizes and granularities
	// the driver lists for flexible dimensions: S = Q·Kᵀ (BR×D·D×BC), O +=
	// P·V (BR×BC·BC×D); the BR×RW row statistics take a multiple of the
	// column granularity (cm2RowWidth).
	if inv := t.subgroups() * sg; t.kind() == "cm2" && !cm2Fits(dev, inv, [3]int{t.BR, t.BC, d}, [3]int{t.BR, d, t.BC}) {
		return false
	}
	rf := t.rf()
	if t.BR <= 0 || t.BC <= 0 || t.BR%(16*rf) != 0 || t.BC%16 != 0 || sg < 8 || sg > 256 || 256%sg != 0 || rf > 4 {
		return false
	}
	if wg := t.subgroups() * sg; uint32(wg) > dev.Info().MaxWorkgroupInvocations {
		return false
	}
	return cmAttnShared(t, d)+512 <= int(caps.MaxSharedMemory)
}

// cmAttnTileList is the preference order (the measurements behind it are in
// bench/RESULTS.md). attn_cm2 comes first where the device has
// VK_NV_cooperative_matrix2: larger tiles first, as the driver's staging
// of the tensor loads amortises over more rows and keys. attn_cm1 is next
// for every KHR device, most rows per workgroup first (they amortise the
// K/V staging). attn_cmr-cv spills registers on the NVIDIA compiler, so
// it is chosen only through Tuning.AttnTiles; attn_cmr without the
// register conversion serves the subgroup sizes cm1 does not take (below
// 16 or above 64, e.g. lavapipe's 8).
//
// At head dim 64 the default cm2 tile folds the score scale into the
// exponent (OptSmallD: optFoldScale): on an H100 (bench/RESULTS.md,
// 2026-12-07, sixth session) dense attention of 8 query and 2 KV heads took
// 0.477 / 1.474 ms at 8K / 16K against 0.497 / 1.543 without it, while at
// head dim 128 it was slower (11.26 against 10.45 ms at 16K).
var cmAttnTileList = []cmAttnTiles{
	{BR: 128, BC: 128, RF: 1, Kind: "cm2", OptSmallD: optFoldScale}, {BR: 128, BC: 64, RF: 1, Kind: "cm2"},
	{BR: 64, BC: 64, RF: 1, Kind: "cm2"}, {BR: 64, BC: 32, RF: 1, Kind: "cm2"},
	{BR: 128, BC: 32}, {BR: 64, BC: 32}, {BR: 32, BC: 32}, {BR: 32, BC: 16}, {BR: 16, BC: 16},
	{BR: 128, BC: 32, RF: 1, Kind: "cmr"},
	{BR: 64, BC: 32, RF: 1, Kind: "cmr"},
	{BR: 32, BC: 32, RF: 1, Kind: "cmr"},
	{BR: 32, BC: 16, RF: 1, Kind: "cmr"},
	{BR: 16, BC: 16, RF: 1, Kind: "cmr"},
}

// cmAttnTuned are further configurations the tests cover and
// SHAREPREFILL_CM_ATTN_TILES can select.
var cmAttnTuned = []cmAttnTiles{
	{BR: 128, BC: 64, RF: 1, Kind: "cmr-cv"},
	{BR: 64, BC: 64, RF: 1, Kind: "cmr-cv"},
	{BR: 128, BC: 64, RF: 2, Kind: "cm2"},
	{BR: 128, BC: 128, RF: 1, Kind: "cm2", Fold: 4},
	{BR: 128, BC: 64, RF: 1, Kind: "cm2", Fold: 4},
	{BR: 256, BC: 64, RF: 2, Kind: "cm2"},
	// Kernel variants (issue 24: head dim 64, where the softmax weighs
	// as much as the products).
	{BR: 128, BC: 128, RF: 1, Kind: "cm2", Opt: optFoldScale},
	{BR: 128, BC: 128, RF: 1, Kind: "cm2", Opt: optPipe},
	{BR: 128, BC: 64, RF: 1, Kind: "cm2", Opt: optFoldScale | optPipe},
	{BR: 64, BC: 64, RF: 1, Kind: "cm2", Opt: optFoldScale | optPipe},
	{BR: 128, BC: 128, RF: 1, Kind: "cm2", Fold: 4, Opt: optFoldScale | optPipe},
	{BR: 128, BC: 32, RF: 1, Kind: "cmr", Opt: optFoldScale},
	{BR: 64, BC: 64, RF: 1, Kind: "cmr-cv", Opt: optFoldScale},
}

// chooseCMAttnTiles returns the first configuration of the device's table
// (deviceTables.cmAttn) that fits head dim d and whose BR and BC divide
// maxBlock (when > 0), and whether there is one.
func chooseCMAttnTiles(dev *runtime.Device, d, maxBlock int) (cmAttnTiles, bool, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return cmAttnTiles{}, false, err
	}
	for _, t := range tb.cmAttn {
		if maxBlock > 0 && (maxBlock%t.BR != 0 || maxBlock%t.BC != 0) {
			continue
		}
		if t.valid(dev, d) {
			return t.forHeadDim(d), true, nil
		}
	}
	return cmAttnTiles{}, false, nil
}

// cmAttnPick returns the cooperative-matrix configuration FlashAttention
// (maxBlock 0) or SparseAttention take on dev, and whether one applies: D
// is a multiple of 16 and a configuration of the device's table fits.
func cmAttnPick(dev *runtime.Device, d, maxBlock int) (cmAttnTiles, bool, error) {
	if d%16 != 0 {
		return cmAttnTiles{}, false, nil
	}
	return chooseCMAttnTiles(dev, d, maxBlock)
}

// cmAttnKernel returns the pipeline of t's kernel; o gives the output type.
// scale2 (scale·log2 e) decides which of t.Opt apply (cmAttnOpt.spec).
func cmAttnKernel(dev *runtime.Device, o *runtime.Tensor, sparse bool, t cmAttnTiles, d int, writeLSE bool, scale2 float32) (*runtime.Kernel, error) {
	sg := dev.Caps().SubgroupSize
	base := map[string]string{"cm1": "attn_cm1", "cmr": "attn_cmr", "cmr-cv": "attn_cmr_cv", "cm2": "attn_cm2"}[t.kind()]
	if sparse {
		base += "_sparse"
	}
	spec := []uint32{uint32(t.subgroups()) * sg, uint32(t.BR), uint32(t.BC), uint32(d), attnBool(writeLSE)}
	switch t.kind() {
	case "cm2":
		// t.Fold is resolved by the caller (cm2Fold; 0 for sparse).
		spec = append(spec, uint32(max(t.Fold, 1)), uint32(cm2RowWidth(dev, t.subgroups()*int(sg))), t.Opt.spec(scale2))
	case "cmr", "cmr-cv":
		// 0: attn_cmr's PROBE, then OPT.
		spec = append(spec, uint32(t.rf()), attnBool(t.Generic), 256/sg, 0, t.Opt.spec(scale2))
	}
	desc := runtime.KernelDesc{
		Shader: attnVariant(base, o), Bindings: 5, ReadOnly: 0b00111, PushSize: 48,
		Spec:          spec,
		SubgroupSize:  sg,
		FullSubgroups: true,
	}
	if sparse {
		desc.Bindings, desc.ReadOnly = 7, 0b1100111
	}
	return dev.Kernel(desc)
}

// cm2Fold is the GQA fold attn_cm2 uses for p: the largest power of two up
// to t.Fold that divides both the query heads per KV head and BR (1: none).
func cm2Fold(t cmAttnTiles, p AttnParams) int {
	f := 1
	if t.kind() != "cm2" || p.Hkv <= 0 {
		return f
	}
	g := p.Hq / p.Hkv
	for n := 2; n <= t.Fold; n *= 2 {
		if g%n == 0 && t.BR%n == 0 {
			f = n
		}
	}
	return f
}

// FlashAttentionCoopMat is FlashAttention forced onto the cooperative-matrix
// kernel; it fails when the device lacks it or D is not a multiple of 16.
func FlashAttentionCoopMat(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams) error {
	const op = "flash attention (coopmat)"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	t, err := cmAttnChoose(r.Device(), op, p.D, 0)
	if err != nil {
		return err
	}
	return flashAttentionCM(r, o, lse, q, k, v, p, t)
}

func cmAttnChoose(dev *runtime.Device, op string, d, maxBlock int) (cmAttnTiles, error) {
	if !dev.Caps().CoopMat {
		return cmAttnTiles{}, fmt.Errorf("%s: %w: needs VK_KHR_cooperative_matrix with f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT is set)", op, runtime.ErrMissingFeature)
	}
	if d%16 != 0 {
		return cmAttnTiles{}, fmt.Errorf("%s: head dim D=%d is not a multiple of 16", op, d)
	}
	t, ok, err := chooseCMAttnTiles(dev, d, maxBlock)
	if err != nil {
		return cmAttnTiles{}, fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return cmAttnTiles{}, fmt.Errorf("%s: no tile configuration for D=%d (block %d) fits this device (subgroup %d, %d bytes of shared memory)",
			op, d, maxBlock, dev.Caps().SubgroupSize, dev.Caps().MaxSharedMemory)
	}
	return t, nil
}

func flashAttentionCM(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams, t cmAttnTiles) error {
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("flash attention (coopmat): tiles %v do not fit this device for D=%d", t, p.D)
	}
	fold := cm2Fold(t, p)
	t.Fold = fold
	kern, err := cmAttnKernel(r.Device(), o, false, t, p.D, lse != nil, p.push(0).Scale2)
	if err != nil {
		return err
	}
	pos := t.BR / fold // query positions per workgroup
	rowTiles := (p.Sq + pos - 1) / pos
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq / fold), 1}, p.push(rowTiles), q, k, v, o, lse)
}

// SparseAttentionCoopMat is SparseAttention forced onto the
// cooperative-matrix kernel (block size a power of two ≥ 16).
func SparseAttentionCoopMat(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int) error {
	const op = "sparse attention (coopmat)"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	if err := checkPow2Block(blockSize, 16); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	t, err := cmAttnChoose(r.Device(), op, p.D, blockSize)
	if err != nil {
		return err
	}
	return sparseAttentionCM(r, o, lse, q, k, v, rowPtr, cols, p, blockSize, t)
}

func sparseAttentionCM(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int, t cmAttnTiles) error {
	const op = "sparse attention (coopmat)"
	if p.Q0%blockSize != 0 {
		return fmt.Errorf("%s: Q0=%d is not a multiple of the block size %d", op, p.Q0, blockSize)
	}
	nb := (p.Skv + blockSize - 1) / blockSize
	if qb := (p.Q0 + p.Sq + blockSize - 1) / blockSize; qb > nb {
		return fmt.Errorf("%s: queries up to position %d need %d query blocks, but Skv=%d gives nb=%d", op, p.Q0+p.Sq-1, qb, p.Skv, nb)
	}
	if err := attnCheckTensor(op, "rowPtr", rowPtr, []runtime.DType{runtime.I32}, p.Hq*nb+1, false); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "cols", cols, []runtime.DType{runtime.I32}, 1, true); err != nil {
		return err
	}
	if blockSize%t.BR != 0 || blockSize%t.BC != 0 {
		return fmt.Errorf("%s: tiles %v do not divide the block size %d", op, t, blockSize)
	}
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("%s: tiles %v do not fit this device for D=%d", op, t, p.D)
	}
	t.Fold = 0 // block lists are per head: no GQA fold
	kern, err := cmAttnKernel(r.Device(), o, true, t, p.D, lse != nil, p.push(0).Scale2)
	if err != nil {
		return err
	}
	rowTiles := (p.Sq + t.BR - 1) / t.BR
	pc := p.push(rowTiles)
	pc.B, pc.Nb = uint32(blockSize), uint32(nb)
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq), 1}, pc, q, k, v, o, lse, rowPtr, cols)
}

// AttentionKernel describes the kernel and tiles that FlashAttention (block
// 0) or SparseAttention (block B > 0) use on dev for head dim d, for
// reports: "cm2 128x128 rf1", "cm1 128x32", or "scalar {...}".
func AttentionKernel(dev *runtime.Device, d, block int) string {
	t, ok, err := cmAttnPick(dev, d, block)
	if err != nil {
		return "none: " + err.Error()
	}
	if ok {
		return t.String()
	}
	st, err := ChooseAttnTiles(dev, d, block)
	if err != nil {
		return "none: " + err.Error()
	}
	return fmt.Sprintf("scalar %+v", st)
}
