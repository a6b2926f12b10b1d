package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot returns the directory holding go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestDocLinks checks the repository: every relative Markdown link and
// every docs/…md#anchor citation resolves, and nothing cites a retired
// document.
func TestDocLinks(t *testing.T) {
	probs, err := Check(repoRoot(t), "doccheck.go", "doccheck_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Exclusion", "exclusion"},
		{"Mapping to the block grid", "mapping-to-the-block-grid"},
		{"`paper` and `release` presets", "paper-and-release-presets"},
		{"Device selection and features", "device-selection-and-features"},
		{"Tests (CI, lavapipe)", "tests-ci-lavapipe"},
		{"The [kernels](kernels.md) page", "the-kernels-page"},
		{"cmd → shareprefill", "cmd--shareprefill"},
		{"snake_case **bold**", "snake_case-bold"},
	} {
		if got := Slug(c.in); got != c.want {
			t.Errorf("Slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestAnchors(t *testing.T) {
	md := "# Title\n\n## Usage\n\n```\n## not a heading\n```\n\n### Usage\n<a id=\"custom\"></a>\n## Closed ##\n"
	got := Anchors([]byte(md))
	for _, want := range []string{"title", "usage", "usage-1", "custom", "closed"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a heading inside a fenced block counted: %v", got)
	}
}

// TestCheckFindsBrokenReferences builds a small tree with one reference of
// every kind, good and bad, and checks that exactly the bad ones are
// reported.
func TestCheckFindsBrokenReferences(t *testing.T) {
	root := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/a.md", "# A\n\n## Good section\n\nSee [b](b.md#other), [up](../README.md), [self](#good-section).\n"+
		"Broken: [gone](missing.md), [bad anchor](b.md#nope), [web](https://example.com/x.md#y).\n"+
		"```\n[in code](nowhere.md)\n```\n")
	write("docs/b.md", "# B\n\n## Other\n")
	write("README.md", "Docs: [a](docs/a.md#good-section) and [outside](../elsewhere.md).\n")
	write("pkg/x.go", "// See docs/a.md#good-section and docs/b.md#missing-anchor and docs/c.md.\n"+
		"// The old notes: vulkan-notes.md §3.\npackage x\n")
	write("testdata/ignored.md", "[ignored](nowhere.md)\n")

	probs, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:1: link ../elsewhere.md: points outside the repository",
		`docs/a.md:6: link missing.md: no such file`,
		`docs/a.md:6: link b.md#nope: no heading or anchor "nope" in docs/b.md`,
		`pkg/x.go:1: docs/b.md#missing-anchor: no heading or anchor "missing-anchor" in docs/b.md`,
		"pkg/x.go:1: docs/c.md: no such file",
		`pkg/x.go:2: cites "vulkan-notes.md", which is not part of the repository (cite a page under docs/)`,
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
