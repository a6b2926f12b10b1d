// Package layering states the module's import rules and checks a package
// graph against them. Imports go one way, from the command line down to
// the shaders (docs/architecture.md#layers):
//
//	cmd/…                    the programs
//	bench/…, examples/…      the benchmark harness, the API in use
//	shareprefill (the root)  the application API
//	share/…                  the planners and their GPU driver
//	model/…, tokenizer/…     the engine, the tokenizer
//	runtime/…                Vulkan and the kernels
//	shaders                  the embedded SPIR-V
//
// A package may import packages of its own layer or of a lower one, never
// of a higher one; besides, only cmd/… and bench/… import bench/…, and the
// helpers under internal/ import nothing above share/…. A package's own test
// files count (a test in package share that opened a model through the root
// package would be an upward import); an external test package (package
// p_test, which the go command builds apart from p) may import any layer,
// as runtime/kernels' cross-checks against share's definitions do, but only
// cmd/… and bench/… tests import bench/….
//
// The package is used by its own test (TestImportsGoOneWay), which runs
// `go list -deps -test -json ./...` on the module.
package layering

import (
	"fmt"
	"sort"
	"strings"
)

// Package is one package of the module: its path relative to the module
// root ("" for the root package) and the module packages it imports, in the
// same form.
type Package struct {
	Path    string
	Imports []string
	// External marks an external test package (package p_test, Path p).
	External bool
}

// Violation is one import that breaks the rules.
type Violation struct {
	From, To string // paths relative to the module root ("" the root)
	Why      string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s: %s", display(v.From), display(v.To), v.Why)
}

// display names a relative path, the root package as "shareprefill (root)".
func display(rel string) string {
	if rel == "" {
		return "shareprefill (root)"
	}
	return rel
}

// layers lists the layers from the top; a package belongs to the first
// whose prefix matches its path ("" matches the root package only).
var layers = [][]string{
	{"cmd"},
	{"bench", "examples"},
	{""},
	{"share"},
	{"model", "tokenizer"},
	{"runtime"},
	{"shaders"},
}

// under reports whether rel is the package prefix or below it.
func under(rel, prefix string) bool {
	if prefix == "" {
		return rel == ""
	}
	return rel == prefix || strings.HasPrefix(rel, prefix+"/")
}

// rank is the layer of rel (0 the top), or -1 for internal/ and any path
// no layer names.
func rank(rel string) int {
	for i, ps := range layers {
		for _, p := range ps {
			if under(rel, p) {
				return i
			}
		}
	}
	return -1
}

// Check returns every import of pkgs that breaks the rules, sorted.
func Check(pkgs []Package) []Violation {
	var out []Violation
	shareRank := rank("share") // the highest layer internal/ helpers import
	for _, p := range pkgs {
		from := rank(p.Path)
		for _, imp := range p.Imports {
			to := rank(imp)
			switch {
			case under(imp, "bench") && !under(p.Path, "cmd") && !under(p.Path, "bench"):
				out = append(out, Violation{p.Path, imp, "only cmd/… imports bench/…"})
			case p.External:
				// Any layer.
			case under(p.Path, "internal") && to >= 0 && to < shareRank:
				out = append(out, Violation{p.Path, imp, "internal/ helpers import nothing above share/…"})
			case from >= 0 && to >= 0 && to < from:
				out = append(out, Violation{p.Path, imp, fmt.Sprintf("a lower layer (%s) imports a higher one (%s)", layerName(from), layerName(to))})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// layerName names layer i by its prefixes.
func layerName(i int) string {
	names := make([]string, len(layers[i]))
	for j, p := range layers[i] {
		names[j] = display(p)
	}
	return strings.Join(names, ", ")
}
