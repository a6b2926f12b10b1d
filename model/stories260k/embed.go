// Package stories260k embeds karpathy's TinyStories 260K-parameter Llama
// model (tinyllamas stories260K, MIT licence) converted to Hugging Face
// layout, so that binaries can run a real model without any download.
//
// Load it with model.LoadFS(stories260k.FS(), ".") or
// model.OpenCheckpointFS(stories260k.FS(), ".").
package stories260k

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed config.json model.safetensors tokenizer.json tokenizer_config.json
var files embed.FS

// FileNames lists the embedded files.
var FileNames = []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}

// FS returns the embedded files as a read-only file system with the files
// at its root.
func FS() fs.FS { return files }

// Files returns a fresh copy of every embedded file, keyed by file name.
func Files() map[string][]byte {
	m := make(map[string][]byte, len(FileNames))
	for _, n := range FileNames {
		b, err := files.ReadFile(n)
		if err != nil {
			panic("stories260k: embedded file missing: " + n) // impossible: checked at build time
		}
		m[n] = b
	}
	return m
}

// WriteTo writes the embedded files into dir, creating it if needed, and
// returns the first error.
func WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stories260k: %w", err)
	}
	for n, b := range Files() {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return fmt.Errorf("stories260k: %w", err)
		}
	}
	return nil
}
