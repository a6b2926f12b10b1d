package model

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// recordPrefill records what prefillPart records for n tokens (the ids'
// copy, the embedding, every layer with dense attention, the last row's
// logits and their read-back) and drops it unsubmitted: the host cost of
// recording alone, without the driver's execution.
func recordPrefill(e *Engine, n int) error {
	cfg := e.cfg
	r := e.rec
	defer r.Discard()
	idv := view(e.ids, 0, n)
	if err := r.CopyFromHost(idv, 0, e.idsHost, 0, uint64(4*n)); err != nil {
		return err
	}
	h := cfg.HiddenSize
	C := min(e.opts.ChunkTokens, e.opts.MaxPrefill)
	x := view(e.x, 0, n, h)
	q := view(e.q, 0, n, cfg.NumHeads, cfg.HeadDim)
	o := view(e.o, 0, n, cfg.NumHeads, cfg.HeadDim)
	if err := kernels.Embed(r, x, e.embed, idv); err != nil {
		return err
	}
	p := kernels.AttnParams{Hq: cfg.NumHeads, Hkv: cfg.NumKVHeads, D: cfg.HeadDim, Sq: n, Skv: n, Causal: true}
	for l := range e.layers {
		ld := &e.layers[l]
		for c := 0; c < n; c += C {
			if err := e.attnInput(r, ld, c, min(C, n-c), 0); err != nil {
				return err
			}
		}
		if err := (DenseAttention{}).Layer(r, l, q, ld.kCache, ld.vCache, o, p); err != nil {
			return err
		}
		for c := 0; c < n; c += C {
			if err := e.attnOutputAndMLP(r, ld, c, min(C, n-c)); err != nil {
				return err
			}
		}
	}
	if err := e.recordLogits(r, n-1, 1); err != nil {
		return err
	}
	return r.CopyToHost(e.logitsHost, 0, e.logits, 0, uint64(4*cfg.VocabSize))
}

// benchModel is a model of BenchmarkRecordPrefill and its prompt length.
type benchModel struct {
	name string
	cfg  *Config
	ck   *Checkpoint
	n    int
}

// benchModels are the models of BenchmarkRecordPrefill: the embedded
// stories260K at a short prompt, bench-lm-8k (shared data) at 512 tokens.
func benchModels(b *testing.B) []benchModel {
	var out []benchModel
	cfg, err := LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		b.Fatal(err)
	}
	ck, err := OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		b.Fatal(err)
	}
	out = append(out, benchModel{"stories260K/32", cfg, ck, 32})
	dir := filepath.Join("..", "..", "shared", "models", "bench-lm-8k")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		cfg, err := LoadConfig(dir)
		if err != nil {
			b.Fatal(err)
		}
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, benchModel{"bench-lm-8k/512", cfg, ck, 512})
		out = append(out, benchModel{"bench-lm-8k/varying", cfg, ck, -512})
	}
	return out
}

// BenchmarkRecordPrefill measures the host time of recording a prefill
// (recordPrefill), per recorded dispatch. A negative length −n records
// prompts of n/2 to n−1 tokens in turn, a new length each time: bindings
// the recorder has not seen before.
func BenchmarkRecordPrefill(b *testing.B) {
	d := gputest.Device(b)
	for _, m := range benchModels(b) {
		b.Run(m.name, func(b *testing.B) {
			n, vary := m.n, 0
			if n < 0 {
				n, vary = -n, -m.n/2
			}
			length := func(i int) int {
				if vary == 0 {
					return n
				}
				return n - 1 - i%vary
			}
			e, err := NewEngine(d, m.cfg, m.ck, EngineOptions{Context: max(n, 64)})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if _, err := e.Prefill(context.Background(), make([]int, n)); err != nil { // pipelines created
				b.Fatal(err)
			}
			for i := 0; i < max(vary, 1); i++ { // every length's pipelines
				if err := recordPrefill(e, length(i)); err != nil {
					b.Fatal(err)
				}
			}
			before := d.Counters()
			b.ReportAllocs()
			b.ResetTimer()
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				if err := recordPrefill(e, length(i)); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(t0)
			b.StopTimer()
			c := d.Counters().Sub(before)
			cmds := float64(c.Dispatches+c.Copies) / float64(b.N)
			b.ReportMetric(cmds, "cmds/op")
			b.ReportMetric(float64(c.Barriers)/float64(b.N), "barriers/op")
			b.ReportMetric(float64(c.RecordCalls)/float64(b.N)/cmds, "cgo/cmd")
			b.ReportMetric(float64(c.VulkanCalls)/float64(b.N)/cmds, "vk/cmd")
			b.ReportMetric(float64(c.SetWrites)/float64(b.N)/cmds, "sets/cmd")
			b.ReportMetric(float64(el.Nanoseconds())/1e3/float64(b.N)/cmds, "µs/cmd")
		})
	}
}
