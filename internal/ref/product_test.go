package ref

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNotInProduct: no package of the module imports internal/ref (or a
// package below it, such as internal/ref/quantref) outside its tests, so no
// binary links the references (the float64 oracles are not part of the
// product).
func TestNotInProduct(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not on PATH (%v): cannot list the module's packages", err)
	}
	const self = "github.com/shareprefill/shareprefill/internal/ref"
	out, err := exec.Command(gobin, "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "github.com/shareprefill/shareprefill/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		isRef := func(p string) bool { return p == self || strings.HasPrefix(p, self+"/") }
		if len(f) == 0 || isRef(f[0]) {
			continue
		}
		n++
		if i := slices.IndexFunc(f[1:], isRef); i >= 0 {
			t.Errorf("%s depends on %s outside its tests", f[0], f[1+i])
		}
	}
	if n < 10 {
		t.Fatalf("go list gave %d packages besides %s; want the whole module", n, self)
	}
}
