// Command cmpeak measures the tensor-core ceiling that a device's Vulkan
// driver reaches through cooperative matrices, with no memory traffic in
// the loop (shaders/cm_peak.comp, shaders/cm2_peak.comp):
//
//	reg      KHR 16×16×16 f16→f32, A/B fragments in registers (MMA issue rate)
//	reg16    the same with f16 accumulators (when the device lists that shape)
//	shared   KHR, A/B fragments reloaded from shared memory every step (a
//	         matmul's inner loop without the global loads)
//	cm2      NV cooperative_matrix2 workgroup-scope BM×BN×BK (-cm2 tiles)
//
// It prints one Markdown row per configuration: GPU time (median of -reps,
// Vulkan timestamps) and TFLOP/s = 2·16·16·16 per coopMatMulAdd (BM·BN·BK·2
// for cm2). These are ceilings for what a matmul or attention kernel written
// against the same extension can reach on the device; compare them with
// the cuBLAS figure of bench/peers/matmul.py measured in the same run.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/runtime"
)

type cfg struct {
	name   string
	shader string
	wg     uint32 // subgroups per workgroup (KHR) or invocations (cm2)
	spec   []uint32
	flops  float64 // per workgroup
	outLen int     // output elements per workgroup
	f16out bool
}

func main() {
	reps := flag.Int("reps", 5, "timed repetitions per configuration")
	groups := flag.Int("groups", 0, "workgroups per dispatch (default 8 per multiprocessor-sized guess: 1056)")
	iter := flag.Int("iter", 2048, "loop iterations inside the shader")
	cm2 := flag.String("cm2", "128x128x32,128x256x32,256x128x32,128x128x64", "NV coopmat2 workgroup-scope tiles BMxBNxBK (256 invocations)")
	device := flag.String("device", "", "device index or name")
	flag.Parse()
	log.SetFlags(0)

	dev, err := runtime.Open(runtime.Options{Device: *device})
	if err != nil {
		log.Fatalf("cmpeak: %v", err)
	}
	defer dev.Close()
	info := dev.Info()
	caps := dev.Caps()
	fmt.Printf("device: %s (%s %s), subgroup %d, coopmat %v, coopmat2 %v\n\n", info.Name, info.DriverName, info.DriverVersion, caps.SubgroupSize, caps.CoopMat, caps.CoopMat2)
	if !caps.CoopMat {
		log.Fatalf("cmpeak: the device has no KHR cooperative matrices (f16 16x16x16 -> f32)")
	}
	ng := *groups
	if ng <= 0 {
		ng = 1056
	}
	sg := caps.SubgroupSize
	it := uint32(*iter)
	mma := 2.0 * 16 * 16 * 16
	var cfgs []cfg
	for _, f := range [][3]uint32{{4, 4, 8}, {2, 4, 8}, {4, 2, 8}, {2, 2, 8}, {4, 4, 4}, {2, 4, 4}} {
		// name, FM, FN, subgroups
		n := float64(f[2]) * float64(f[0]*f[1]) * 2 * float64(it) * mma
		cfgs = append(cfgs, cfg{fmt.Sprintf("reg FM%d FN%d, %d subgroups", f[0], f[1], f[2]), "cm_peak_reg", f[2], []uint32{f[2] * sg, f[0], f[1], it}, n, int(f[2]) * 256, false})
	}
	f16acc := false
	for _, s := range info.CoopMatShapes {
		if s.M == 16 && s.N == 16 && s.K == 16 && s.A == "f16" && s.C == "f16" && s.Scope == "subgroup" {
			f16acc = true
		}
	}
	if f16acc {
		n := 8 * 16 * 2 * float64(it) * mma
		cfgs = append(cfgs, cfg{"reg16 (f16 accumulators) FM4 FN4, 8 subgroups", "cm_peak_reg16", 8, []uint32{8 * sg, 4, 4, it}, n, 8 * 256, true})
	}
	for _, f := range [][3]uint32{{4, 4, 8}, {2, 4, 8}, {4, 4, 4}, {2, 2, 8}} {
		n := float64(f[2]) * float64(f[0]*f[1]) * 2 * float64(it) * mma
		cfgs = append(cfgs, cfg{fmt.Sprintf("shared FM%d FN%d, %d subgroups", f[0], f[1], f[2]), "cm_peak_shared", f[2], []uint32{f[2] * sg, f[0], f[1], it}, n, int(f[2]) * 256, false})
	}
	if caps.CoopMat2 && *cm2 != "" {
		for _, t := range strings.Split(*cm2, ",") {
			var bm, bn, bk uint32
			if _, err := fmt.Sscanf(t, "%dx%dx%d", &bm, &bn, &bk); err != nil {
				log.Fatalf("cmpeak: -cm2 %q: want BMxBNxBK", t)
			}
			n := 2 * float64(bm) * float64(bn) * float64(bk) * float64(it)
			cfgs = append(cfgs, cfg{fmt.Sprintf("cm2 workgroup %dx%dx%d, 256 invocations", bm, bn, bk), "cm2_peak", 0, []uint32{256, bm, bn, bk, it}, n, int(bm * bn), false})
		}
	}

	in, err := dev.NewTensor(runtime.F16, 64*1024)
	if err != nil {
		log.Fatal(err)
	}
	vals := make([]float32, in.Len())
	for i := range vals {
		vals[i] = float32((i*7919)%17-8) / 1024
	}
	if err := in.UploadBytes(runtime.EncodeF32(vals, runtime.F16), 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("| configuration | workgroups | median ms | TFLOP/s |\n|---|---:|---:|---:|\n")
	for _, c := range cfgs {
		dt := runtime.F32
		if c.f16out {
			dt = runtime.F16
		}
		out, err := dev.NewTensor(dt, ng*c.outLen)
		if err != nil {
			log.Fatal(err)
		}
		desc := runtime.KernelDesc{Shader: c.shader, Bindings: 2, ReadOnly: 0b01, Spec: c.spec}
		if c.shader != "cm2_peak" {
			desc.SubgroupSize, desc.FullSubgroups = sg, true
		}
		k, err := dev.Kernel(desc)
		if err != nil {
			fmt.Printf("| %s | | error: %v | |\n", c.name, err)
			out.Free()
			continue
		}
		var times []float64
		var runErr error
		for i := 0; i < *reps+1; i++ {
			r, err := dev.NewRecorder()
			if err != nil {
				log.Fatal(err)
			}
			r.EnableProfiling()
			err = r.Dispatch(k, [3]uint32{uint32(ng), 1, 1}, nil, in, out)
			if err == nil {
				err = r.Submit()
			}
			if err != nil {
				runErr = err
				r.Release()
				break
			}
			var ns float64
			for _, t := range r.Timings() {
				ns += t.Nanos
			}
			r.Release()
			if i > 0 {
				times = append(times, ns)
			}
		}
		if runErr != nil {
			fmt.Printf("| %s | %d | error: %v | |\n", c.name, ng, runErr)
			out.Free()
			continue
		}
		got, err := out.DownloadF32()
		if err != nil {
			log.Fatal(err)
		}
		bad := 0
		for _, v := range got[:min(len(got), 4096)] {
			if math.IsNaN(float64(v)) {
				bad++
			}
		}
		sort.Float64s(times)
		med := times[len(times)/2]
		note := ""
		if bad > 0 {
			note = fmt.Sprintf(" (%d NaN outputs)", bad)
		}
		fmt.Printf("| %s%s | %d | %.3f | %.1f |\n", c.name, note, ng, med*1e-6, c.flops*float64(ng)/(med*1e-9)/1e12)
		out.Free()
	}
}
