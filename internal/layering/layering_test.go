package layering

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// root is the module root, two directories up.
const root = "../.."

// modulePath reads the module path from go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// goList runs the go command in the module root and returns its output.
func goList(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// relPath turns a package path of `go list -test` into a path relative to
// the module root: "" for the root package, test variants and external
// test packages (external) as the package they test; ok is false outside
// the module and for the generated test mains.
func relPath(mod, importPath string) (rel string, external, ok bool) {
	p, _, _ := strings.Cut(importPath, " [") // "share [share.test]"
	if strings.HasSuffix(p, ".test") {
		return "", false, false // the test main
	}
	p, external = strings.CutSuffix(p, "_test")
	if p == mod {
		return "", external, true
	}
	rel, ok = strings.CutPrefix(p, mod+"/")
	return rel, external, ok
}

// modulePackages lists the module's packages, their tests included, with
// their imports inside the module.
func modulePackages(t *testing.T, mod string) []Package {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(goList(t, "-deps", "-test", "-json", "./...")))
	type key struct {
		rel      string
		external bool
	}
	byPath := map[key]map[string]bool{}
	var order []key
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel, ext, ok := relPath(mod, p.ImportPath)
		if !ok {
			continue
		}
		k := key{rel, ext}
		if byPath[k] == nil {
			byPath[k] = map[string]bool{}
			order = append(order, k)
		}
		for _, imp := range p.Imports {
			if r, _, ok := relPath(mod, imp); ok && r != rel {
				byPath[k][r] = true
			}
		}
	}
	pkgs := make([]Package, 0, len(order))
	for _, k := range order {
		p := Package{Path: k.rel, External: k.external}
		for imp := range byPath[k] {
			p.Imports = append(p.Imports, imp)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportsGoOneWay checks the module's packages, tests included, against
// the rules: no import from a lower layer to a higher one.
func TestImportsGoOneWay(t *testing.T) {
	mod := modulePath(t)
	pkgs := modulePackages(t, mod)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.Path] = true
	}
	for _, want := range []string{"", "share", "share/gpu", "model", "runtime", "cmd/shareprefill", "bench/harness"} {
		if !seen[want] {
			t.Fatalf("go list did not report %s (saw %d packages)", display(want), len(pkgs))
		}
	}
	for _, v := range Check(pkgs) {
		t.Error(v)
	}
}

// TestProductLinksNoPlotting: the command's product build does not link
// gonum/plot (the bench build, tag plots, does).
func TestProductLinksNoPlotting(t *testing.T) {
	const plot = "gonum.org/v1/plot"
	has := func(out []byte) bool {
		for _, l := range strings.Fields(string(out)) {
			if l == plot || strings.HasPrefix(l, plot+"/") {
				return true
			}
		}
		return false
	}
	if has(goList(t, "-deps", "./cmd/shareprefill")) {
		t.Errorf("./cmd/shareprefill links %s; only the bench build (-tags plots) may", plot)
	}
	if !has(goList(t, "-deps", "-tags", "plots", "./cmd/shareprefill")) {
		t.Errorf("the bench build (-tags plots) of ./cmd/shareprefill does not link %s: is this test still looking for the right package?", plot)
	}
}

// TestCheck: the rules on a made-up graph.
func TestCheck(t *testing.T) {
	pkgs := []Package{
		{"cmd/shareprefill", []string{"", "bench/harness", "cmd/shareprefill/internal/calibrate", "internal/outpath"}, false},
		{"cmd/shareprefill/internal/calibrate", []string{"", "share", "model"}, false},
		{"bench/harness", []string{"", "share", "model", "runtime"}, false},
		{"bench/harness/plots", []string{"bench/harness"}, false},
		{"examples/generate", []string{""}, false},
		{"", []string{"share", "share/gpu", "model", "tokenizer", "runtime"}, false},
		{"share/gpu", []string{"share", "model", "runtime/kernels"}, false},
		{"model", []string{"runtime", "tokenizer", "internal/ref"}, false},
		{"internal/ref", []string{"share", "model", "runtime"}, false},
		{"runtime/kernels", []string{"runtime", "shaders"}, false},
		// Upward:
		{"share", []string{""}, false},
		{"model/stories260k", []string{"share"}, false},
		{"runtime", []string{"model"}, false},
		{"shaders", []string{"runtime"}, false},
		{"examples/sparse", []string{"bench/harness"}, false},
		{"", []string{"bench/harness", "cmd/shareprefill/internal/calibrate"}, false},
		{"internal/x", []string{""}, false},
		// External tests: any layer, but bench/… only from cmd/… and bench/….
		{"runtime/kernels", []string{"share"}, true},
		{"share", []string{"bench/harness"}, true},
	}
	var got []string
	for _, v := range Check(pkgs) {
		got = append(got, v.String())
	}
	want := []string{
		"shareprefill (root) imports bench/harness: only cmd/… imports bench/…",
		"shareprefill (root) imports cmd/shareprefill/internal/calibrate: a lower layer (shareprefill (root)) imports a higher one (cmd)",
		"examples/sparse imports bench/harness: only cmd/… imports bench/…",
		"internal/x imports shareprefill (root): internal/ helpers import nothing above share/…",
		"model/stories260k imports share: a lower layer (model, tokenizer) imports a higher one (share)",
		"runtime imports model: a lower layer (runtime) imports a higher one (model, tokenizer)",
		"shaders imports runtime: a lower layer (shaders) imports a higher one (runtime)",
		"share imports shareprefill (root): a lower layer (share) imports a higher one (shareprefill (root))",
		"share imports bench/harness: only cmd/… imports bench/…",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRelPath(t *testing.T) {
	const mod = "example.com/m"
	for in, want := range map[string]string{
		"example.com/m": "",
		"example.com/m_test [example.com/m.test]":  "",
		"example.com/m/share [example.com/m.test]": "share",
		"example.com/m/share_test [x/share.test]":  "share",
		"example.com/m/runtime/kernels":            "runtime/kernels",
		"example.com/m/share.test":                 "-",
		"example.com/mm":                           "-",
		"fmt":                                      "-",
		"example.com/m/cmd/x/internal/y [x.test]":  "cmd/x/internal/y",
	} {
		got, _, ok := relPath(mod, in)
		if !ok {
			got = "-"
		}
		if got != want {
			t.Errorf("relPath(%q) = %q, want %q", in, got, want)
		}
	}
}
