// Command generate opens the best Vulkan device, loads the embedded
// stories260K model and streams a story, giving up after a timeout.
//
//	go run ./examples/generate
//	go run ./examples/generate -prompt "Lily and Tom" -timeout 5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/shareprefill/shareprefill"
)

func main() {
	prompt := flag.String("prompt", "Once upon a time", "the start of the story")
	timeout := flag.Duration("timeout", 30*time.Second, "stop generating after this long")
	maxTokens := flag.Int("max-tokens", 200, "tokens to generate at most")
	flag.Parse()
	log.SetFlags(0)

	// The context bounds the whole call: cancelling it stops generation
	// between tokens (and prefill between layers).
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	m, err := shareprefill.Open(ctx, shareprefill.Options{}) // embedded model, best device
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	fmt.Print(*prompt)
	stats, err := m.Generate(ctx, *prompt, shareprefill.GenerateOptions{
		MaxTokens: *maxTokens, Temperature: 0.8, TopP: 0.9, Seed: 42,
	}, func(text string) error {
		_, err := fmt.Print(text) // whole UTF-8 characters
		return err
	})
	fmt.Println()
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "(stopped after %v)\n", *timeout)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "%s on %s: %d prompt tokens, %d generated, %.0f tokens/s\n",
		m.Name, m.Device().Info().Name, stats.PromptTokens, stats.GeneratedTokens, stats.DecodeTokensPerSecond())
}
