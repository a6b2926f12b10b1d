package kernels

import "github.com/shareprefill/shareprefill/runtime"

// The split-KV decode kernel without shared-memory staging
// (shaders/attn_decode2.comp): the "splitkv2" variant of the "decode
// attention" op, the default where it applies (Tuning.DecodeAttnSplitKV1 keeps to attn_decode). Grid, scratch
// and results are attn_decode's (decodeSplit); inside a workgroup each
// cluster of T lanes of a subgroup streams its own keys with an online
// softmax in registers, 16-byte loads of K and V one batch ahead, and the
// subgroups meet in shared memory once, after the keys.

const (
	// dec2MaxRegs bounds rows × channels per lane (Sq·G · D/T): the floats
	// of the running output each lane keeps in registers, and as many of
	// the query.
	dec2MaxRegs = 64
	// dec2MaxLoads bounds the 16-byte K loads (as many V) a lane keeps in
	// flight for one batch: U keys × D/(8T) pieces.
	dec2MaxLoads = 4
)

// dec2SharedBytes mirrors the shared arrays of shaders/attn_decode2.comp:
// nsg subgroups' outputs for rb rows, their max and sum for all rows, and
// the merge's wg partial outputs.
func dec2SharedBytes(wg, nsg, rows, rb, d int) int {
	return nsg*rb*d*4 + 2*nsg*rows*4 + wg*(16+4+4) + 4
}

// dec2Lanes is attn_decode2's lanes per key for head dim d on subgroups
// of sg lanes: the largest power of two that divides d/8 and is at most
// sg (0 when d is not a multiple of 8).
func dec2Lanes(d, sg int) int {
	if d%8 != 0 || sg < 1 {
		return 0
	}
	t := 1
	for 2*t <= sg && (d/8)%(2*t) == 0 {
		t *= 2
	}
	return t
}

// planDecodeSplit2 plans attn_decode2 for p; ok is false when the kernel
// does not take p: no subgroup shuffles, D not a multiple of 8, more than
// decMaxRows rows, more than dec2MaxRegs output floats a lane, or no room
// in shared memory. Splits are attn_decode's (decSplitKeys, decTarget)
// but at least two batches of keys long, and a split is never chunked.
func planDecodeSplit2(dev *runtime.Device, p AttnParams) (pl attnDecodePlan, ok bool) {
	caps, info := dev.Caps(), dev.Info()
	sg := int(caps.SubgroupSize)
	g := p.Hq / p.Hkv
	rows := p.Sq * g
	if !info.SubgroupShuffle || sg < 1 || sg&(sg-1) != 0 || rows > decMaxRows || rows < 1 {
		return pl, false
	}
	lanes := dec2Lanes(p.D, sg)
	if lanes == 0 || rows*p.D/lanes > dec2MaxRegs {
		return pl, false
	}
	wg := max(decWG, sg)
	if wg > int(info.MaxWorkgroupInvocations) {
		return pl, false
	}
	nsg := wg / sg
	pieces := p.D / (8 * lanes)
	unroll := 4
	if rows <= 2 {
		unroll = 8
	}
	unroll = max(1, min(unroll, dec2MaxLoads/pieces))
	limit := int(caps.MaxSharedMemory) - 512 // headroom for what the compiler adds
	rb := rows
	for rb > 1 && dec2SharedBytes(wg, nsg, rows, rb, p.D) > limit {
		rb--
	}
	if dec2SharedBytes(wg, nsg, rows, rb, p.D) > limit {
		return pl, false
	}
	kend := p.Skv
	if p.Causal {
		kend = min(p.Skv, p.Q0+p.Sq)
	}
	minKeys := decMinKeys
	for minKeys < 2*(wg/lanes)*unroll {
		minKeys *= 2
	}
	kps := decSplitKeysFrom(kend, p.Hkv, decTarget(dev), minKeys)
	return attnDecodePlan{one: true, two: true, wg: wg, kps: kps, kc: kps, rb: rb, lanes: lanes, unroll: unroll, splits: (kend + kps - 1) / kps}, true
}

// decodeSplit2 records attn_decode2 with the plan pl (pl.two), as
// decodeSplit records attn_decode.
func decodeSplit2(r *runtime.Recorder, o, lse, q, k, v, scratch, pos *runtime.Tensor, p AttnParams, pl attnDecodePlan) error {
	dev := r.Device()
	g := p.Hq / p.Hkv
	shader, bindings, ro := attnVariant("attn_decode2", o), 8, uint32(0b111)
	if pos != nil {
		shader, bindings, ro = attnVariant("attn_decode2_dyn", o), 9, ro|1<<8
	}
	sg := dev.Caps().SubgroupSize
	kern, err := dev.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: bindings, ReadOnly: ro, PushSize: 36,
		Spec: []uint32{uint32(pl.wg), uint32(p.Sq * g), uint32(pl.lanes), uint32(p.D), attnBool(lse != nil), uint32(g),
			uint32(pl.unroll), uint32(pl.rb), uint32(pl.wg) / sg},
		SubgroupSize:  sg,
		FullSubgroups: true,
	})
	if err != nil {
		return err
	}
	return decodeSplitDispatch(r, kern, p, pl.splits, pl.kps, o, lse, q, k, v, scratch, pos)
}
