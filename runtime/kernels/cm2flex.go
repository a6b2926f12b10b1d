package kernels

import "github.com/shareprefill/shareprefill/runtime"

// cm2Gran returns the granularities the driver lists for workgroup-scope
// f16×f16→f32 cooperative matrices (VK_NV_cooperative_matrix2 flexible
// dimensions) in workgroups of inv invocations: every such matrix's rows
// must be a multiple of m, its columns of n, and a product's inner
// dimension of k. ok is false when the driver lists none for inv. Without
// the driver's list (the query failed) it keeps to 128 and 256 invocations
// at 16, the sizes verified on the H200 before the list was read.
//
// On the H100 (driver 580.159.04) the list is 16×16×16 for 32 and 64
// invocations, 32×16×16 for 128 and 32×32×16 for 256, and nothing for 512
// (bench/RESULTS.md, round 5). Being on the list is necessary, not
// sufficient: 64×64 tiles with 256 invocations, which it allows, crash
// the driver's compiler at pipeline creation there.
func cm2Gran(dev *runtime.Device, inv int) (m, n, k int, ok bool) {
	flex := dev.Info().CoopMat2Flex
	if len(flex) == 0 {
		if inv == 128 || inv == 256 {
			return 16, 16, 16, true
		}
		return 0, 0, 0, false
	}
	for _, f := range flex {
		if f.Scope == "workgroup" && int(f.Invocations) == inv && f.A == "f16" && f.B == "f16" && f.C == "f32" && f.Result == "f32" &&
			f.M > 0 && f.N > 0 && f.K > 0 {
			return int(f.M), int(f.N), int(f.K), true
		}
	}
	return 0, 0, 0, false
}

// cm2Fits reports whether every M×K·K×N product in prods is allowed at
// the granularities cm2Gran gives for inv invocations.
func cm2Fits(dev *runtime.Device, inv int, prods ...[3]int) bool {
	gm, gn, gk, ok := cm2Gran(dev, inv)
	if !ok {
		return false
	}
	for _, p := range prods {
		if p[0] <= 0 || p[1] <= 0 || p[2] <= 0 || p[0]%gm != 0 || p[1]%gn != 0 || p[2]%gk != 0 {
			return false
		}
	}
	return true
}

// cm2RowWidth is the column count of attn_cm2's per-row statistics
// matrices (running max, sum, rescale factors: BR×RW, every column holding
// the row's value) for inv invocations: 16, or the driver's column
// granularity where that is larger (32 with 256 invocations on the
// H100). SHAREPREFILL_CM2_ROWSTAT overrides it (tuning: 16 measured the
// pre-list kernel).
func cm2RowWidth(dev *runtime.Device, inv int) int {
	if v := int(tuneEnv("SHAREPREFILL_CM2_ROWSTAT")); v > 0 {
		return v
	}
	_, gn, _, ok := cm2Gran(dev, inv)
	if !ok || gn <= 16 {
		return 16
	}
	return (16 + gn - 1) / gn * gn
}
