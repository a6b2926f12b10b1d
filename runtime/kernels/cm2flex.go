package kernels

import "github.com/shareprefill/shareprefill/runtime"

// cm2Gran returns the driver's entry for workgroup-scope f16×f16→f32
// cooperative matrices (VK_NV_cooperative_matrix2 flexible dimensions) in
// workgroups of inv invocations: every such matrix's rows must be a
// multiple of its M, its columns of N, and a product's inner dimension of
// K. ok is false when the driver lists none for inv. Without the driver's
// list (the query failed) it keeps to 128 and 256 invocations at 16, the
// sizes verified on the H200 before the list was read.
//
// On the H100 (driver 580.159.04) the list is 16×16×16 for 32 and 64
// invocations, 32×16×16 for 128 and 32×32×16 for 256, and nothing for 512
// (bench/RESULTS.md, round 5). Being on the list is necessary, not
// sufficient: 64×64 tiles with 256 invocations, which it allows, crash
// the driver's compiler at pipeline creation there.
func cm2Gran(dev *runtime.Device, inv int) (runtime.CoopMat2Flex, bool) {
	flex := dev.Info().CoopMat2Flex
	if len(flex) == 0 {
		if inv == 128 || inv == 256 {
			return runtime.CoopMat2Flex{CoopMatShape: runtime.CoopMatShape{M: 16, N: 16, K: 16,
				A: "f16", B: "f16", C: "f32", Result: "f32", Scope: "workgroup"}, Invocations: uint32(inv)}, true
		}
		return runtime.CoopMat2Flex{}, false
	}
	for _, f := range flex {
		if f.Scope == "workgroup" && int(f.Invocations) == inv && f.A == "f16" && f.B == "f16" && f.C == "f32" && f.Result == "f32" &&
			f.M > 0 && f.N > 0 && f.K > 0 {
			return f, true
		}
	}
	return runtime.CoopMat2Flex{}, false
}

// cm2Fits reports whether every M×N×K product in prods (M×K·K×N) fits the
// entry cm2Gran gives for inv invocations.
func cm2Fits(dev *runtime.Device, inv int, prods ...[3]int) bool {
	f, ok := cm2Gran(dev, inv)
	if !ok {
		return false
	}
	for _, p := range prods {
		if !f.Fits(p[0], p[1], p[2]) {
			return false
		}
	}
	return true
}

// cm2RowWidth is the column count of attn_cm2's per-row statistics
// matrices (running max, sum, rescale factors: BR×RW, every column holding
// the row's value) for inv invocations: 16, or the driver's column
// granularity where that is larger (32 with 256 invocations on the
// H100). The device's Tuning.AttnRowStat overrides it (tuning: 16
// measured the pre-list kernel).
func cm2RowWidth(dev *runtime.Device, inv int) int {
	if v := dev.Tuning().AttnRowStat; v > 0 {
		return v
	}
	if f, ok := cm2Gran(dev, inv); ok && f.N > 16 {
		return int(f.N)
	}
	return 16
}
