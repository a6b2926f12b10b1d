package kernels

import (
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
)

// AttnParams describes one attention call.
//
// Layouts (token-major): Q [Sq, Hq, D] f16, K and V [Skv, Hkv, D] f16 (the
// tensors may be longer, e.g. a KV cache; only the first Skv tokens are
// read), O [Sq, Hq, D] f32 or f16, LSE [Hq, Sq] f32. Query head h uses KV head
// h / (Hq/Hkv). Query i sits at position Q0+i; with Causal, key j is allowed
// when j ≤ Q0+i. LSE is the natural log of Σ_j exp(Scale·q_i·k_j) over the
// allowed keys (−Inf for a row without any; its O row is then 0).
type AttnParams struct {
	Hq, Hkv int     // query heads, key/value heads (Hq a multiple of Hkv)
	D       int     // head dimension: a multiple of 4, at most 256
	Sq, Skv int     // queries in this call, keys visible to it
	Q0      int     // position of the first query
	Scale   float32 // score scale; 0 means 1/√D
	Causal  bool
}

// String describes the parameters.
func (p AttnParams) String() string {
	return fmt.Sprintf("Hq=%d/Hkv=%d D=%d Sq=%d Skv=%d Q0=%d causal=%v", p.Hq, p.Hkv, p.D, p.Sq, p.Skv, p.Q0, p.Causal)
}

// scale returns the effective scale.
func (p AttnParams) scale() float64 {
	if p.Scale == 0 {
		return 1 / math.Sqrt(float64(p.D))
	}
	return float64(p.Scale)
}

// AttnTiles is a tile configuration of the scalar attention shader: WG
// threads, Br query rows per workgroup, Bc keys per KV tile.
type AttnTiles struct{ WG, Br, Bc int }

// attnSharedBytes mirrors the shared arrays of shaders/attn.comp.
func attnSharedBytes(t AttnTiles, d int) int {
	d4 := d / 4
	return t.Br*(d4+1)*16 + t.Bc*(d4+1)*8 + t.Bc*d4*8 + t.Br*t.Bc*4 + t.WG*4
}

func (t AttnTiles) valid(dev *runtime.Device, d int) bool {
	info := dev.Info()
	if t.WG <= 0 || t.Br <= 0 || t.Bc <= 0 || t.WG%t.Br != 0 {
		return false
	}
	tpr := t.WG / t.Br
	if t.Bc%tpr != 0 || uint32(t.WG) > info.MaxWorkgroupInvocations || uint32(t.WG) > info.MaxWorkgroupSize[0] {
		return false
	}
	// Keep 512 bytes of headroom for what the compiler may add.
	return attnSharedBytes(t, d)+512 <= int(dev.Caps().MaxSharedMemory)
}

// attnPrefillTiles lists the prefill configurations, preferred first. Wide
// workgroups win, as occupancy is bounded by shared memory per workgroup
// (bench/RESULTS.md, the scalar kernel's tiles).
var attnPrefillTiles = []AttnTiles{
	{512, 32, 32}, {256, 32, 32}, {256, 16, 64}, {256, 16, 32}, {128, 32, 32},
	{128, 16, 32}, {64, 16, 32}, {64, 16, 16}, {32, 8, 16}, {32, 8, 8}, {16, 4, 8}, {16, 4, 4},
}

// ChooseAttnTiles picks the prefill tile configuration for head dim d that fits
// the device's shared memory; maxBlock > 0 restricts Br and Bc to divisors of
// that (power-of-two) block size (block-sparse attention).
func ChooseAttnTiles(dev *runtime.Device, d, maxBlock int) (AttnTiles, error) {
	for _, t := range attnPrefillTiles {
		if maxBlock > 0 && (t.Br > maxBlock || t.Bc > maxBlock) {
			continue
		}
		if t.valid(dev, d) {
			return t, nil
		}
	}
	return AttnTiles{}, fmt.Errorf("attention: no tile configuration for D=%d fits %d bytes of shared memory", d, dev.Caps().MaxSharedMemory)
}

// attnDecodeTiles picks tiles for the grouped (decode) mode: rows = Sq·G.
func attnDecodeTiles(dev *runtime.Device, d, rows int) (AttnTiles, error) {
	br := 1
	for br < rows && br < 16 {
		br *= 2
	}
	for _, wg := range []int{128, 64, 32, 16} {
		for _, bc := range []int{64, 32, 16, 8} {
			t := AttnTiles{wg, br, bc}
			if wg >= br && t.valid(dev, d) {
				return t, nil
			}
		}
	}
	return AttnTiles{}, fmt.Errorf("attention: no decode tile configuration for D=%d fits %d bytes of shared memory", d, dev.Caps().MaxSharedMemory)
}

func (p AttnParams) check(op string) error {
	switch {
	case p.Hq <= 0 || p.Hkv <= 0:
		return fmt.Errorf("%s: Hq=%d, Hkv=%d must be positive", op, p.Hq, p.Hkv)
	case p.Hq%p.Hkv != 0:
		return fmt.Errorf("%s: Hq=%d is not a multiple of Hkv=%d (grouped-query attention)", op, p.Hq, p.Hkv)
	case p.D <= 0 || p.D%4 != 0 || p.D > 256:
		return fmt.Errorf("%s: head dim D=%d must be a multiple of 4 in 4..256", op, p.D)
	case p.Sq < 0 || p.Skv <= 0:
		return fmt.Errorf("%s: Sq=%d must be ≥ 0 and Skv=%d ≥ 1", op, p.Sq, p.Skv)
	case p.Q0 < 0:
		return fmt.Errorf("%s: Q0=%d is negative", op, p.Q0)
	case math.IsNaN(float64(p.Scale)) || math.IsInf(float64(p.Scale), 0):
		return fmt.Errorf("%s: scale %v is not finite", op, p.Scale)
	case uint64(p.Sq)*uint64(p.Hq)*uint64(p.D) >= 1<<32 || uint64(p.Skv)*uint64(p.Hkv)*uint64(p.D) >= 1<<32:
		return fmt.Errorf("%s: tensors over 2^32 elements are not supported", op)
	}
	return nil
}

func attnCheckTensor(op, what string, t *runtime.Tensor, dts []runtime.DType, n int, atLeast bool) error {
	if t == nil {
		return fmt.Errorf("%s: %s is nil", op, what)
	}
	ok := false
	for _, dt := range dts {
		ok = ok || t.DType() == dt
	}
	if !ok {
		return fmt.Errorf("%s: %s (%s) has dtype %s, want %v", op, what, t.Name(), t.DType(), dts)
	}
	if (atLeast && t.Len() < n) || (!atLeast && t.Len() != n) {
		rel := "exactly"
		if atLeast {
			rel = "at least"
		}
		return fmt.Errorf("%s: %s (%s) has %d elements, want %s %d", op, what, t.Name(), t.Len(), rel, n)
	}
	return nil
}

var attnF16 = []runtime.DType{runtime.F16}

// attnCheckIO validates q, k, v, o and lse (lse may be nil).
func attnCheckIO(op string, o, lse, q, k, v *runtime.Tensor, p AttnParams) error {
	if err := p.check(op); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "q", q, attnF16, p.Sq*p.Hq*p.D, false); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "k", k, attnF16, p.Skv*p.Hkv*p.D, true); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "v", v, attnF16, p.Skv*p.Hkv*p.D, true); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "o", o, []runtime.DType{runtime.F32, runtime.F16}, p.Sq*p.Hq*p.D, false); err != nil {
		return err
	}
	if lse != nil {
		if err := attnCheckTensor(op, "lse", lse, []runtime.DType{runtime.F32}, p.Hq*p.Sq, false); err != nil {
			return err
		}
	}
	return nil
}

// attnPush is the push-constant block of shaders/attn.comp.
type attnPush struct {
	Sq, Skv, Q0, Hq, Hkv uint32
	Scale2               float32
	Causal               uint32
	LseOff               uint32
	TilesPerSplit        uint32
	NRowTiles            uint32
	B, Nb                uint32
}

func attnBool(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (p AttnParams) push(rowTiles int) attnPush {
	return attnPush{
		Sq: uint32(p.Sq), Skv: uint32(p.Skv), Q0: uint32(p.Q0), Hq: uint32(p.Hq), Hkv: uint32(p.Hkv),
		Scale2: float32(p.scale() * math.Log2E), Causal: attnBool(p.Causal), NRowTiles: uint32(rowTiles),
	}
}

func attnKernel(dev *runtime.Device, shader string, sparse bool, t AttnTiles, d int, writeLSE bool, gq int) (*runtime.Kernel, error) {
	desc := runtime.KernelDesc{
		Shader: shader, Bindings: 5, ReadOnly: 0b00111, PushSize: 48,
		Spec: []uint32{uint32(t.WG), uint32(t.Br), uint32(t.Bc), uint32(d), attnBool(writeLSE), uint32(gq)},
	}
	if sparse {
		desc.Bindings, desc.ReadOnly = 7, 0b1100111
	}
	return dev.Kernel(desc)
}

func attnVariant(base string, o *runtime.Tensor) string {
	if o.DType() == runtime.F16 {
		return base + "_f16"
	}
	return base + "_f32"
}

// FlashAttention records dense flash attention (scalar shader, online softmax
// in f32): O = softmax(Scale·Q·Kᵀ + mask)·V per query head, causal when
// p.Causal, with queries at positions p.Q0.. (chunked prefill). lse may be nil.
func FlashAttention(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams) error {
	if err := attnCheckIO("flash attention", o, lse, q, k, v, p); err != nil {
		return err
	}
	if t, ok, err := cmAttnPick(r.Device(), p.D, 0); err != nil { // attn_cm.go
		return fmt.Errorf("flash attention: %w", err)
	} else if ok {
		return flashAttentionCM(r, o, lse, q, k, v, p, t)
	}
	t, err := ChooseAttnTiles(r.Device(), p.D, 0)
	if err != nil {
		return err
	}
	return flashAttention(r, o, lse, q, k, v, p, t)
}

// FlashAttentionWithTiles is FlashAttention with a forced tile configuration
// (for tuning and benchmarks); it fails when t does not fit the device.
func FlashAttentionWithTiles(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams, t AttnTiles) error {
	if err := attnCheckIO("flash attention", o, lse, q, k, v, p); err != nil {
		return err
	}
	return flashAttention(r, o, lse, q, k, v, p, t)
}

func flashAttention(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams, t AttnTiles) error {
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("flash attention: tiles %+v do not fit this device for D=%d", t, p.D)
	}
	kern, err := attnKernel(r.Device(), attnVariant("attn", o), false, t, p.D, lse != nil, 1)
	if err != nil {
		return err
	}
	rowTiles := (p.Sq + t.Br - 1) / t.Br
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq), 1}, p.push(rowTiles), q, k, v, o, lse)
}

// MinBlockSize is the smallest block size of block-sparse attention.
const MinBlockSize = 8

// CheckBlockSize checks the block size B of block-sparse attention, the one
// rule for the B of a sparse prefill (the planners' grid, the estimates and
// SparseAttention): B must be a power of two ≥ MinBlockSize, so that every
// tile of the attention kernels divides it.
func CheckBlockSize(b int) error { return checkPow2Block(b, MinBlockSize) }

// checkPow2Block checks that b is a power of two ≥ least.
func checkPow2Block(b, least int) error {
	if b < least || bits.OnesCount(uint(b)) != 1 {
		return fmt.Errorf("block size %d is not a power of two ≥ %d", b, least)
	}
	return nil
}

// SparseAttention records block-sparse attention. For query head h and query
// block r (queries at positions [r·B, (r+1)·B)), the key blocks
// cols[rowPtr[h·nb+r] .. rowPtr[h·nb+r+1]) are attended, nb = ⌈Skv/B⌉, with the
// token-level causal mask applied where p.Causal (only the diagonal block needs
// it). rowPtr is i32 [Hq·nb+1], cols i32 [nnz] (sorted ascending by
// convention, the diagonal last; a negative entry is skipped). blockSize B is
// a power of two ≥ 8; p.Q0 must be a multiple of B. O and LSE are as in
// FlashAttention; a row with an empty list gets O = 0 and LSE = −Inf. The work
// of a workgroup is proportional to its list length.
func SparseAttention(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int) error {
	const op = "sparse attention"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	if err := CheckBlockSize(blockSize); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if t, ok, err := cmAttnPick(r.Device(), p.D, blockSize); err != nil { // attn_cm.go
		return fmt.Errorf("%s: %w", op, err)
	} else if ok {
		return sparseAttentionCM(r, o, lse, q, k, v, rowPtr, cols, p, blockSize, t)
	}
	t, err := ChooseAttnTiles(r.Device(), p.D, blockSize)
	if err != nil {
		return err
	}
	return sparseAttention(r, o, lse, q, k, v, rowPtr, cols, p, blockSize, t)
}

func sparseAttention(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int, t AttnTiles) error {
	const op = "sparse attention"
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
	if t.Br > blockSize || t.Bc > blockSize || blockSize%t.Br != 0 || blockSize%t.Bc != 0 {
		return fmt.Errorf("%s: tiles %+v do not divide the block size %d", op, t, blockSize)
	}
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("%s: tiles %+v do not fit this device for D=%d", op, t, p.D)
	}
	kern, err := attnKernel(r.Device(), attnVariant("attn_sparse", o), true, t, p.D, lse != nil, 1)
	if err != nil {
		return err
	}
	rowTiles := (p.Sq + t.Br - 1) / t.Br
	pc := p.push(rowTiles)
	pc.B, pc.Nb = uint32(blockSize), uint32(nb)
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq), 1}, pc, q, k, v, o, lse, rowPtr, cols)
}

// attnReduceLocal is the workgroup size of attn_reduce.comp (a power of
// two): one workgroup merges one output row's splits.
const attnReduceLocal = 64

// attnDecodePlan is the split-KV plan of DecodeAttention: the attn_decode
// kernel's (one: wg, kps, kc, tpk, rb; planDecodeSplit) or the scalar kernel's
// with attn_reduce (t, rowTiles, tilesPerSplit). Both split the KV range
// into splits parts.
type attnDecodePlan struct {
	t             AttnTiles
	rowTiles      int
	splits        int
	tilesPerSplit int

	one                  bool
	wg, kps, kc, tpk, rb int
	// two: the plan is attn_decode2's (planDecodeSplit2; one is set too),
	// with lanes per key and unroll keys per cluster and batch.
	two           bool
	lanes, unroll int
	// subgroup: attn_decode's row reductions take subgroup arithmetic.
	subgroup bool
}

// scratchLen is the scratch the plan needs (0: none): the counters' head
// (decodeCounterWords), then every split's partial O and LSE.
func (pl attnDecodePlan) scratchLen(dev *runtime.Device, p AttnParams) int {
	if pl.splits <= 1 {
		return 0
	}
	return decodeCounterWords(dev, p.Hkv) + pl.splits*(p.Sq*p.Hq*p.D+p.Hq*p.Sq)
}

// attnPlanDecode plans DecodeAttention for p: the first variant of the
// device's "decode attention" table that takes p.
func attnPlanDecode(dev *runtime.Device, p AttnParams) (attnDecodePlan, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return attnDecodePlan{}, err
	}
	if tb.has("decode attention", "splitkv2") {
		if pl, ok := planDecodeSplit2(dev, p); ok {
			return pl, nil
		}
	}
	if tb.has("decode attention", "splitkv") {
		if pl, ok := planDecodeSplit(dev, p); ok {
			return pl, nil
		}
	}
	return attnPlanDecodeScalar(dev, p)
}

// attnPlanDecodeScalar plans the scalar kernel with attn_reduce for p.
func attnPlanDecodeScalar(dev *runtime.Device, p AttnParams) (attnDecodePlan, error) {
	g := p.Hq / p.Hkv
	t, err := attnDecodeTiles(dev, p.D, p.Sq*g)
	if err != nil {
		return attnDecodePlan{}, err
	}
	pl := attnDecodePlan{t: t, rowTiles: (p.Sq*g + t.Br - 1) / t.Br, splits: 1}
	kend := p.Skv
	if p.Causal {
		kend = min(p.Skv, p.Q0+p.Sq)
	}
	nt := (kend + t.Bc - 1) / t.Bc
	// Aim at ~256 workgroups in all, at least 2 KV tiles per split.
	want := (256 + p.Hkv*pl.rowTiles - 1) / (p.Hkv * pl.rowTiles)
	if want > 1 && nt > 2 {
		tps := max(2, (nt+want-1)/want)
		pl.tilesPerSplit = tps
		pl.splits = (nt + tps - 1) / tps
	}
	if pl.splits <= 1 {
		pl.splits, pl.tilesPerSplit = 1, 0
	}
	return pl, nil
}

// DecodeScratchLen is the number of f32 elements of the scratch tensor that
// lets DecodeAttention split the KV range over several workgroups (0 when it
// would not split).
func DecodeScratchLen(dev *runtime.Device, p AttnParams) (int, error) {
	if err := p.check("decode attention"); err != nil {
		return 0, err
	}
	pl, err := attnPlanDecode(dev, p)
	if err != nil {
		return 0, err
	}
	return pl.scratchLen(dev, p), nil
}

// DecodeScratchMax is the largest DecodeScratchLen over every cache length
// from 1 to p.Skv (p.Sq queries at the end of the cache), so that one scratch
// tensor serves every step of a generation.
func DecodeScratchMax(dev *runtime.Device, p AttnParams) (int, error) {
	if err := p.check("decode attention"); err != nil {
		return 0, err
	}
	pl, err := attnPlanDecode(dev, p)
	if err != nil {
		return 0, err
	}
	splits := 0
	if pl.one {
		splits = decSplitMaxSplits(dev, p, pl.two)
	} else {
		// attnPlanDecodeScalar splits into at most `want` parts of at least
		// 2 tiles: the most splits any shorter cache gets is
		// min(want, ⌈tiles/2⌉).
		want := (256 + p.Hkv*pl.rowTiles - 1) / (p.Hkv * pl.rowTiles)
		nt := (p.Skv + pl.t.Bc - 1) / pl.t.Bc
		if splits = min(want, (nt+1)/2); want <= 1 || nt <= 2 {
			splits = 0
		}
	}
	return attnDecodePlan{splits: splits}.scratchLen(dev, p), nil
}

// DecodeAttention records attention of a few queries (decode: Sq = 1,
// Q0 = Skv−1, against a KV cache of Skv tokens). The G = Hq/Hkv query heads of
// a KV head share one workgroup (K/V read once per group), and with a scratch
// tensor (f32, at least DecodeScratchLen elements) the KV range is split over
// several workgroups whose partial results are merged (flash-decoding): for
// up to 16 rows Sq·G by the last workgroup of each KV head to finish, in the
// same dispatch (the device's "decode attention" variant splitkv), else by a
// second pass. The scratch must be all zero before its first use: the
// split-KV kernel counts finished splits in its first words, and every call
// leaves them zero again. scratch may be nil: one workgroup per KV head then
// loops over the whole cache. Outputs as in FlashAttention; lse may be nil.
func DecodeAttention(r *runtime.Recorder, o, lse, q, k, v, scratch *runtime.Tensor, p AttnParams) error {
	const op = "decode attention"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	if p.Sq == 0 {
		return nil
	}
	pl, err := attnPlanDecode(r.Device(), p)
	if err != nil {
		return err
	}
	return decodeAttention(r, o, lse, q, k, v, scratch, nil, p, pl)
}

// decodeAttention records the plan pl. With pos nil, p is the call; else
// p.Q0 and p.Skv are added to pos[0] when the commands run (attn_dyn_*).
func decodeAttention(r *runtime.Recorder, o, lse, q, k, v, scratch, pos *runtime.Tensor, p AttnParams, pl attnDecodePlan) error {
	const op = "decode attention"
	dev := r.Device()
	g := p.Hq / p.Hkv
	kernel := func(shader string, writeLSE bool) (*runtime.Kernel, error) {
		if pos == nil {
			return attnKernel(dev, shader, false, pl.t, p.D, writeLSE, g)
		}
		return dev.Kernel(runtime.KernelDesc{
			Shader: strings.Replace(shader, "attn_", "attn_dyn_", 1), Bindings: 6, ReadOnly: 0b100111, PushSize: 48,
			Spec: []uint32{uint32(pl.t.WG), uint32(pl.t.Br), uint32(pl.t.Bc), uint32(p.D), attnBool(writeLSE), uint32(g)},
		})
	}
	dispatch := func(k *runtime.Kernel, groups [3]uint32, pc attnPush, args ...any) error {
		if pos != nil {
			args = append(args, pos)
		}
		return r.Dispatch(k, groups, pc, args...)
	}
	need := pl.scratchLen(dev, p)
	if scratch != nil {
		if err := attnCheckTensor(op, "scratch", scratch, []runtime.DType{runtime.F32}, max(1, need), true); err != nil {
			return err
		}
	}
	if scratch == nil && pl.splits > 1 {
		if pl.one {
			// One attn_decode workgroup per KV head cannot hold a long
			// cache's scores: the scalar kernel loops over it.
			var err error
			if pl, err = attnPlanDecodeScalar(dev, p); err != nil {
				return err
			}
		}
		pl.splits, pl.tilesPerSplit = 1, 0
	}
	if pl.two {
		return decodeSplit2(r, o, lse, q, k, v, scratch, pos, p, pl)
	}
	if pl.one {
		return decodeSplit(r, o, lse, q, k, v, scratch, pos, p, pl)
	}
	groups := [3]uint32{uint32(pl.rowTiles), uint32(p.Hkv), uint32(pl.splits)}
	pc := p.push(pl.rowTiles)
	if pl.splits == 1 {
		kern, err := kernel(attnVariant("attn", o), lse != nil)
		if err != nil {
			return err
		}
		if lse == nil {
			lse = o
		}
		return dispatch(kern, groups, pc, q, k, v, o, lse)
	}
	kern, err := kernel("attn_f32", true)
	if err != nil {
		return err
	}
	lseOff := pl.splits * p.Sq * p.Hq * p.D
	pc.LseOff = uint32(lseOff)
	pc.TilesPerSplit = uint32(pl.tilesPerSplit)
	part := scratch.Slice(decodeCounterWords(dev, p.Hkv), need-decodeCounterWords(dev, p.Hkv)) // past attn_decode's counters
	if err := dispatch(kern, groups, pc, q, k, v, part, part); err != nil {
		return err
	}
	red, err := dev.Kernel(runtime.KernelDesc{
		Shader: attnVariant("attn_reduce", o), Bindings: 4, ReadOnly: 0b0011, PushSize: 20,
		Spec: []uint32{attnReduceLocal, attnBool(lse != nil)},
	})
	if err != nil {
		return err
	}
	if lse == nil {
		lse = o
	}
	// One workgroup per output row, its threads over the splits.
	rows := p.Sq * p.Hq
	return r.Dispatch(red, dev.Groups1D(rows*attnReduceLocal, attnReduceLocal), [5]uint32{uint32(p.Sq), uint32(p.Hq), uint32(p.D / 4), uint32(pl.splits), uint32(lseOff)},
		part, part, o, lse)
}
