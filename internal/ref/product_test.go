package ref

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNotInProduct: no package of the module imports internal/ref outside
// its tests, so no binary links the references (the float64 oracles are
// not part of the product).
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
		if len(f) == 0 || f[0] == self {
			continue
		}
		n++
		if slices.Contains(f[1:], self) {
			t.Errorf("%s depends on %s outside its tests", f[0], self)
		}
	}
	if n < 10 {
		t.Fatalf("go list gave %d packages besides %s; want the whole module", n, self)
	}
}
