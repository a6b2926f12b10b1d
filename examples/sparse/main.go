// Command sparse prefills a long prompt with SharePrefill sparse attention
// and prints what the planner decided: heads per method, the density of
// every layer, and (with -json) the full per-head statistics.
//
//	go run ./examples/sparse
//	go run ./examples/sparse -model ~/models/Llama-3.2-1B -clusters clusters.json -tokens 8000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/share"
)

func main() {
	modelDir := flag.String("model", "", "Hugging Face model directory (default: the embedded stories260K)")
	clusters := flag.String("clusters", "", "SharePrefill cluster file (without one every head stands alone: FlexPrefill)")
	attn := flag.String("attn", "share", "attention: share, flex, vs or dense")
	tokens := flag.Int("tokens", 450, "approximate prompt length in tokens")
	asJSON := flag.Bool("json", false, "print the full statistics as JSON")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	m, err := shareprefill.Open(ctx, shareprefill.Options{Model: *modelDir, Attention: share.PlannerKind(*attn), Clusters: *clusters})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	prompt := longPrompt(m, *tokens)
	st, err := m.Generate(ctx, prompt, shareprefill.GenerateOptions{MaxTokens: 1}, func(string) error { return nil })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d prompt tokens prefilled in %v (%.0f tokens/s)\n",
		m.Name, st.PromptTokens, st.Prefill.Round(1e6), st.PrefillTokensPerSecond())
	fmt.Println("attention:", st.Attention)

	data, err := m.AttentionJSON()
	if err != nil {
		log.Fatal(err)
	}
	if data == nil {
		fmt.Println("dense attention: no sparse statistics")
		return
	}
	if *asJSON {
		os.Stdout.Write(append(data, '\n'))
		return
	}
	var stats share.Stats
	if err := json.Unmarshal(data, &stats); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("planner %s: n=%d, %d×%d-token blocks, %d layers × %d heads\n",
		stats.Planner, stats.N, stats.NB, stats.BlockSize, stats.NumLayers, stats.NumHeads)
	for _, l := range stats.Layers {
		methods := make([]string, len(l.Heads))
		for i, h := range l.Heads {
			methods[i] = abbrev(h.Method)
		}
		fmt.Printf("layer %2d  density %.3f  %s\n", l.Layer, l.MeanDensity, strings.Join(methods, " "))
	}
	if s := stats.Summary; s != nil {
		fmt.Printf("mean density %.3f, heads per method %v\n", s.MeanDensity, s.HeadsPerMethod)
	}
	fmt.Println("legend: P pivot, S shared, V vertical-slash, Q query-aware, X excluded, D dense")
}

// longPrompt repeats a short story until it has about n tokens (and fits
// the context).
func longPrompt(m *shareprefill.Model, n int) string {
	const story = "Lily and Tom went to the park. They played with a red ball and saw a big dog. The dog was friendly and wagged its tail. "
	if max := m.Context() - 8; n > max {
		n = max
	}
	var b strings.Builder
	b.WriteString("Once upon a time. ")
	for {
		ids, err := m.Encode(b.String()+story, false, "")
		if err != nil || len(ids) > n {
			return b.String()
		}
		b.WriteString(story)
	}
}

func abbrev(m share.Method) string {
	switch m {
	case share.MethodPivot:
		return "P"
	case share.MethodShared:
		return "S"
	case share.MethodVerticalSlash:
		return "V"
	case share.MethodQueryAware:
		return "Q"
	case share.MethodExcluded:
		return "X"
	}
	return "D"
}
