package shareprefill_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/share"
	sgpu "github.com/shareprefill/shareprefill/share/gpu"
)

// TestMain skips the package's tests and examples (which need a Vulkan
// device: lavapipe in CI) when there is none, unless
// SHAREPREFILL_REQUIRE_VULKAN=1 asks for a failure instead. Examples cannot
// skip themselves.
func TestMain(m *testing.M) {
	if _, err := runtime.ListDevices(); err != nil && os.Getenv("SHAREPREFILL_REQUIRE_VULKAN") != "1" {
		fmt.Println("skipping shareprefill tests and examples: no Vulkan device:", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Generate with greedy sampling (temperature 0) is deterministic: the
// embedded stories260K tells the same story on every device.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := shareprefill.Open(ctx, shareprefill.Options{}) // embedded model, best device
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Print("Once upon a time")
	stats, err := m.Generate(ctx, "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 24, Temperature: 0},
		func(text string) error { fmt.Print(text); return nil })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n%d prompt tokens, %d generated\n", stats.PromptTokens, stats.GeneratedTokens)
	// Output:
	// Once upon a time, there was a little girl named Lily. She loved to play outside in the p
	// 5 prompt tokens, 24 generated
}

// An application that manages its own device loads the model onto it;
// closing the model leaves the device open.
func ExampleLoad() {
	dev, err := runtime.Open(runtime.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	ctx := context.Background()
	m, err := shareprefill.Load(ctx, dev, shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	_, err = m.Generate(ctx, "Lily and Tom", shareprefill.GenerateOptions{MaxTokens: 16},
		func(text string) error { fmt.Print(text); return nil })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	// Output:
	// were playing in the park. They liked to play with
}

// Cancelling the context stops generation between tokens; the text
// streamed so far has been delivered.
func ExampleModel_Generate_cancel() {
	m, err := shareprefill.Open(context.Background(), shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	_, err = m.Generate(ctx, "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 200},
		func(text string) error {
			got = append(got, text)
			if len(got) == 5 {
				cancel() // e.g. the user pressed stop
			}
			return nil
		})
	fmt.Printf("%q\n", got)
	fmt.Println("cancelled:", errors.Is(err, context.Canceled))
	// Output:
	// ["," " there" " was" " a" " little"]
	// cancelled: true
}

// With sparse attention, AttentionJSON returns the statistics of the last
// prefill (a share.Stats): the method, density and block count of every
// head of every layer.
func ExampleModel_AttentionJSON() {
	ctx := context.Background()
	m, err := shareprefill.Open(ctx, shareprefill.Options{Attention: "share"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Generate(ctx, "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 1},
		func(string) error { return nil }); err != nil {
		log.Fatal(err)
	}
	data, err := m.AttentionJSON()
	if err != nil {
		log.Fatal(err)
	}
	var st share.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		log.Fatal(err)
	}
	// Per head: st.Layers[l].Heads[h].Method, .Density, .Blocks, .Cluster.
	// A prompt shorter than one block (128 tokens) falls back to dense.
	fmt.Printf("%s: %d tokens, %d layers, heads per method %v\n", st.Planner, st.N, len(st.Layers), st.Summary.HeadsPerMethod)
	// Output:
	// shareprefill: 5 tokens, 5 layers, heads per method map[dense:40]
}

// Prefill and one-id decode steps give an application the logits
// themselves: here a greedy loop that picks the most likely next id.
func ExampleModel_Prefill() {
	ctx := context.Background()
	m, err := shareprefill.Open(ctx, shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	ids, err := m.Encode("Lily and Tom", false, "")
	if err != nil {
		log.Fatal(err)
	}
	logits, err := m.Prefill(ctx, ids)
	if err != nil {
		log.Fatal(err)
	}
	var out []int
	for range 6 {
		best := slices.Index(logits, slices.Max(logits)) // greedy
		out = append(out, best)
		if logits, err = m.Prefill(ctx, []int{best}); err != nil { // a decode step
			log.Fatal(err)
		}
	}
	fmt.Printf("%q, %d tokens in the cache\n", m.Tokenizer().Decode(out), m.Pos())
	// Output:
	// "were playing in the", 11 tokens in the cache
}

// NLL scores a text: the mean negative log-likelihood of each token given
// the ones before it, whose exponential is the perplexity.
func ExampleModel_NLL() {
	ctx := context.Background()
	m, err := shareprefill.Open(ctx, shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	for _, text := range []string{"Once upon a time, there was a little girl named Lily.", "Lily a little time girl upon there named was once."} {
		ids, err := m.Encode(text, false, "")
		if err != nil {
			log.Fatal(err)
		}
		nll, err := m.NLL(ctx, ids)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s perplexity below 10: %v\n", text, math.Exp(nll) < 10)
	}
	// Output:
	// Once upon a time, there was a little girl named Lily. perplexity below 10: true
	// Lily a little time girl upon there named was once. perplexity below 10: false
}

// SetAttention installs a prefill attention of the application's own: here
// SharePrefill on 32-token blocks (the presets use 128), which the
// embedded model's short prompts need to be sparse at all.
func ExampleModel_SetAttention() {
	ctx := context.Background()
	m, err := shareprefill.Open(ctx, shareprefill.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	p, err := share.NewPlanner(share.KindShare, share.PlannerOptions{Preset: "paper:block=32,min_budget=32"})
	if err != nil {
		log.Fatal(err)
	}
	a, err := sgpu.New(p, sgpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.SetAttention(a); err != nil { // m.Close closes a
		a.Close()
		log.Fatal(err)
	}
	ids, err := m.Encode(strings.Repeat("Once upon a time there was a cat. ", 30), false, "")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Prefill(ctx, ids); err != nil {
		log.Fatal(err)
	}
	data, err := m.AttentionJSON() // a *share/gpu.Attention reports its statistics
	if err != nil {
		log.Fatal(err)
	}
	var st share.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d tokens in blocks of %d, mean density below 1: %v\n", st.Planner, st.N, st.BlockSize, st.Summary.MeanDensity < 1)
	// Output:
	// shareprefill: 302 tokens in blocks of 32, mean density below 1: true
}
