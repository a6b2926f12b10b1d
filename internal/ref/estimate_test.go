package ref

import (
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/share"
)

func sum(x []float64) float64 {
	var s float64
	for _, e := range x {
		s += e
	}
	return s
}

func TestEstimateShapesAndSums(t *testing.T) {
	for _, tc := range []struct{ n, b int }{{300, 16}, {1024, 128}, {2500, 128}, {300, 128}, {100, 128}, {37, 16}} {
		h := RandomHead(tc.n, 8, 1, uint64(tc.n))
		he, err := EstimateHead(h.Q, h.K, EstimateOptions{BlockSize: tc.b, Gamma: 0.9, PooledMap: true, Window: 64})
		if err != nil {
			t.Fatal(err)
		}
		nb := share.NumBlocks(tc.n, tc.b)
		if len(he.V) != nb || len(he.S) != nb || len(he.Pooled) != nb || he.M.NB != nb {
			t.Fatalf("n=%d B=%d: wrong lengths", tc.n, tc.b)
		}
		for name, x := range map[string][]float64{"V": he.V, "S": he.S, "Pooled": he.Pooled} {
			if math.Abs(sum(x)-1) > 1e-12 {
				t.Errorf("n=%d B=%d: %s sums to %v", tc.n, tc.b, name, sum(x))
			}
		}
		for r := 0; r < nb; r++ {
			if s := sum(he.M.Row(r)); math.Abs(s-1) > 1e-12 {
				t.Errorf("M row %d sums to %v", r, s)
			}
			for c := r + 1; c < nb; c++ {
				if he.M.At(r, c) != 0 {
					t.Errorf("M not block-causal at (%d,%d)", r, c)
				}
			}
		}
		w := float64(min(64, tc.n))
		if math.Abs(sum(he.WinV)-w) > 1e-9 || math.Abs(sum(he.WinS)-w) > 1e-9 {
			t.Errorf("window sums %v %v, want %v", sum(he.WinV), sum(he.WinS), w)
		}
		if he.Kv < 1 || he.Kv > tc.n || he.Ks < 1 || he.Ks > tc.n {
			t.Errorf("budgets %d %d out of range", he.Kv, he.Ks)
		}
	}
}

// TestBlockMapRowsSumToOne checks that every causal row of Â sums to 1
// (docs/algorithm.md#notation).
func TestBlockMapRowsSumToOne(t *testing.T) {
	for _, tc := range []struct{ n, b int }{{300, 16}, {1024, 128}, {2500, 128}, {130, 128}} {
		for _, h := range []Head{RandomHead(tc.n, 16, 1, 3), StripeHead(tc.n, 16, tc.n/3, 30, 4), DiagHead(tc.n, 0, 3)} {
			m, err := BlockMap(h.Q, h.K, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			for r := 0; r < m.NB; r++ {
				if s := sum(m.Row(r)); math.Abs(s-1) > 1e-5 {
					t.Fatalf("n=%d B=%d: Â row %d sums to %v", tc.n, tc.b, r, s)
				}
				for c := r + 1; c < m.NB; c++ {
					if m.At(r, c) != 0 {
						t.Fatalf("Â non-causal entry (%d,%d)", r, c)
					}
				}
			}
		}
	}
}

// TestSlashPoolingAlignment documents the pooling when n mod B ≠ 0: V pools
// key columns [c·B, (c+1)·B) and S pools token offsets [o·B, (o+1)·B) from
// the main diagonal upward; the partial chunk is the last one in both.
func TestSlashPoolingAlignment(t *testing.T) {
	n, b := 37, 16 // nb = 3; last chunk holds 5 entries
	x := make([]float64, n)
	for i := range x {
		x[i] = float64(i + 1)
	}
	p := PoolBlocks(x, b)
	want := []float64{136, 392, 175} // Σ1..16, Σ17..32, Σ33..37
	for i := range want {
		if p[i] != want[i] {
			t.Fatalf("PoolBlocks = %v, want %v", p, want)
		}
	}
	// A pure local head (query i attends only key i) puts all its slash
	// mass on token offset 0, hence S[0] = 1, whatever n mod B is.
	h := DiagHead(n, 0, 4)
	he, err := EstimateHead(h.Q, h.K, EstimateOptions{BlockSize: b, Gamma: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if he.S[0] < 0.99 {
		t.Fatalf("local head S = %v, want S[0] ≈ 1", he.S)
	}
	// A slash at token offset 20 lands in offset chunk 20/16 = 1.
	h = DiagHead(n, 20, 4)
	if he, err = EstimateHead(h.Q, h.K, EstimateOptions{BlockSize: b, Gamma: 0.9}); err != nil {
		t.Fatal(err)
	}
	if he.S[1] < 0.9 {
		t.Fatalf("offset-20 head S = %v, want mass in S[1]", he.S)
	}
	// Token offsets o ≥ 32 (chunk 2, partial) exist only for the last rows.
	h = DiagHead(n, 34, 4)
	if he, err = EstimateHead(h.Q, h.K, EstimateOptions{BlockSize: b, Gamma: 0.9}); err != nil {
		t.Fatal(err)
	}
	if he.S[2] < 0.1 {
		t.Fatalf("offset-34 head S = %v, want mass in the partial chunk S[2]", he.S)
	}
}

func TestEstimateGQA(t *testing.T) {
	n, d := 200, 8
	kv := []Head{RandomHead(n, d, 1, 1), StripeHead(n, d, 50, 40, 2)}
	q := [][][]float64{kv[0].Q, kv[0].Q, kv[1].Q, kv[1].Q}
	k := [][][]float64{kv[0].K, kv[1].K}
	for _, layout := range []GQALayout{GQAGrouped, GQAInterleaved} {
		est, err := Estimate(0, q, k, EstimateOptions{BlockSize: 16, Gamma: 0.9, Layout: layout})
		if err != nil {
			t.Fatal(err)
		}
		for h := 0; h < 4; h++ {
			want, _ := EstimateHead(q[h], k[KVHead(h, 4, 2, layout)], EstimateOptions{BlockSize: 16, Gamma: 0.9})
			if share.JSD(est.Heads[h].V, want.V) != 0 {
				t.Fatalf("layout %d head %d uses the wrong KV head", layout, h)
			}
		}
	}
	if KVHead(5, 8, 2, GQAGrouped) != 1 || KVHead(5, 8, 2, GQAInterleaved) != 1 || KVHead(2, 8, 2, GQAInterleaved) != 0 {
		t.Fatal("KVHead mapping")
	}
	if _, err := Estimate(0, q, k[:1][:0], EstimateOptions{BlockSize: 16}); err == nil {
		t.Fatal("want an error for zero KV heads")
	}
}

func TestSparseAttention(t *testing.T) {
	n, d, b := 150, 8, 16
	h := RandomHead(n, d, 1, 9)
	v := RandomHead(n, d, 1, 10).Q
	nb := share.NumBlocks(n, b)
	dense, lseD, err := DenseAttention(h.Q, h.K, v, b)
	if err != nil {
		t.Fatal(err)
	}
	// Full list equals a naive causal softmax.
	for _, i := range []int{0, 17, n - 1} {
		sc := make([]float64, i+1)
		for j := range sc {
			sc[j] = dot(h.Q[i], h.K[j]) / math.Sqrt(float64(d))
		}
		m := math.Inf(-1)
		for _, s := range sc {
			m = max(m, s)
		}
		var z float64
		o := make([]float64, d)
		for j, s := range sc {
			p := math.Exp(s - m)
			z += p
			for e := range o {
				o[e] += p * v[j][e]
			}
		}
		if math.Abs(m+math.Log(z)-lseD[i]) > 1e-12 {
			t.Fatalf("lse row %d", i)
		}
		for e := range o {
			if math.Abs(o[e]/z-dense[i][e]) > 1e-12 {
				t.Fatalf("out row %d", i)
			}
		}
	}
	// A sparse list with only the diagonal: row i sees keys of its block ≤ i.
	diag := share.VSSet{Offs: []int{0}}
	out, lse, err := SparseAttention(h.Q, h.K, v, diag.List(nb), b)
	if err != nil {
		t.Fatal(err)
	}
	if lse[0] != lseD[0] || out[0][0] != dense[0][0] {
		t.Fatal("row 0 sees only key 0 in both")
	}
	if lse[n-1] >= lseD[n-1] {
		t.Fatal("sparse lse must be below dense lse (fewer keys)")
	}
	// Wrong grid is an error.
	if _, _, err := SparseAttention(h.Q, h.K, v, share.DenseList(nb+1), b); err == nil {
		t.Fatal("want grid mismatch error")
	}
}
