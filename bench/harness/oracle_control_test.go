package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
)

// The control of the llama.cpp oracle runs as a test, so that no binary
// links internal/ref:
//
//	go test ./bench/harness -run '^TestOracleControl$' -timeout 0 -args \
//	    -oracle-control DIR [-oracle-cases '*-kjv,*-ppl'] [-oracle-windows 1] [-oracle-md FILE]
var (
	controlDir     = flag.String("oracle-control", "", "TestOracleControl: the oracle directory (bench/peers/llamacpp-oracle.sh's cases)")
	controlCases   = flag.String("oracle-cases", "", "TestOracleControl: comma-separated case name patterns (default: all)")
	controlWindows = flag.Int("oracle-windows", 1, "TestOracleControl: perplexity windows per case (0: all)")
	controlMD      = flag.String("oracle-md", "", "TestOracleControl: also write the Markdown tables to this file")
)

// TestOracleControl runs the oracle of -oracle-control with the control
// (exactControl) on the device, and prints, or writes to -oracle-md, the
// tables. Without -oracle-control it has nothing to run and is skipped.
func TestOracleControl(t *testing.T) {
	if *controlDir == "" {
		t.Skip("no -oracle-control directory")
	}
	p := OracleParams{Dir: *controlDir, PPLWindows: *controlWindows, Control: exactControl, Logf: t.Logf}
	if *controlCases != "" {
		p.Cases = strings.Split(*controlCases, ",")
	}
	rep, err := RunOracle(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(rep, OracleTables(rep.Results.(*OracleResults)))
	t.Log("\n" + md)
	if *controlMD != "" {
		if err := os.WriteFile(*controlMD, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exactControl is the OracleControl of the tests: the float64 forward
// pass of exactGGUFLlama.
func exactControl(cfg *model.Config, ck *model.Checkpoint) (func([]int) ([][]float64, error), error) {
	llama, err := exactGGUFLlama(cfg, ck)
	if err != nil {
		return nil, err
	}
	return llama.ForwardF64, nil
}

// exactGGUFLlama returns the float64 CPU forward pass (internal/ref) of a
// GGUF model with its weights exactly as the file defines them: every
// tensor dequantized to float32 by gguf.Dequantize (a quantized weight,
// scale × integer, is exact in float32; the engine's f16 paths round it to
// f16), and the Q/K rows put back in Hugging Face order. It is the control
// of the llama.cpp oracle: both engines' distance to the model itself.
func exactGGUFLlama(cfg *model.Config, ck *model.Checkpoint) (*ref.Llama, error) {
	f := ck.GGUF()
	if f == nil {
		return nil, fmt.Errorf("exact reference: %s is not a GGUF checkpoint", ck.Dir)
	}
	arch, _ := f.String("general.architecture")
	byName := map[string][]float32{}
	for _, ti := range f.Tensors {
		name, ok := model.HFTensorName(ti.Name)
		if !ok {
			continue // rope_freqs.weight: in cfg already
		}
		raw, err := f.TensorData(ti)
		if err != nil {
			return nil, err
		}
		v := make([]float32, ti.NumElements())
		if err := gguf.Dequantize(v, raw, ti.Type); err != nil {
			return nil, fmt.Errorf("exact reference: %s: tensor %s: %w", f.Path, ti.Name, err)
		}
		heads := 0
		switch {
		case strings.HasSuffix(name, "self_attn.q_proj.weight"), strings.HasSuffix(name, "self_attn.q_proj.bias"):
			heads = cfg.NumHeads
		case strings.HasSuffix(name, "self_attn.k_proj.weight"), strings.HasSuffix(name, "self_attn.k_proj.bias"):
			heads = cfg.NumKVHeads
		}
		if heads > 0 && arch == model.GGUFArchLlama { // as the loader (newGGUFCheckpoint)
			if v, err = unpermuteRows(v, ti.Shape()[0], heads); err != nil {
				return nil, fmt.Errorf("exact reference: %s: tensor %s: %w", f.Path, ti.Name, err)
			}
		}
		byName[name] = v
	}
	get := func(name string) []float32 { return byName[name] }
	w := &model.Weights{Embed: get(model.EmbedTokensName), Norm: get(model.FinalNormName),
		Layers: make([]model.LayerWeights, cfg.NumLayers), TiedEmbeddings: cfg.TieWordEmbeddings, LMHead: get(model.LMHeadName)}
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
	}
	for l := range w.Layers {
		g := func(s string) []float32 { return get(model.LayerTensorName(l, s)) }
		w.Layers[l] = model.LayerWeights{
			AttnNorm: g("input_layernorm.weight"),
			Q:        g("self_attn.q_proj.weight"), K: g("self_attn.k_proj.weight"), V: g("self_attn.v_proj.weight"),
			QBias: g("self_attn.q_proj.bias"), KBias: g("self_attn.k_proj.bias"), VBias: g("self_attn.v_proj.bias"),
			O: g("self_attn.o_proj.weight"), OBias: g("self_attn.o_proj.bias"),
			MLPNorm: g("post_attention_layernorm.weight"),
			Gate:    g("mlp.gate_proj.weight"), Up: g("mlp.up_proj.weight"), Down: g("mlp.down_proj.weight"),
		}
	}
	return ref.NewLlama(cfg, w)
}

// unpermuteRows undoes llama.cpp's Q/K row permutation of rows rows split
// into heads heads (GGUF row h·d + 2i + s is Hugging Face row h·d + s·d/2 +
// i; the model package does the same on raw bytes at load).
func unpermuteRows(v []float32, rows, heads int) ([]float32, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 || len(v)%rows != 0 {
		return nil, fmt.Errorf("cannot undo the Q/K permutation of %d rows for %d heads", rows, heads)
	}
	d, k := rows/heads, len(v)/rows
	out := make([]float32, len(v))
	for h := range heads {
		for i := range d / 2 {
			for s := range 2 {
				copy(out[(h*d+s*d/2+i)*k:][:k], v[(h*d+2*i+s)*k:][:k])
			}
		}
	}
	return out, nil
}
