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
	"github.com/shareprefill/shareprefill/model/stories260k"
)

func runInspect(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("inspect", stderr)
	modelDir := fset.String("model", "", "Hugging Face model directory or GGUF file (default: the embedded stories260K)")
	ctxLen := fset.Int("context", 0, "context length for the memory estimate (0: the model's, capped at 8192)")
	if err := parse(fset, args); err != nil {
		return err
	}
	if *ctxLen < 0 {
		return usageError{fmt.Sprintf("--context %d: want ≥ 1 tokens, or 0 for the model's", *ctxLen)}
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
	plan, err := model.PlanMemory(cfg, model.EngineOptions{Context: *ctxLen})
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
	row(fmt.Sprintf("device memory at context %d", context), plan.String())
	return tw.Flush()
}
