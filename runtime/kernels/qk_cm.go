package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Cooperative-matrix (VK_KHR_cooperative_matrix) variants of the pivot
// block map and of the last-block estimate's score passes
// (shaders/qk_cm.comp): S = Q·Kᵀ through 16×16×16 f16×f16→f32 fragments,
// everything after it (exp, masks, sums) in f32 as the scalar kernels
// blockmap.comp and est_last.comp do it, with the same bindings (and
// the block map's push constants and grids, kpw key blocks per workgroup
// in both, see blockMapBlocksPerGroup; the estimate's add kpw, see
// estBlocksPerGroup). The "blockmap" and "estimate" variant tables
// (variants.go) list them before the scalar kernels; a call takes the
// cooperative-matrix kernel where the device's table has it, D is a
// multiple of 16 and a tile fits the shared memory (qkPick).
//
// Scores differ from the scalar kernels' by a few f32 ulps of the dot
// product (the f16 products are exact in f32; they are summed in another
// order and scaled after the sum instead of before), so the maps and
// estimates agree to about 1e-6 relative; the tests hold them to 1e-4
// (estTol) of the float64 references and of the scalar kernels.

// qkTile is the tile of qk_cm.comp: TR query rows per pass (16 per
// subgroup, TR/16 subgroups) and TC keys per K tile.
type qkTile struct{ TR, TC int }

func (t qkTile) String() string { return fmt.Sprintf("coopmat %dx%d", t.TR, t.TC) }

// qkShared mirrors the shared arrays of qk_cm.comp for op ("blockmap" or
// "estimate"), head dim d and block b, in bytes. The estimate's two
// modules take one tile, so its figure is the larger of the statistics
// pass's (cmm, cml, lseLast) and the V pass's (ssh, cpart, slacc,
// slashTake): the V pass's wherever a tile fits, so the statistics pass
// runs the tile the V pass allows.
func qkShared(op string, t qkTile, d, b int) int {
	nsg := t.TR / 16
	s := t.TC*(d/4+2)*8 + t.TR*4 // ksh, lsh
	if op == "blockmap" {
		return s + nsg*256*4 // red
	}
	stats := 2*nsg*256*4 + 4                             // cmm, cml, lseLast
	vs := t.TR*(t.TC+4)*4 + (t.TR/t.TC*b+2*b+t.TR)*4 + 4 // ssh, cpart, slacc, slashTake
	return s + max(vs, stats)
}

// qkCMUsable reports whether a device with caps may run qk_cm.comp: KHR
// cooperative matrices and a subgroup size that divides 256 (the host sets
// NE = 256 / subgroup size).
func qkCMUsable(c runtime.Caps) bool {
	sg := c.SubgroupSize
	return c.CoopMat && sg >= 8 && sg <= 256 && 256%sg == 0
}

// qkTileFor returns the tile of qk_cm.comp for op on a device with caps and
// at most maxInv invocations per workgroup, for head dim d and block b, and
// whether one fits: TR the smallest of 16, 32, 64, 128 that covers b (128
// for larger blocks), TC the largest of 64, 32, 16 that does not exceed
// that and fits the shared memory (with 512 bytes to spare, as the
// attention kernels leave).
func qkTileFor(op string, caps runtime.Caps, maxInv uint32, d, b int) (qkTile, bool) {
	if d%16 != 0 || d < 16 || !qkCMUsable(caps) {
		return qkTile{}, false
	}
	tr := 16
	for tr < b && tr < 128 {
		tr *= 2
	}
	sg := int(caps.SubgroupSize)
	if uint32(tr/16*sg) > maxInv {
		return qkTile{}, false
	}
	for _, tc := range []int{64, 32, 16} {
		t := qkTile{TR: tr, TC: tc}
		if tc > tr && tc > 16 {
			continue
		}
		if qkShared(op, t, d, b)+512 <= int(caps.MaxSharedMemory) {
			return t, true
		}
	}
	return qkTile{}, false
}

// The cooperative-matrix score passes of the estimate take kpw consecutive
// key blocks per workgroup (one query load for all of them): with one
// block each, bench-lm-8k's 8K-token prefill (nb = 64, Hq = 8) ran 512
// workgroups of about 1 MFLOP each on an H100, their fixed cost (query
// load, first key latency, epilogue) dominating. estMinGroups is the
// fewest workgroups estBlocksPerGroup leaves (about two per multiprocessor
// of a 132-SM GPU; the runtime does not expose the count) and
// estMaxBlocksPerGroup the most blocks it gives one workgroup.
const (
	estMinGroups         = 256
	estMaxBlocksPerGroup = 8
)

// estBlocksPerGroup returns kpw for nb key blocks and hq query heads: the
// largest count up to estMaxBlocksPerGroup that leaves at least
// estMinGroups workgroups (⌈nb/kpw⌉·hq), 1 when even one block each leaves
// fewer; tuned > 0 (Tuning.EstBlocksPerGroup) replaces it. The result is in
// [1, max(nb, 1)].
func estBlocksPerGroup(nb, hq, tuned int) int {
	k := tuned
	if k <= 0 {
		k = 1
		for k < estMaxBlocksPerGroup && (nb+k)/(k+1)*hq >= estMinGroups {
			k++
		}
	}
	return max(1, min(k, nb))
}

// qkPick returns the variant of op ("blockmap" or "estimate") that dev runs
// for p: "coopmat" with its tile when the device's table lists it and a
// tile applies (qkTileFor), else "scalar". force, when not empty, names the
// variant instead (tests); forcing "coopmat" where it cannot run is an
// error.
func qkPick(dev *runtime.Device, op, what string, p EstParams, force string) (string, qkTile, error) {
	tb, err := tablesOf(dev)
	if err != nil {
		return "", qkTile{}, err
	}
	t, ok := qkTileFor(op, dev.Caps(), dev.Info().MaxWorkgroupInvocations, p.D, p.B)
	ok = ok && tb.has(op, "coopmat")
	switch force {
	case "":
		if ok {
			return "coopmat", t, nil
		}
		return "scalar", qkTile{}, nil
	case "coopmat":
		if !ok {
			return "", qkTile{}, fmt.Errorf("%s: %w: the cooperative-matrix kernel needs VK_KHR_cooperative_matrix, a subgroup size dividing 256, D a multiple of 16 (D=%d) and a tile within %d bytes of shared memory (block %d)",
				what, runtime.ErrMissingFeature, p.D, dev.Caps().MaxSharedMemory, p.B)
		}
		return "coopmat", t, nil
	case "scalar":
		return "scalar", qkTile{}, nil
	}
	return "", qkTile{}, fmt.Errorf("%s: unknown variant %q", what, force)
}

// qkCMKernel returns the pipeline of module shader of qk_cm.comp: b sets
// the block size constant (the estimate's modules; the block map's take B
// from the push constants and pass 0). The K-tile prefetch (PREFETCH, both
// ops: each K tile fetched into registers one tile ahead; same bits either
// way) is on unless noPrefetch (tests) or Tuning.EstPrefetchOff.
func qkCMKernel(dev *runtime.Device, shader string, bindings int, ro uint32, push int, t qkTile, d, b int, noPrefetch bool) (*runtime.Kernel, error) {
	sg := dev.Caps().SubgroupSize
	pf := uint32(1)
	if noPrefetch || dev.Tuning().EstPrefetchOff {
		pf = 0
	}
	spec := []uint32{uint32(t.TR/16) * sg, uint32(t.TR), uint32(t.TC), uint32(d), 256 / sg, uint32(b), pf}
	return dev.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: bindings, ReadOnly: ro, PushSize: push,
		Spec:          spec,
		SubgroupSize:  sg,
		FullSubgroups: true,
	})
}

// BlockMapKernel names the kernel that BlockMap, BlockMapCSR and
// BlockMapIndirect run on dev for p, for reports: "coopmat 128x64" (rows ×
// keys per tile) or "scalar 16x16" (the score sub-tile).
func BlockMapKernel(dev *runtime.Device, p EstParams) string {
	return qkKernelName(dev, "blockmap", p, 0)
}

// EstimateKernel names the kernel of LastBlockEstimates' two score passes
// on dev for p, for reports, as BlockMapKernel does.
func EstimateKernel(dev *runtime.Device, p EstParams) string {
	return qkKernelName(dev, "estimate", p, p.B)
}

func qkKernelName(dev *runtime.Device, op string, p EstParams, b int) string {
	v, t, err := qkPick(dev, op, op, p, "")
	if err != nil {
		return "none: " + err.Error()
	}
	if v == "coopmat" {
		return t.String()
	}
	st, err := estTile(op, dev.Caps(), p.D, b)
	if err != nil {
		return "none: " + err.Error()
	}
	return fmt.Sprintf("scalar %dx%d", st, st)
}
