package kernels

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/runtime"
)

// The split-KV decode kernel (shaders/attn_decode.comp): the "splitkv"
// variant of the "decode attention" op. One dispatch per call: each
// workgroup takes the R = Sq·G rows of one KV head (no idle rows) against
// kps consecutive keys, and the last workgroup of a KV head to finish merges
// the splits' partial results, found with a counter in the scratch that
// the kernel resets itself. The scalar kernel (attn.comp with attn_reduce,
// two dispatches) stays the reference and takes what this one does not:
// more than decMaxRows rows, or no room in shared memory.

const (
	// decMaxRows is the most rows (Sq·G) an attn_decode workgroup takes.
	decMaxRows = 16
	// decWG is attn_decode's workgroup size.
	decWG = 128
	// decMinKeys is the shortest split, decMaxKeys the longest chunk of a
	// split that attn_decode takes at once (powers of two).
	decMinKeys, decMaxKeys = 64, 1024
	// decTargetGroups is the workgroup count attn_decode aims at: splits
	// grow past decMinKeys keys only when a KV head would have more than
	// decTargetGroups/Hkv of them. Tuning.DecodeSplitGroups replaces it.
	decTargetGroups = 256
)

// decSharedBytes mirrors the shared arrays of shaders/attn_decode.comp for
// rows R, kc keys per chunk, tpk threads per key, rb rows per batch.
func decSharedBytes(wg, rows, kc, tpk, rb, d int) int {
	return rows*(d/4)*16 + tpk*rows*kc*4 + rb*wg*16 + wg*4 + 3*rows*4 + 4
}

// decTPK is the threads per key of attn_decode's score pass: the workgroup
// covers min(kc, wg) keys at a time.
func decTPK(wg, kc int) int { return max(1, wg/kc) }

// planDecodeSplit plans attn_decode for p; ok is false when the kernel does
// not take p (too many rows, or its smallest chunk does not fit shared
// memory), whatever p.Skv is. A split has kps keys, the smallest power of
// two from decMinKeys that keeps the splits at most decTargetGroups/Hkv,
// taken kc at a time (kc ≤ kps, as many as fit shared memory up to
// decMaxKeys).
func planDecodeSplit(dev *runtime.Device, p AttnParams) (pl attnDecodePlan, ok bool) {
	g := p.Hq / p.Hkv
	rows := p.Sq * g
	if rows > decMaxRows || rows < 1 {
		return pl, false
	}
	wg, d4 := decWG, p.D/4
	limit := int(dev.Caps().MaxSharedMemory) - 512 // headroom for what the compiler adds
	fits := func(kc, rb int) bool { return decSharedBytes(wg, rows, kc, decTPK(wg, kc), rb, p.D) <= limit }
	rb := min(rows, wg/d4)
	for rb > 1 && !fits(decMinKeys, rb) {
		rb--
	}
	if !fits(decMinKeys, rb) {
		return pl, false
	}
	kend := p.Skv
	if p.Causal {
		kend = min(p.Skv, p.Q0+p.Sq)
	}
	kps := decSplitKeysFrom(kend, p.Hkv, decTarget(dev), decMinKeys)
	kc := decMinKeys
	for kc < min(kps, decMaxKeys) && fits(2*kc, rb) {
		kc *= 2
	}
	caps := dev.Caps()
	sg := caps.SubgroupArithmetic && caps.SubgroupSize > 0 && wg%int(caps.SubgroupSize) == 0
	return attnDecodePlan{one: true, wg: wg, kps: kps, kc: kc, tpk: decTPK(wg, kc), rb: rb, splits: (kend + kps - 1) / kps, subgroup: sg}, true
}

// decSplitKeysFrom is the split length of attn_decode and attn_decode2
// for kend keys: the smallest power of two from minKeys (a power of two)
// that gives each of hkv KV heads at most target/hkv splits.
func decSplitKeysFrom(kend, hkv, target, minKeys int) int {
	want := max(1, target/hkv)
	kps := minKeys
	for kps*want < kend {
		kps *= 2
	}
	return kps
}

// decTarget is the workgroup count attn_decode aims at on dev:
// Tuning.DecodeSplitGroups where set, else decTargetGroups.
func decTarget(dev *runtime.Device) int {
	if g := dev.Tuning().DecodeSplitGroups; g > 0 {
		return g
	}
	return decTargetGroups
}

// decSplitMaxSplits is the most attn_decode splits (attn_decode2's with
// two) any cache of up to p.Skv keys (p.Sq queries at its end) gets.
// Within one split length the split count grows with the cache, and a
// cache gets split length k only up to k·(decTargetGroups/Hkv) keys, so
// the lengths' longest caches are the candidates (every power of two from
// decMinKeys, which covers both kernels' shortest splits).
func decSplitMaxSplits(dev *runtime.Device, p AttnParams, two bool) int {
	plan := planDecodeSplit
	if two {
		plan = planDecodeSplit2
	}
	want := max(1, decTarget(dev)/p.Hkv)
	most := 0
	for k := decMinKeys; ; k *= 2 {
		q := p
		q.Skv = min(p.Skv, k*want)
		q.Q0 = max(0, q.Skv-p.Sq)
		if pl, ok := plan(dev, q); ok {
			most = max(most, pl.splits)
		}
		if k*want >= p.Skv {
			return most
		}
	}
}

// decodeCounterWords is the length of the scratch's head, where attn_decode
// keeps a counter per KV head: hkv words rounded up to the storage-buffer
// alignment, so that the partial results after it can be bound.
func decodeCounterWords(dev *runtime.Device, hkv int) int {
	a := max(1, int(dev.Alignment()/4))
	return (hkv + a - 1) / a * a
}

// decodeSplit records attn_decode with the plan pl (pl.one). With pos nil,
// p is the call; else p.Q0 and p.Skv are added to pos[0] when the commands
// run (attn_decode_dyn_*). scratch is checked by the caller (nil only when
// pl.splits is 1).
func decodeSplit(r *runtime.Recorder, o, lse, q, k, v, scratch, pos *runtime.Tensor, p AttnParams, pl attnDecodePlan) error {
	dev := r.Device()
	g := p.Hq / p.Hkv
	shader, bindings, ro := attnVariant("attn_decode", o), 8, uint32(0b111)
	if pos != nil {
		shader, bindings, ro = attnVariant("attn_decode_dyn", o), 9, ro|1<<8
	}
	kern, err := dev.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: bindings, ReadOnly: ro, PushSize: 36,
		Spec: []uint32{uint32(pl.wg), uint32(p.Sq * g), uint32(pl.kc), uint32(p.D), attnBool(lse != nil), uint32(g), uint32(pl.tpk), uint32(pl.rb), b2u(pl.subgroup)},
	})
	if err != nil {
		return err
	}
	return decodeSplitDispatch(r, kern, p, pl.splits, pl.kps, o, lse, q, k, v, scratch, pos)
}

// decodeSplitDispatch records a split-KV decode kernel (attn_decode or
// attn_decode2, which share bindings, push constants, grid and scratch
// layout): splits workgroups of kps keys per KV head, the partial O, the
// partial LSE and the per-KV-head counters in scratch where there are
// several splits, pos (the `_dyn` variants) appended when not nil.
func decodeSplitDispatch(r *runtime.Recorder, kern *runtime.Kernel, p AttnParams, splits, kps int, o, lse, q, k, v, scratch, pos *runtime.Tensor) error {
	dev := r.Device()
	pc := struct {
		Sq, Skv, Q0, Hq, Hkv uint32
		Scale2               float32
		Causal, LseOff, KPS  uint32
	}{uint32(p.Sq), uint32(p.Skv), uint32(p.Q0), uint32(p.Hq), uint32(p.Hkv), float32(p.scale() * math.Log2E), attnBool(p.Causal), 0, uint32(kps)}
	if lse == nil {
		lse = o
	}
	// Bindings 5, 6 and 7 (partial O, partial LSE, counters) are not touched
	// with one split.
	args := []any{q, k, v, o, lse, o, o, o}
	if splits > 1 {
		cw := decodeCounterWords(dev, p.Hkv)
		n := splits * (p.Sq*p.Hq*p.D + p.Hq*p.Sq)
		part := scratch.Slice(cw, n)
		pc.LseOff = uint32(splits * p.Sq * p.Hq * p.D)
		args[5], args[6], args[7] = part, part, scratch.Slice(0, cw)
	}
	if pos != nil {
		args = append(args, pos)
	}
	if splits > int(dev.Info().MaxWorkgroupCount[0]) || p.Hkv > int(dev.Info().MaxWorkgroupCount[1]) {
		return fmt.Errorf("decode attention: %d splits × %d KV heads exceed the device's workgroup counts", splits, p.Hkv)
	}
	return r.Dispatch(kern, [3]uint32{uint32(splits), uint32(p.Hkv), 1}, pc, args...)
}
