package kernels

import "github.com/shareprefill/shareprefill/runtime"

// cm2Fits reports whether the driver lists workgroup-scope f16×f16→f32
// cooperative matrices (VK_NV_cooperative_matrix2 flexible dimensions) for
// workgroups of inv invocations at granularities that divide every
// M×K·K×N product in prods. Without the driver's list (query failed) it
// keeps to 128 and 256 invocations, the sizes verified on the H200 before
// the list was read. Shapes outside the list crash NVIDIA's compiler at
// pipeline creation (64×64 tiles with 256 invocations on the H100, round 5)
// or give wrong results (384 invocations on the H200, round 3), so every
// workgroup-scope kernel checks here first.
func cm2Fits(dev *runtime.Device, inv int, prods ...[3]int) bool {
	flex := dev.Info().CoopMat2Flex
	if len(flex) == 0 {
		return inv == 128 || inv == 256
	}
	for _, f := range flex {
		if f.Scope != "workgroup" || int(f.Invocations) != inv || f.A != "f16" || f.B != "f16" || f.C != "f32" || f.Result != "f32" {
			continue
		}
		ok := true
		for _, p := range prods {
			ok = ok && f.Fits(p[0], p[1], p[2])
		}
		if ok {
			return true
		}
	}
	return false
}
