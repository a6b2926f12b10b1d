package outpath

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	data := write(t, filepath.Join(dir, "data.txt"), "calibration text")
	modelDir := filepath.Join(dir, "model")
	config := write(t, filepath.Join(modelDir, "config.json"), "{}")
	ours := write(t, filepath.Join(dir, "ours.json"), "OURS")
	foreign := write(t, filepath.Join(dir, "notes.txt"), "my notes")
	empty := write(t, filepath.Join(dir, "empty.json"), "")
	link := filepath.Join(dir, "link.txt")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.txt")
	if err := os.Link(data, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	oursDir := filepath.Join(dir, "plots")
	write(t, filepath.Join(oursDir, "a.png"), "PNG")
	foreignDir := filepath.Join(dir, "docs")
	write(t, filepath.Join(foreignDir, "a.md"), "text")
	isOurs := func(p string) bool {
		b, err := os.ReadFile(p)
		return err == nil && string(b) == "OURS"
	}
	isOursDir := func(p string) bool {
		_, err := os.Stat(filepath.Join(p, "a.png"))
		return err == nil
	}
	inputs := []Named{{"--data", data}, {"--model", modelDir}}
	protected := []Named{{"--model", modelDir}}
	tests := []struct {
		name  string
		spec  Spec
		fails []string // substrings of the error; nil: no error
	}{
		{"empty path", Spec{Flag: "--out"}, nil},
		{"new file", Spec{Flag: "--out", Path: filepath.Join(dir, "new.json")}, nil},
		{"relative input", Spec{Flag: "--out", Path: filepath.Join(dir, ".", "sub", "..", "data.txt"), Inputs: inputs}, []string{"--out", "is also given as --data"}},
		{"input by symlink", Spec{Flag: "--out", Path: link, Inputs: inputs}, []string{"is also given as --data"}},
		{"input by hard link", Spec{Flag: "--out", Path: hard, Inputs: inputs}, []string{"is also given as --data"}},
		{"input even with force", Spec{Flag: "--out", Path: data, Inputs: inputs, Force: true}, []string{"is also given as --data"}},
		{"model config", Spec{Flag: "--out", Path: config, Protected: protected, Force: true}, []string{"inside the --model directory"}},
		{"new file in model dir", Spec{Flag: "--out", Path: filepath.Join(modelDir, "clusters.json"), Protected: protected}, []string{"inside the --model directory"}},
		{"model dir itself", Spec{Flag: "--plots", Path: modelDir, Dir: true, Protected: protected, Force: true}, []string{"inside the --model directory"}},
		{"ours", Spec{Flag: "--out", Path: ours, Ours: isOurs, What: "a cluster file"}, nil},
		{"empty file", Spec{Flag: "--out", Path: empty, Ours: isOurs}, nil},
		{"foreign", Spec{Flag: "--out", Path: foreign, Ours: isOurs, What: "a cluster file"}, []string{"not a cluster file", "--force"}},
		{"foreign, no recogniser", Spec{Flag: "--md", Path: foreign}, []string{"--md", "--force"}},
		{"foreign with force", Spec{Flag: "--out", Path: foreign, Ours: isOurs, Force: true}, nil},
		{"directory for a file", Spec{Flag: "--out", Path: dir, Force: true}, []string{"is a directory"}},
		{"file for a directory", Spec{Flag: "--plots", Path: data, Dir: true, Force: true}, []string{"not a directory"}},
		{"fifo", Spec{Flag: "--out", Path: fifo, Force: true}, []string{"not a regular file"}},
		{"missing parent", Spec{Flag: "--out", Path: filepath.Join(dir, "nope", "x.json")}, []string{"does not exist"}},
		{"missing parent, made", Spec{Flag: "--json", Path: filepath.Join(dir, "nope", "x.json"), MakeParents: true}, nil},
		{"parent is a file", Spec{Flag: "--json", Path: filepath.Join(data, "x.json"), MakeParents: true}, []string{"not a directory"}},
		{"new dir", Spec{Flag: "--plots", Path: filepath.Join(dir, "a", "b"), Dir: true}, nil},
		{"ours dir", Spec{Flag: "--plots", Path: oursDir, Dir: true, Ours: isOursDir}, nil},
		{"foreign dir", Spec{Flag: "--out", Path: foreignDir, Dir: true, Ours: isOursDir, What: "a generated model"}, []string{"not a generated model", "--force"}},
		{"foreign dir with force", Spec{Flag: "--out", Path: foreignDir, Dir: true, Ours: isOursDir, Force: true}, nil},
		{"empty dir", Spec{Flag: "--out", Path: t.TempDir(), Dir: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.spec)
			if tc.fails == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one with %q", tc.fails)
			}
			for _, w := range tc.fails {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Nothing was changed or left behind.
	for p, want := range map[string]string{data: "calibration text", ours: "OURS", foreign: "my notes", config: "{}"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s changed: %q, %v", p, b, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".shareprefill-outpath-") {
			t.Errorf("probe file %s left behind", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Errorf("Check created the directory it was asked about")
	}
}

// TestCheckOneLine: a path with a newline is quoted, so the error stays one
// line.
func TestCheckOneLine(t *testing.T) {
	err := Check(Spec{Flag: "--out", Path: filepath.Join(t.TempDir(), "a\nb", "x.json")})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `a\nb`) {
		t.Fatalf("got %q, want one line quoting the path", err)
	}
}

func TestCheckReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	err := Check(Spec{Flag: "--out", Path: filepath.Join(ro, "x.json")})
	if err == nil || !strings.Contains(err.Error(), "cannot write") {
		t.Fatalf("read-only directory: %v, want a cannot-write error", err)
	}
}
