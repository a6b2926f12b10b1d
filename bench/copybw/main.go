// Command copybw measures device-to-device copy bandwidth through the Vulkan
// copy shader (and vkCmdCopyBuffer), counting bytes read plus bytes written,
// with GPU timestamps. Run it beside bench/peers/copy.py (PyTorch) in the same
// session; see bench/README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

func main() {
	mib := flag.Int("mib", 1024, "buffer size in MiB")
	reps := flag.Int("reps", 20, "timed repetitions")
	device := flag.String("device", "", "device index or name (default: SHAREPREFILL_DEVICE or the best GPU)")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
	flag.Parse()
	log.SetFlags(0)

	dev, err := runtime.Open(runtime.Options{Device: *device})
	if err != nil {
		log.Fatalf("copybw: %v", err)
	}
	defer dev.Close()
	n := *mib << 20
	src, err := dev.NewTensor(runtime.U8, n)
	if err != nil {
		log.Fatalf("copybw: %v", err)
	}
	dst, err := dev.NewTensor(runtime.U8, n)
	if err != nil {
		log.Fatalf("copybw: %v", err)
	}
	if err := dev.Run(func(r *runtime.Recorder) error { return kernels.Fill(r, src, 0x3c003c00) }); err != nil {
		log.Fatalf("copybw: %v", err)
	}
	type result struct {
		Method  string  `json:"method"`
		Bytes   int     `json:"bytes_moved"`
		MedianS float64 `json:"median_s"`
		GBs     float64 `json:"gb_per_s"`
	}
	var results []result
	measure := func(name string, rec func(r *runtime.Recorder) error) {
		r, err := dev.NewRecorder()
		if err != nil {
			log.Fatal(err)
		}
		defer r.Release()
		r.EnableProfiling()
		// Warm-up.
		for i := 0; i < 3; i++ {
			if err := rec(r); err != nil {
				log.Fatal(err)
			}
		}
		if err := r.Submit(); err != nil {
			log.Fatal(err)
		}
		var times []float64
		for i := 0; i < *reps; i++ {
			if err := rec(r); err != nil {
				log.Fatal(err)
			}
			if err := r.Submit(); err != nil {
				log.Fatal(err)
			}
			tm := r.Timings()
			var ns float64
			for _, x := range tm {
				ns += x.Nanos
			}
			if len(tm) == 0 {
				log.Fatalf("copybw: the device reports no timestamps")
			}
			times = append(times, ns*1e-9)
		}
		sort.Float64s(times)
		med := times[len(times)/2]
		res := result{Method: name, Bytes: 2 * n, MedianS: med, GBs: float64(2*n) / med / 1e9}
		results = append(results, res)
	}
	measure("vulkan copy shader (uvec4)", func(r *runtime.Recorder) error { return kernels.Copy(r, dst, src) })

	// Verify the copy once.
	got, err := dst.DownloadBytes()
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < len(got); i += 4099 {
		want := byte(0x00)
		if i%2 == 1 {
			want = 0x3c
		}
		if got[i] != want {
			log.Fatalf("copybw: copy is wrong at byte %d: %#x, want %#x", i, got[i], want)
		}
	}

	info := dev.Info()
	fmt.Printf("device: %s (%s, driver %s %s)\n\n", info.Name, info.Vendor, info.DriverName, info.DriverVersion)
	fmt.Printf("| method | buffer | bytes moved (read+write) | median time | GB/s |\n|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Printf("| %s | %d MiB | %d | %.3f ms | %.1f |\n", r.Method, *mib, r.Bytes, r.MedianS*1e3, r.GBs)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"device": info.Name, "driver": info.DriverName + " " + info.DriverVersion, "results": results}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
