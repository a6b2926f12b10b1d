// Command sparseeval measures, for each prefill attention method (dense,
// vertical-slash, FlexPrefill, SharePrefill), the perplexity of a model on a
// corpus at given lengths, the attention density, heads per method, and the
// prefill latency — all in one process on one device. It is the quick
// accuracy/density table of bench/RESULTS.md; `shareprefill bench` is the
// full harness.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
)

type row struct {
	Len       int     `json:"len"`
	Method    string  `json:"method"`
	NLL       float64 `json:"nll"`
	PPL       float64 `json:"ppl"`
	Density   float64 `json:"density"`
	Heads     string  `json:"heads"`
	PrefillMS float64 `json:"prefill_ms"`
}

func main() {
	modelDir := flag.String("model", "", "model directory")
	corpus := flag.String("corpus", "", "text files, comma-separated")
	lens := flag.String("lens", "8192,16384", "prompt lengths in tokens")
	methods := flag.String("methods", "dense,vs,flex,share", "methods")
	clusters := flag.String("clusters", "", "cluster file for share")
	preset := flag.String("preset", "paper", "preset")
	reps := flag.Int("reps", 3, "timed prefill repetitions (median)")
	jsonOut := flag.String("json", "", "write rows as JSON")
	flag.Parse()
	log.SetFlags(0)
	var text strings.Builder
	for _, f := range strings.Split(*corpus, ",") {
		b, err := os.ReadFile(f)
		if err != nil {
			log.Fatalf("sparseeval: %v", err)
		}
		text.Write(b)
	}
	var ls []int
	for _, s := range strings.Split(*lens, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			log.Fatalf("sparseeval: -lens: %v", err)
		}
		ls = append(ls, n)
	}
	maxLen := 0
	for _, n := range ls {
		maxLen = max(maxLen, n)
	}
	ctx := context.Background()
	var rows []row
	for _, meth := range strings.Split(*methods, ",") {
		cl := ""
		if meth == "share" {
			cl = *clusters
		}
		m, err := shareprefill.Open(ctx, shareprefill.Options{Model: *modelDir, Context: maxLen, Attention: meth, Clusters: cl, Preset: *preset})
		if err != nil {
			log.Fatalf("sparseeval: %s: %v", meth, err)
		}
		all := m.Tok.Encode(text.String(), true)
		for _, n := range ls {
			if len(all) < n {
				log.Fatalf("sparseeval: corpus has %d tokens, need %d", len(all), n)
			}
			toks := all[:n]
			nll, err := m.Engine.NLL(ctx, toks)
			if err != nil {
				log.Fatalf("sparseeval: %s n=%d: %v", meth, n, err)
			}
			r := row{Len: n, Method: meth, NLL: nll, PPL: math.Exp(nll), Density: 1, Heads: "dense all"}
			if js, _ := m.AttentionJSON(); js != nil {
				var st struct {
					Summary struct {
						HeadsPerMethod map[string]int `json:"heads_per_method"`
						MeanDensity    float64        `json:"mean_density"`
					} `json:"summary"`
				}
				if json.Unmarshal(js, &st) == nil {
					r.Density = st.Summary.MeanDensity
					var ks []string
					for k, v := range st.Summary.HeadsPerMethod {
						ks = append(ks, fmt.Sprintf("%s %d", k, v))
					}
					sort.Strings(ks)
					r.Heads = strings.Join(ks, ", ")
				}
			}
			var ts []float64
			for i := 0; i < *reps+1; i++ {
				m.Engine.Reset()
				start := time.Now()
				if _, err := m.Engine.Prefill(ctx, toks); err != nil {
					log.Fatalf("sparseeval: %v", err)
				}
				if i > 0 {
					ts = append(ts, float64(time.Since(start).Microseconds())/1e3)
				}
			}
			sort.Float64s(ts)
			r.PrefillMS = ts[len(ts)/2]
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "%s n=%d: ppl %.3f density %.3f prefill %.1f ms\n", meth, n, r.PPL, r.Density, r.PrefillMS)
		}
		m.Close()
	}
	dense := map[int]row{}
	for _, r := range rows {
		if r.Method == "dense" {
			dense[r.Len] = r
		}
	}
	fmt.Printf("| length | method | NLL | PPL | ΔPPL vs dense | density | heads per method | prefill (ms) | speed-up |\n|---|---|---|---|---|---|---|---|---|\n")
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].Len < rows[b].Len })
	for _, r := range rows {
		d, ok := dense[r.Len]
		dp, sp := "", ""
		if ok {
			dp = fmt.Sprintf("%+.3f", r.PPL-d.PPL)
			sp = fmt.Sprintf("%.2f×", d.PrefillMS/r.PrefillMS)
		}
		fmt.Printf("| %d | %s | %.4f | %.3f | %s | %.3f | %s | %.1f | %s |\n", r.Len, r.Method, r.NLL, r.PPL, dp, r.Density, r.Heads, r.PrefillMS, sp)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		os.WriteFile(*jsonOut, b, 0o644)
	}
}
