package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ggufwrite"
	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/model/stories260k"
)

// storiesQ8 is the stories260K Q8_0 file written by llama.cpp's gguf-py.
var storiesQ8 = filepath.Join("..", "..", "model", "testdata", "stories260k-q8_0.gguf")

// storiesF16 writes the embedded model as an F16 GGUF file, as llama.cpp's
// converter would, and returns its path.
func storiesF16(t *testing.T) string {
	t.Helper()
	w, err := ggufwrite.FromFS(stories260k.FS(), gguf.F16)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "stories260k-f16.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunGGUF: run --model FILE.gguf needs nothing beside the file. The F16
// file gives the embedded model's greedy text exactly, and so does the Q8_0
// file for these 40 tokens.
func TestRunGGUF(t *testing.T) {
	needVulkan(t)
	want, err := os.ReadFile(filepath.Join("testdata", "golden_run.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{{"f16", storiesF16(t)}, {"q8_0", storiesQ8}} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "run", "--model", tc.path, "--temp", "0", "--max-tokens", "40", "--prompt", "Once upon a time")
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			noStackTrace(t, out, errOut)
			if out != string(want) {
				t.Errorf("greedy output:\n got: %q\nwant: %q", out, want)
			}
		})
	}
}

// TestRunQuantize: run --quantize q8_0 keeps the embedded model's matrices
// in Q8_0 on the device (the summary says so) and gives its greedy text for
// these 40 tokens; inspect --quantize q8_0 plans the same types.
func TestRunQuantize(t *testing.T) {
	needVulkan(t)
	want, err := os.ReadFile(filepath.Join("testdata", "golden_run.txt"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "run", "--quantize", "q8_0", "--temp", "0", "--max-tokens", "40", "--prompt", "Once upon a time")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if out != string(want) {
		t.Errorf("greedy output:\n got: %q\nwant: %q", out, want)
	}
	if !strings.Contains(errOut, "weights Q8_0 178.0 KiB, F16 171.5 KiB, F32 2.8 KiB") {
		t.Errorf("summary lacks the Q8_0 weights:\n%s", errOut)
	}
	code, out, errOut = runCLI(t, "inspect", "--quantize", "q8_0")
	if code != 0 || !strings.Contains(out, "Q8_0 178.0 KiB (171520 params)") {
		t.Errorf("inspect --quantize q8_0: exit %d, %s%s", code, out, errOut)
	}
}

func TestInspectGGUF(t *testing.T) {
	code, out, errOut := runCLI(t, "inspect", "--model", storiesQ8)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, w := range []string{"Q8_0 (204288 params, 0.21 MiB), F16 (55040 params, 0.10 MiB), F32 (704 params, 0.00 MiB)",
		"260032 (0.26M)", "8 / 4 / 8 (GQA group 2)", "weights on the device", "weights on the device         Q8_0 178.0 KiB (171520 params), F16 171.5 KiB (87808 params), F32 2.8 KiB (708 params)",
		"device memory at context 512  weights", "fits the device"} {
		if !strings.Contains(out, w) {
			t.Errorf("inspect output lacks %q:\n%s", w, out)
		}
	}
	notModel := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notModel, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "inspect", "--model", notModel)
	if code != 1 || !strings.Contains(errOut, "neither a directory nor a GGUF file") {
		t.Errorf("inspect --model notes.txt: exit %d, %s", code, errOut)
	}
}

// TestRunGGUFErrors: a malformed or unsupported GGUF file is one error line
// naming the file and the problem.
func TestRunGGUFErrors(t *testing.T) {
	needVulkan(t)
	dir := t.TempDir()
	data, err := os.ReadFile(storiesQ8)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.gguf")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{truncated, []string{"truncated.gguf", "lies outside", "data section"}},
		{notes, []string{"notes.txt", "not a directory", "or a .gguf file"}},
	} {
		code, out, errOut := runCLI(t, "run", "--model", tc.path, "--max-tokens", "1")
		noStackTrace(t, out, errOut)
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if code != 1 || len(lines) != 1 {
			t.Errorf("%s: exit %d, stderr:\n%s", tc.path, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: error %q lacks %q", tc.path, errOut, w)
			}
		}
	}
}
