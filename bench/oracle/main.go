// Command oracle compares shareprefill's forward pass with reference logits
// written by bench/peers/hf_oracle.py (Hugging Face transformers, float32)
// for model directories DIR/<name>/ holding a checkpoint, ids.json and
// ref_logits.f32. It prints the relative error ‖ours − ref‖/‖ref‖ per model
// and fails when any exceeds -tol.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
)

func main() {
	dir := flag.String("dir", "", "directory written by hf_oracle.py")
	tol := flag.Float64("tol", 1e-2, "largest allowed relative error")
	flag.Parse()
	log.SetFlags(0)
	if *dir == "" {
		log.Fatal("oracle: -dir is required")
	}
	dev, err := runtime.Open(runtime.Options{})
	if err != nil {
		log.Fatalf("oracle: %v", err)
	}
	defer dev.Close()
	entries, err := os.ReadDir(*dir)
	if err != nil {
		log.Fatalf("oracle: %v", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	fmt.Printf("| model | tokens | relative error (all positions) | last position | max |Δ| |\n|---|---|---|---|---|\n")
	failed := false
	for _, name := range names {
		rel, last, maxAbs, n, err := compare(dev, filepath.Join(*dir, name))
		if err != nil {
			log.Fatalf("oracle: %s: %v", name, err)
		}
		fmt.Printf("| %s | %d | %.3g | %.3g | %.3g |\n", name, n, rel, last, maxAbs)
		if !(rel <= *tol) {
			failed = true
		}
	}
	if failed {
		log.Fatalf("oracle: a relative error exceeds %g", *tol)
	}
}

func compare(dev *runtime.Device, dir string) (rel, lastRel, maxAbs float64, n int, err error) {
	var ids []int
	b, err := os.ReadFile(filepath.Join(dir, "ids.json"))
	if err != nil {
		return
	}
	if err = json.Unmarshal(b, &ids); err != nil {
		return
	}
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		return
	}
	raw, err := os.ReadFile(filepath.Join(dir, "ref_logits.f32"))
	if err != nil {
		return
	}
	v := cfg.VocabSize
	if len(raw) != 4*len(ids)*v {
		err = fmt.Errorf("ref_logits.f32 has %d bytes, want %d", len(raw), 4*len(ids)*v)
		return
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return
	}
	defer ck.Close()
	e, err := model.NewEngine(dev, cfg, ck, model.EngineOptions{Context: len(ids) + 16, ChunkTokens: 128})
	if err != nil {
		return
	}
	defer e.Close()
	var num, den, lnum, lden float64
	err = e.PrefillAll(context.Background(), ids, func(pos int, logits []float32) {
		for j, x := range logits {
			ref := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(pos*v+j):])))
			d := float64(x) - ref
			num += d * d
			den += ref * ref
			if pos == len(ids)-1 {
				lnum += d * d
				lden += ref * ref
			}
			maxAbs = math.Max(maxAbs, math.Abs(d))
			if math.IsNaN(d) {
				maxAbs = math.Inf(1)
			}
		}
	})
	if err != nil {
		return
	}
	return math.Sqrt(num / den), math.Sqrt(lnum / lden), maxAbs, len(ids), nil
}
