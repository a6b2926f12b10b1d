package shaders

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const spirvMagic = 0x07230203

// variantsRE matches the "// variants: a=-DX b=" header line understood by
// scripts/compile-shaders.sh.
var variantsRE = regexp.MustCompile(`(?m)^[ \t]*//[ \t]*variants:(.*)$`)

// expectedModules parses src/*.comp the way scripts/compile-shaders.sh does
// and returns module name -> source file.
func expectedModules(t *testing.T) map[string]string {
	t.Helper()
	srcs, err := filepath.Glob("*.comp")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	add := func(name, src string) {
		if prev, ok := want[name]; ok {
			t.Errorf("module %q produced by both %s and %s", name, prev, src)
		}
		want[name] = src
	}
	for _, src := range srcs {
		text, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		m := variantsRE.FindSubmatch(text)
		if m == nil {
			add(strings.TrimSuffix(src, ".comp"), src)
			continue
		}
		for _, tok := range strings.Fields(string(m[1])) {
			name, _, _ := strings.Cut(tok, "=")
			add(name, src)
		}
	}
	return want
}

func TestEmbeddedSPIRVIsValidHeader(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no embedded SPIR-V modules")
	}
	for _, n := range names {
		b, err := SPIRV(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 20 || len(b)%4 != 0 {
			t.Errorf("%s.spv: length %d is not a SPIR-V module (>= 20, multiple of 4)", n, len(b))
			continue
		}
		if m := binary.LittleEndian.Uint32(b); m != spirvMagic {
			t.Errorf("%s.spv: magic %#08x, want %#08x", n, m, spirvMagic)
		}
	}
}

func TestEverySourceHasSPIRV(t *testing.T) {
	want := expectedModules(t)
	if len(want) == 0 {
		t.Fatal("no shaders/*.comp sources found")
	}
	have := Names()
	for name, src := range want {
		if !slices.Contains(have, name) {
			t.Errorf("%s: no spv/%s.spv embedded; run 'make shaders'", src, name)
		}
	}
	for _, name := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("spv/%s.spv has no source *.comp; delete it or run 'make shaders'", name)
		}
	}
}

func TestSPIRVLookup(t *testing.T) {
	a, err := SPIRV("fill")
	if err != nil {
		t.Fatal(err)
	}
	b, err := SPIRV("fill.spv")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error(`SPIRV("fill") and SPIRV("fill.spv") differ`)
	}
	a[0] ^= 0xff // must not corrupt the embedded copy
	if c, _ := SPIRV("fill"); binary.LittleEndian.Uint32(c) != spirvMagic {
		t.Error("SPIRV returned a shared slice")
	}
	_, err = SPIRV("no_such_shader")
	if err == nil || !strings.Contains(err.Error(), "fill") {
		t.Errorf("missing module: err = %v, want an error listing known names", err)
	}
	if _, err := SPIRV("../shaders"); err == nil {
		t.Error("path-like name accepted")
	}
}

// TestHas: Has finds exactly the embedded modules.
func TestHas(t *testing.T) {
	for _, n := range Names() {
		if !Has(n) {
			t.Errorf("Has(%q) = false for an embedded module", n)
		}
	}
	for _, n := range []string{"", "no_such_module", "spv/fill", "../fill", "fill.spv"} {
		if Has(n) {
			t.Errorf("Has(%q) = true", n)
		}
	}
}
