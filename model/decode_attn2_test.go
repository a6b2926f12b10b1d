package model

import (
	"context"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestDecodeSplitKV2Tokens: greedy generation with the split-KV decode
// kernel that streams keys through registers (attn_decode2,
// the default) gives the same tokens as with the
// scalar reference kernel (runtime.Tuning.DecodeAttnScalar), over a prompt
// whose cache it splits, with as many dispatches as attn_decode; a last
// decode step's logits agree to rounding.
func TestDecodeSplitKV2Tokens(t *testing.T) {
	devs := []*runtime.Device{
		gputest.Open(t, runtime.Options{}),
		gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{DecodeAttnScalar: true}}),
		gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{DecodeAttnSplitKV1: true}}),
	}
	if !devs[0].Info().SubgroupShuffle {
		t.Skip("no subgroup shuffles: attn_decode2 does not run here")
	}
	cfg := benchLM8KStructure()
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	prompt := make([]int, 150)
	for i := range prompt {
		prompt[i] = (i*29 + 11) % cfg.VocabSize
	}
	ctx := context.Background()
	const n = 8
	var toks [3][]int
	var logits [3][]float32
	var dispatches [3]uint64
	for i, d := range devs {
		e := newEngine(t, d, cfg, ck, EngineOptions{Context: 256})
		before := d.Counters()
		_, err := e.Generate(ctx, prompt, SampleOptions{MaxTokens: n}, func(id int) error {
			toks[i] = append(toks[i], id)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		dispatches[i] = d.Counters().Sub(before).Dispatches
		if logits[i], err = e.Decode(ctx, toks[i][len(toks[i])-1]); err != nil {
			t.Fatal(err)
		}
	}
	if toString(toks[0]) != toString(toks[1]) {
		t.Errorf("attn_decode2 %v, scalar kernel %v", toks[0], toks[1])
	}
	if e := gputest.RelErr(logits[0], gputest.F64(logits[1])); !(e <= 1e-3) {
		t.Errorf("last logits differ from the scalar kernel's by %.3g (relative)", e)
	}
	if dispatches[0] != dispatches[2] {
		t.Errorf("%d dispatches with attn_decode2, %d with attn_decode: want as many", dispatches[0], dispatches[2])
	}
}
