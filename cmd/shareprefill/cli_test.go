package main

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_run.txt")

// TestMain doubles as the command: with SHAREPREFILL_CLI_TEST_MAIN=1 the test
// binary runs main's run() on its arguments, so subprocess tests exercise the
// real program (environment, exit status) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("SHAREPREFILL_CLI_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// needVulkan skips without a Vulkan device unless SHAREPREFILL_REQUIRE_VULKAN=1.
func needVulkan(t *testing.T) {
	t.Helper()
	if _, err := runtime.ListDevices(); err != nil {
		if os.Getenv("SHAREPREFILL_REQUIRE_VULKAN") == "1" {
			t.Fatalf("no Vulkan device (SHAREPREFILL_REQUIRE_VULKAN=1): %v", err)
		}
		t.Skipf("skipping: no Vulkan device: %v", err)
	}
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// noStackTrace fails when output looks like a panic or a stack dump.
func noStackTrace(t *testing.T, outs ...string) {
	t.Helper()
	for _, s := range outs {
		for _, bad := range []string{"panic:", "goroutine ", "runtime/debug", ".go:"} {
			if strings.Contains(s, bad) {
				t.Errorf("output contains %q (a stack trace?):\n%s", bad, s)
			}
		}
	}
}

// TestRunGolden: greedy output of the embedded model is fixed.
func TestRunGolden(t *testing.T) {
	needVulkan(t)
	code, out, errOut := runCLI(t, "run", "--temp", "0", "--max-tokens", "40", "--prompt", "Once upon a time")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	noStackTrace(t, out, errOut)
	golden := filepath.Join("testdata", "golden_run.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run `go test ./cmd/shareprefill -run TestRunGolden -update` to create it)", err)
	}
	if out != string(want) {
		t.Errorf("greedy output changed:\n got: %q\nwant: %q\n(if intended: go test ./cmd/shareprefill -run TestRunGolden -update)", out, want)
	}
	if !strings.HasPrefix(out, "Once upon a time") {
		t.Errorf("stdout %q does not start with the prompt", out)
	}
	for _, part := range []string{"model stories260k on ", "prompt ", "generated ", "attention: dense"} {
		if !strings.Contains(errOut, part) {
			t.Errorf("summary on stderr lacks %q:\n%s", part, errOut)
		}
	}
}

// modelDir writes a copy of the embedded model into a temporary directory,
// without the files in drop, and with the files in replace overwritten.
func modelDir(t *testing.T, drop []string, replace map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(stories260k.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, x := range drop {
			if p == x {
				return nil
			}
		}
		b, err := fs.ReadFile(stories260k.FS(), p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range replace {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRunErrors: each bad input gives one line on stderr naming the problem,
// and its exit status (2: bad command line, 1: anything else).
func TestRunErrors(t *testing.T) {
	needVulkan(t)
	promptFile := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(promptFile, []byte("Once"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("Once upon a time there was a little girl named Lily. ", 40)
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of the error line
		list bool     // the error line is followed by a list (the devices)
	}{
		{"bad flag", []string{"run", "--no-such-flag"}, 2, []string{"flag provided but not defined", "no-such-flag"}, false},
		{"bad flag value", []string{"run", "--max-tokens", "many"}, 2, []string{"invalid value", "max-tokens"}, false},
		{"negative max tokens", []string{"run", "--max-tokens", "-1"}, 2, []string{"--max-tokens"}, false},
		{"prompt and prompt file", []string{"run", "--prompt", "x", "--prompt-file", promptFile}, 2, []string{"--prompt or --prompt-file"}, false},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command", "frobnicate"}, false},
		{"missing model dir", []string{"run", "--model", filepath.Join(t.TempDir(), "nope"), "--max-tokens", "1"}, 1, []string{"nope", "no such file"}, false},
		{"missing prompt file", []string{"run", "--prompt-file", filepath.Join(t.TempDir(), "nope.txt")}, 1, []string{"--prompt-file", "nope.txt"}, false},
		{"malformed config.json", []string{"run", "--model", modelDir(t, nil, map[string]string{"config.json": `{"hidden_size": 64,`}), "--max-tokens", "1"}, 1, []string{"config.json"}, false},
		{"missing tokenizer.json", []string{"run", "--model", modelDir(t, []string{"tokenizer.json"}, nil), "--max-tokens", "1"}, 1, []string{"tokenizer.json"}, false},
		{"missing weights", []string{"run", "--model", modelDir(t, []string{"model.safetensors"}, nil), "--max-tokens", "1"}, 1, []string{"safetensors"}, false},
		{"prompt longer than the context", []string{"run", "--context", "128", "--prompt", long, "--max-tokens", "1"}, 1, []string{"context", "128", "--context"}, false},
		{"unknown attention", []string{"run", "--attn", "bogus", "--max-tokens", "1"}, 2, []string{"--attn", "bogus", "dense, vs, flex or share"}, false},
		{"unknown device", []string{"run", "--device", "no-such-gpu-xyz", "--max-tokens", "1"}, 2, []string{"--device", "no-such-gpu-xyz", "devices:"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			noStackTrace(t, out, errOut)
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			last := lines[len(lines)-1]
			if tc.list {
				last, lines = lines[0], lines[:1]
			}
			if !strings.HasPrefix(last, "shareprefill") {
				t.Errorf("last stderr line %q is not the program's error", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line %q lacks %q", last, w)
				}
			}
			// Every error, flag errors included, is exactly one line.
			if len(lines) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(lines), errOut)
			}
		})
	}
}

// TestRunOutOfMemoryHint: a context too long for the device's memory is an
// error whose fix the library words as a shorter context and the command
// names as its flag (after the note that the context passes the trained
// length).
func TestRunOutOfMemoryHint(t *testing.T) {
	needVulkan(t)
	code, out, errOut := runCLI(t, "run", "--context", "1000000000", "--max-tokens", "1")
	noStackTrace(t, out, errOut)
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "shareprefill run:") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, w := range []string{"out of device memory", "shorter context", "--context sets"} {
		if !strings.Contains(last, w) {
			t.Errorf("error line %q lacks %q", last, w)
		}
	}
}

// TestRunNoVulkan runs the program in a subprocess whose Vulkan loader finds
// no driver: one line saying so and how to install one, exit status 1.
func TestRunNoVulkan(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "--max-tokens", "1"}, {"devices"}} {
		cmd := exec.Command(exe, args...)
		// Also under SHAREPREFILL_VK_VALIDATION=1: the error stays one line.
		cmd.Env = append(os.Environ(), "SHAREPREFILL_CLI_TEST_MAIN=1", "VK_ICD_FILENAMES=/nonexistent", "VK_DRIVER_FILES=/nonexistent")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		cmd.Stdin = strings.NewReader("")
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if code != 1 {
			t.Errorf("%v without a Vulkan driver: exit %d (%v), want 1; stderr:\n%s", args, code, err, e.String())
		}
		noStackTrace(t, o.String(), e.String())
		lines := strings.Split(strings.TrimRight(e.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "apt-get install") || !strings.Contains(lines[0], "Vulkan") {
			t.Errorf("%v without a Vulkan driver: stderr %q, want one line naming Vulkan and apt-get install", args, e.String())
		}
	}
}
