// Package shaders embeds the project's precompiled SPIR-V compute shaders.
//
// Layout:
//
//	shaders/*.comp      GLSL 450 compute shader sources (hand-written)
//	shaders/spv/*.spv   SPIR-V compiled from them, committed and embedded
//
// The .spv files are generated; do not edit them. After changing a .comp run
//
//	make tools     # once: private glslang 15 + SPIRV-Tools in .tools/
//	make shaders   # compile every shaders/*.comp into shaders/spv/
//
// and commit both files; `make check-shaders` (run by CI) fails when a
// committed .spv differs from its source. Shaders compile with
// glslangValidator -V -g0 --target-env vulkan1.2, or vulkan1.3 for
// cooperative-matrix shaders (names containing _cm1/_cm2, or sources that
// enable GL_KHR_cooperative_matrix / GL_NV_cooperative_matrix2), and are
// checked with spirv-val.
//
// A source may build several modules: a header line
//
//	// variants: matmul_f16=-DFLOAT16 matmul_f32=
//
// produces spv/matmul_f16.spv and spv/matmul_f32.spv (comma-separated -D/-U
// options after '='). Without it, X.comp produces spv/X.spv. Modules are
// looked up by that name, without the .spv suffix.
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed spv/*.spv
var spvFS embed.FS

// SPIRV returns the SPIR-V module name (e.g. "fill"; a trailing ".spv" is
// accepted). Each call returns a fresh copy. When the module is missing the
// error lists the known names.
func SPIRV(name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".spv")
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("shaders: invalid shader name %q", name)
	}
	b, err := spvFS.ReadFile("spv/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shaders: no SPIR-V module %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Has reports whether a module of that name (without the .spv suffix) is
// embedded.
func Has(name string) bool {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return false
	}
	_, err := fs.Stat(spvFS, "spv/"+name+".spv")
	return err == nil
}

// Names returns the names of all embedded modules, sorted.
func Names() []string {
	ents, err := fs.ReadDir(spvFS, "spv")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".spv"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
