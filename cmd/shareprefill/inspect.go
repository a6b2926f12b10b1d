package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
)

func runInspect(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("inspect", stderr)
	modelDir := fset.String("model", "", "Hugging Face model directory or GGUF file (default: the embedded stories260K)")
	ctxLen := fset.Int("context", 0, "context length for the memory estimate (0: the model's, capped at 8192)")
	device := fset.String("device", "", "Vulkan device the memory estimate is for: index or name (default: SHAREPREFILL_DEVICE or the best GPU)")
	quantize := fset.String("quantize", "none", "plan floating-point matrices quantized on load: q8_0 or none")
	if err := parse(fset, args); err != nil {
		return err
	}
	if *ctxLen < 0 {
		return usageError{fmt.Sprintf("--context %d: want ≥ 1 tokens, or 0 for the model's", *ctxLen)}
	}
	quant, err := model.ParseQuantization(*quantize)
	if err != nil {
		return usageError{"--quantize: " + err.Error()}
	}
	if err := checkDevice(*device); err != nil {
		return err
	}
	var fsys fs.FS
	name := *modelDir
	if name == "" || name == shareprefill.EmbeddedModel {
		fsys, name = stories260k.FS(), shareprefill.EmbeddedModel
	} else {
		st, err := os.Stat(name)
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		if !st.IsDir() && !model.IsGGUF(name) {
			return fmt.Errorf("model %s: neither a directory nor a GGUF file", name)
		}
		if st.IsDir() {
			fsys = os.DirFS(name)
		}
	}
	cfg, ck, err := openInspected(fsys, name)
	if err != nil {
		return fmt.Errorf("model %s: %w", name, err)
	}
	defer ck.Close()
	params, dts, err := tensorSummary(ck)
	if err != nil {
		return fmt.Errorf("model %s: %w", name, err)
	}
	opts := model.EngineOptions{Context: *ctxLen, Quantize: quant}
	// The plan is for the device the model would run on: its memory, and
	// the quantized types its kernels run.
	dev, devErr := runtime.Open(runtime.Options{Device: *device, Logf: func(string, ...any) {}})
	if devErr == nil {
		defer dev.Close()
	}
	wt, fallback, err := model.PlanWeights(cfg, ck, opts, model.QuantTypes(dev))
	if err != nil {
		return fmt.Errorf("model %s: %w", name, err)
	}
	plan, err := model.PlanMemory(cfg, wt, opts)
	if err != nil {
		return err
	}
	context := *ctxLen
	if context == 0 {
		context = min(cfg.MaxPositionEmbeddings, 8192)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("model", name)
	row("architecture", cfg.Architecture)
	row("parameters", fmt.Sprintf("%d (%.2fM) in the checkpoint", params, float64(params)/1e6))
	row("dtypes", strings.Join(dts, ", "))
	row("layers", cfg.NumLayers)
	row("hidden / intermediate", fmt.Sprintf("%d / %d", cfg.HiddenSize, cfg.IntermediateSize))
	row("heads / KV heads / head dim", fmt.Sprintf("%d / %d / %d (GQA group %d)", cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.GQAGroup()))
	row("vocabulary", cfg.VocabSize)
	row("context length", fmt.Sprintf("%d (trained)", cfg.MaxPositionEmbeddings))
	rope := fmt.Sprintf("theta %g", cfg.RopeTheta)
	if cfg.RopeScaling != nil {
		rope += fmt.Sprintf(", llama3 scaling ×%g", cfg.RopeScaling.Factor)
	}
	row("RoPE", rope)
	row("tied embeddings / QKV bias", fmt.Sprintf("%v / %v", cfg.TieWordEmbeddings, cfg.QKVBias))
	row("weights on the device", deviceWeights(plan, fallback))
	row(fmt.Sprintf("device memory at context %d", context), plan.String())
	if devErr != nil {
		row("fits the device", fmt.Sprintf("unknown: no device (%v); the plan assumes kernels for every quantized type", oneLine(devErr.Error())))
	} else if err := plan.CheckFits(dev.MemoryBudget(), dev.Info().Name, context); err != nil {
		row("fits the device", "no: "+err.Error())
	} else {
		row("fits the device", fmt.Sprintf("yes: %s of the %s of %q", fmtGiB(plan.Total), fmtGiB(dev.MemoryBudget()), dev.Info().Name))
	}
	return tw.Flush()
}

// deviceWeights describes the types the weights take on the device: "Q8_0
// 178.0 KiB (171520 params), F16 …", and the quantized types the device's
// kernels lack, which are dequantized to f16 at load.
func deviceWeights(plan model.MemoryPlan, fallback []gguf.Type) string {
	parts := make([]string, len(plan.WeightTypes))
	for i, t := range plan.WeightTypes {
		parts[i] = fmt.Sprintf("%s %s (%d params)", t.Type, fmtSize(t.Bytes), t.Params)
	}
	s := strings.Join(parts, ", ")
	if len(fallback) > 0 {
		s += fmt.Sprintf("; %v dequantized to F16 at load (no kernel on this device)", fallback)
	}
	return s
}
