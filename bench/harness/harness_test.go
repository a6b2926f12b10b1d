package harness

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

func TestRandomMask(t *testing.T) {
	for _, tc := range []struct {
		n, block, hq int
		density      float64
	}{
		{1, 128, 1, 0.5}, {128, 128, 2, 0.5}, {129, 128, 3, 0.1}, {1000, 8, 4, 0.2}, {4096, 128, 2, 0.05}, {777, 16, 3, 1},
	} {
		m := RandomMask(7, tc.n, tc.block, tc.hq, tc.density)
		if err := m.Validate(); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		nb := NumBlocks(tc.n, tc.block)
		if m.NB != nb || len(m.RowPtr) != tc.hq*nb+1 {
			t.Fatalf("%+v: nb %d, %d row pointers", tc, m.NB, len(m.RowPtr))
		}
		for i := 0; i < tc.hq*nb; i++ {
			r := i % nb
			row := m.Cols[m.RowPtr[i]:m.RowPtr[i+1]]
			if row[0] != 0 || int(row[len(row)-1]) != r {
				t.Fatalf("%+v: row %d = %v lacks column 0 or the diagonal", tc, r, row)
			}
			want := min(r+1, max(int(math.Round(tc.density*float64(r+1))), min(r+1, 2)))
			if tc.density >= 1 {
				want = r + 1
			}
			if len(row) != want {
				t.Fatalf("%+v: row %d lists %d blocks, want %d", tc, r, len(row), want)
			}
		}
		total, diag := m.Blocks()
		if diag != tc.hq*nb || total != len(m.Cols) {
			t.Fatalf("%+v: blocks %d diag %d", tc, total, diag)
		}
		if tc.density >= 1 && m.ComputedDensity() != 1 {
			t.Fatalf("density 1 gives computed density %v", m.ComputedDensity())
		}
		if nb >= 16 && tc.density < 1 {
			if cd := m.ComputedDensity(); math.Abs(cd-tc.density) > 0.1+2/float64(nb) {
				t.Fatalf("%+v: computed density %v far from %v", tc, cd, tc.density)
			}
		}
		again := RandomMask(7, tc.n, tc.block, tc.hq, tc.density)
		if !slices.Equal(again.Cols, m.Cols) || !slices.Equal(again.RowPtr, m.RowPtr) {
			t.Fatalf("%+v: not deterministic", tc)
		}
		// FLOPs: at density 1 the actual count is the causal-halved dense one
		// up to the diagonal blocks' halves (exact when n is a block multiple).
		if tc.density >= 1 && tc.n%tc.block == 0 {
			d := 64
			got, want := m.ActualFLOPs(d), 4*float64(tc.block*tc.block)*float64(d)*float64(tc.hq)*(float64(nb*(nb-1))/2+0.5*float64(nb))
			if got != want {
				t.Fatalf("actual FLOPs %v, want %v", got, want)
			}
			if r := got / DenseFLOPs(tc.hq, tc.n, d); math.Abs(r-1) > 1e-12 {
				t.Fatalf("dense-equivalent ratio %v at density 1", r)
			}
		}
	}
	// Different densities or seeds give different masks.
	a, b := RandomMask(1, 2048, 128, 2, 0.3), RandomMask(2, 2048, 128, 2, 0.3)
	if slices.Equal(a.Cols, b.Cols) {
		t.Fatal("seeds 1 and 2 gave the same mask")
	}
}

func TestMaskValidateRejects(t *testing.T) {
	m := RandomMask(1, 512, 128, 1, 1)
	m.Cols[len(m.Cols)-1] = 5 // a future block
	if m.Validate() == nil {
		t.Fatal("a non-causal column passed")
	}
	m = RandomMask(1, 512, 128, 1, 1)
	m.RowPtr[2] = m.RowPtr[1] - 1
	if m.Validate() == nil {
		t.Fatal("decreasing row pointers passed")
	}
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 5, 1000} {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(i*i) - 7
		}
		p := filepath.Join(dir, "a.npy")
		if err := WriteNPYInt32(p, v); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(p)
		hl := int(raw[8]) | int(raw[9])<<8
		if (10+hl)%64 != 0 || raw[10+hl-1] != '\n' || !bytes.HasPrefix(raw, []byte("\x93NUMPY\x01\x00")) {
			t.Fatalf("n=%d: bad header (len %d): %q", n, hl, raw[:10+hl])
		}
		if len(raw) != 10+hl+4*n {
			t.Fatalf("n=%d: file has %d bytes", n, len(raw))
		}
		got, err := ReadNPYInt32(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, v) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 4, 2, 3})
	if s.Median != 3 || s.Min != 1 || s.N != 5 || math.Abs(s.P20-1.8) > 1e-12 || math.Abs(s.P80-4.2) > 1e-12 {
		t.Fatalf("%+v", s)
	}
	if s := Summarize([]float64{2, 4}); s.Median != 3 {
		t.Fatalf("even median %+v", s)
	}
	if s := Summarize(nil); !math.IsNaN(s.Median) {
		t.Fatalf("empty %+v", s)
	}
}

func TestParse(t *testing.T) {
	if v, err := ParseInts("4096, 8k,16K"); err != nil || !slices.Equal(v, []int{4096, 8192, 16384}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"", "0", "-4", "x", "4q"} {
		if _, err := ParseInts(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if v, err := ParseFloats("1,0.5, 0.05", 1e-6, 1); err != nil || !slices.Equal(v, []float64{1, 0.5, 0.05}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"0", "1.5", "nan", "a"} {
		if _, err := ParseFloats(bad, 1e-6, 1); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if v, err := ParseWeightTypes("f16, q4_k,Q6_K,q4_k"); err != nil || !slices.Equal(v, []string{"f16", "q4_k", "q6_k"}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"", "q4_k,q3_k", "f32"} {
		if _, err := ParseWeightTypes(bad); err == nil {
			t.Fatalf("weight types %q accepted", bad)
		}
	}
	if v, err := ParseShapes("4096x14336, 14kx4k"); err != nil || !slices.Equal(v, []MatShape{{"m4096_k14336", 4096, 14336}, {"m14336_k4096", 14336, 4096}}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"", "4096", "4096x", "0x256", "ax256"} {
		if _, err := ParseShapes(bad); err == nil {
			t.Fatalf("shapes %q accepted", bad)
		}
	}
	// The by-type matmuls want K a multiple of 256 and row counts.
	p := KernelParams{Reps: 1, MatMulTypes: []string{"q4_k"}, QuantShapes: []MatShape{{"x", 8, 96}}, QuantM: []int{1}}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "--quant-shapes") {
		t.Fatalf("K=96: %v", err)
	}
	p.QuantShapes, p.QuantM = []MatShape{{"x", 8, 256}}, nil
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "--quant-m") {
		t.Fatalf("no M: %v", err)
	}
	if err := (&KernelParams{Reps: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "nothing to time") {
		t.Fatalf("empty params: %v", err)
	}
}

// byteEnc is a stand-in tokenizer: one token per byte, plus BOS.
func byteEnc(s string) []int { return make([]int, len(s)+1) }

func TestTaskBuilders(t *testing.T) {
	const n = 3000
	for _, depth := range []float64{0, 0.5, 1} {
		pk, err := buildPasskey(byteEnc, 3, n, n-8, depth, 0)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Tokens > n-8 || pk.Tokens < n-8-len(passkeyNoise)-2 || len(pk.Answer) != 5 {
			t.Fatalf("passkey depth %v: %d tokens for budget %d, answer %q", depth, pk.Tokens, n-8, pk.Answer)
		}
		kv, err := buildKV(byteEnc, 3, n, n-40, depth, 0)
		if err != nil {
			t.Fatal(err)
		}
		if kv.Tokens > n-40 || kv.Tokens < n-40-90 || len(kv.Answer) != 36 {
			t.Fatalf("kv depth %v: %d tokens, answer %q", depth, kv.Tokens, kv.Answer)
		}
	}
	// The needle lands at the requested depth, and samples are reproducible.
	var texts []string
	enc := func(s string) []int { texts = append(texts, s); return byteEnc(s) }
	s, _ := buildPasskey(enc, 9, n, n-8, 0.5, 1)
	last := texts[len(texts)-1]
	for _, x := range texts {
		if len(x)+1 == s.Tokens {
			last = x
		}
	}
	needle := strings.ReplaceAll(passkeyNeedle, "{key}", s.Answer)
	at := strings.Index(last, needle)
	if at < 0 {
		t.Fatal("needle missing")
	}
	if frac := float64(at) / float64(len(last)); math.Abs(frac-0.5) > 0.05 {
		t.Fatalf("needle at %.2f of the prompt, want 0.5", frac)
	}
	if !strings.HasSuffix(last, passkeyQuestion) || !strings.HasPrefix(last, passkeyPrompt) {
		t.Fatal("prompt or question missing")
	}
	s2, _ := buildPasskey(byteEnc, 9, n, n-8, 0.5, 1)
	s3, _ := buildPasskey(byteEnc, 9, n, n-8, 0.5, 2)
	if s2.Answer != s.Answer || s3.Answer == s.Answer {
		t.Fatal("samples are not reproducible per (seed, trial)")
	}
	if _, err := buildPasskey(byteEnc, 1, 100, 92, 0, 0); err == nil {
		t.Fatal("a budget below one unit was accepted")
	}
}

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		task, out, ans string
		want           bool
	}{
		{"passkey", " 12345. Remember", "12345", true},
		{"passkey", " 1234", "12345", false},
		{"passkey", "no digits", "12345", false},
		{"passkey", " 123456", "12345", false},
		{"kv", ` "a1b2-c3": done`, "a1b2-c3", true},
		{"kv", `a1b2-c3x`, "a1b2-c3", false},
	} {
		if got := Score(tc.task, tc.out, tc.ans); got != tc.want {
			t.Errorf("Score(%s, %q, %q) = %v", tc.task, tc.out, tc.ans, got)
		}
	}
}

func TestCompare(t *testing.T) {
	ours := &Report{Bench: "kernels", Impl: "shareprefill", Device: Device{Name: "gpu"}, Results: &KernelResults{Attention: []AttnRow{
		{Kind: "dense", N: 4096, Density: 1, Stat: Stat{Median: 2}},
		{Kind: "sparse", N: 4096, Density: 0.5, Mask: MaskName(4096, 0.5), Stat: Stat{Median: 1}},
	}}}
	peer := map[string]any{"bench": "kernels", "impl": "torch", "device": map[string]any{"name": "gpu"},
		"results": map[string]any{"attention": []map[string]any{
			{"kind": "sdpa", "n": 4096, "density": 1, "median_ms": 1.0},
			{"kind": "flex", "n": 4096, "density": 0.5, "mask": MaskName(4096, 0.5), "median_ms": 0.5},
			{"kind": "flex", "n": 8192, "density": 0.5, "mask": MaskName(8192, 0.5), "median_ms": 0.5},
		}}}
	dir := t.TempDir()
	if err := ours.WriteJSON(filepath.Join(dir, "ours.json")); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(peer)
	os.WriteFile(filepath.Join(dir, "peer.json"), b, 0o644)
	var reps []*RawReport
	for _, f := range []string{"ours.json", "peer.json"} {
		r, err := ReadReport(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	tables, err := Compare(reps)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || len(tables[1].Rows) != 2 {
		t.Fatalf("tables %+v", tables)
	}
	for _, row := range tables[1].Rows {
		if row[6] != "2.00" {
			t.Fatalf("ratio %q in %v, want 2.00", row[6], row)
		}
	}
	if _, err := Compare(reps[:1]); err == nil {
		t.Fatal("compare without a peer succeeded")
	}
}

func TestTablesAndPlots(t *testing.T) {
	res := &PrefillResults{Rows: []PrefillRow{
		{Method: "dense", N: 1024, Stat: Stat{Median: 10}, SpeedupVsDense: 1, AttnSummary: AttnSummary{Density: 1}},
		{Method: "flex", N: 1024, Stat: Stat{Median: 5}, SpeedupVsDense: 2, AttnSummary: AttnSummary{Density: 0.3, HeadsPerMethod: map[string]int{"vs": 3, "query-aware": 1}}},
		{Method: "dense", N: 4096, Stat: Stat{Median: 80}, SpeedupVsDense: 1},
	}}
	md := Markdown(NewReport("prefill", Device{Name: "x"}, nil), PrefillTables(res))
	for _, want := range []string{"| 1024 | 10.00 | 5.00 (2.00×) |", "| 4096 | 80.00 | – |", "query-aware 1, vs 3"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
	specs := PrefillPlots(res)
	if len(specs) != 2 || drawable(specs) != 2 {
		t.Fatalf("prefill plots %+v, want latency and speed-up", specs)
	}
	for _, se := range specs[0].Series {
		if want := map[string]int{"dense": 2, "flex": 1}[se.Name]; len(se.Pts) != want {
			t.Errorf("latency series %s has %d points, want %d", se.Name, len(se.Pts), want)
		}
	}
}

// drawable counts the specs with a point to draw (those plots.DrawAll
// writes).
func drawable(specs []PlotSpec) int {
	n := 0
	for _, s := range specs {
		if slices.ContainsFunc(s.Series, func(se Series) bool { return len(se.Pts) > 0 }) {
			n++
		}
	}
	return n
}

func TestComparePrefill(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) *RawReport {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		r, err := ReadReport(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ours := write("ours.json", &Report{Bench: "prefill", Impl: "shareprefill", Results: &PrefillResults{Model: "/a/m8b/", Rows: []PrefillRow{
		{Method: "dense", N: 1024, Stat: Stat{Median: 3}}, {Method: "flex", N: 1024, Stat: Stat{Median: 1}}, {Method: "dense", N: 99, Stat: Stat{Median: 1}}}}})
	hf := write("hf.json", map[string]any{"bench": "prefill", "impl": "transformers", "results": map[string]any{"model": "other/m8b",
		"prefill": []map[string]any{{"method": "hf-sdpa-bf16", "n": 1024, "median_ms": 2.0}}}})
	other := write("other.json", map[string]any{"bench": "prefill", "impl": "transformers", "results": map[string]any{"model": "bench-lm-8k",
		"prefill": []map[string]any{{"method": "hf-sdpa-bf16", "n": 1024, "median_ms": 2.0}}}})
	tables, err := Compare([]*RawReport{ours, hf, other})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || len(tables[1].Rows) != 2 {
		t.Fatalf("want one prefill table with 2 rows (the other model is not joined): %+v", tables)
	}
	if got := tables[1].Rows[0]; got[1] != "dense" || got[4] != "1.50" || tables[1].Rows[1][4] != "0.50" {
		t.Fatalf("rows %v", tables[1].Rows)
	}
}

// TestStampedCommit: the revision stamped into a binary names the
// measured code (short, "+dirty" when modified); without one, none.
func TestStampedCommit(t *testing.T) {
	for _, c := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.modified", Value: "true"}}, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "42d46ec0123456789abcdef"}, {Key: "vcs.modified", Value: "false"}}, "42d46ec"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "65294dbffff"}}, "65294db+dirty"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "abc"},
	} {
		if got := stampedCommit(c.settings); got != c.want {
			t.Errorf("stampedCommit(%v) = %q, want %q", c.settings, got, c.want)
		}
	}
	// A test binary carries no stamp, so the variable decides.
	t.Setenv("SHAREPREFILL_COMMIT", "given")
	if got := Commit(); got != "given" {
		t.Errorf("Commit() with SHAREPREFILL_COMMIT = %q, want given", got)
	}
}
