package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// The fused decode mat-vecs with block-quantized weights: the variants of
// shaders/gemv_qw.comp built with FUSED (gemv_qw_norm_<type>_<y>,
// gemv_qw_glu_<type>, gemv_qw_add_<type>), which decode the blocks as the
// wide mat-vec does and take gemv_fused.comp's bindings, push constants and
// grid.

// fusedQModules are the fused modules of the wide kernel, one set per
// type of quantWideTypes.
func fusedQModules() []string {
	var out []string
	for _, dt := range quantWideTypes {
		t := dt.String()
		out = append(out, "gemv_qw_norm_"+t+"_f16", "gemv_qw_norm_"+t+"_f32", "gemv_qw_glu_"+t, "gemv_qw_add_"+t)
	}
	return out
}

// groupByType splits outs into runs of one weight type, in the order each
// type first appears.
func groupByType(outs []MatVecOut) [][]MatVecOut {
	var groups [][]MatVecOut
	idx := map[runtime.DType]int{}
	for _, o := range outs {
		dt := o.W.DType()
		i, ok := idx[dt]
		if !ok {
			i = len(groups)
			idx[dt] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], o)
	}
	return groups
}

// fusedQDispatch records the fused quantized variant shader over outs (of
// one type; workgroups per output unless glu: one set of workgroups for
// gate and up together), with the wide kernel's workgroup size and rows
// per workgroup (chooseGemvQ).
func fusedQDispatch(r *runtime.Recorder, shader string, x, norm *runtime.Tensor, eps float32, outs []MatVecOut, m, k int, glu bool) error {
	d := r.Device()
	dt := outs[0].W.DType()
	for _, o := range outs {
		if o.W.DType() != dt {
			return fmt.Errorf("%s: weight %s is %s, weight %s %s: one dispatch takes one type", shader, outs[0].W.Name(), dt, o.W.Name(), o.W.DType())
		}
	}
	cfg, err := chooseGemvQ(d, dt)
	if err != nil {
		return err
	}
	if cfg.Variant != gemvQWide {
		return fmt.Errorf("%s: %w: the fused quantized mat-vecs need the wide kernel, device %q takes %s for %s",
			shader, runtime.ErrMissingFeature, d.Info().Name, cfg, dt)
	}
	if cfg.WG < 8 || cfg.WG > 1024 || cfg.WG&(cfg.WG-1) != 0 || cfg.R < 1 || cfg.R > 8 {
		return fmt.Errorf("%s: kernel %s: want a power-of-two workgroup size in 8…1024 and 1…8 rows per workgroup", shader, cfg)
	}
	if k%dt.BlockElems() != 0 { // NewTensor guarantees whole blocks; stated for the kernel
		return fmt.Errorf("%s: K=%d is not a whole number of %s blocks", shader, k, dt)
	}
	p, grid, err := fusedGrid(d, shader, outs, m, k, eps, int(cfg.R), glu)
	if err != nil {
		return err
	}
	// The normalised rows stay in shared memory when they fit beside the
	// reduction's buffer (up to 32 KiB: M·K ≤ 16384); else each product
	// normalises x as it reads it.
	xs, xsh := uint32(1), false
	if norm != nil {
		nw := uint32(1)
		if glu {
			nw = 2
		}
		red := nw * cfg.R * uint32(m) * cfg.WG * 4
		if b := uint32(m * k * 2); b <= 32<<10 && red+b+512 <= d.Caps().MaxSharedMemory {
			xs, xsh = uint32(m*k/8), true
		}
	}
	kern, err := d.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: 11, ReadOnly: 0xff, PushSize: 36,
		Spec: []uint32{cfg.WG, cfg.R, b2u(cfg.Subgroup), uint32(m), xs, b2u(xsh)},
	})
	if err != nil {
		return err
	}
	args := fusedArgs(x, norm, outs)
	return r.Dispatch(kern, grid, p, args...)
}
