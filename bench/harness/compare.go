package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// RawReport is a Report whose results are kept raw (ours or a peer's).
type RawReport struct {
	Bench   string          `json:"bench"`
	Impl    string          `json:"impl"`
	Device  Device          `json:"device"`
	Commit  string          `json:"commit"`
	Date    string          `json:"date"`
	Params  json.RawMessage `json:"params"`
	Results json.RawMessage `json:"results"`
	Notes   []string        `json:"notes"`
	File    string          `json:"-"`
}

// ReadReport reads a report file (ours or a peer's).
func ReadReport(path string) (*RawReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r RawReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Bench == "" || len(r.Results) == 0 {
		return nil, fmt.Errorf("%s: not a benchmark report (no bench or results)", path)
	}
	r.File = path
	return &r, nil
}

// peerAttnRow is the part of an attention row Compare reads; ours
// (AttnRow) and bench/peers/sdpa_flex.py's share these names.
type peerAttnRow struct {
	Kind            string  `json:"kind"`
	N               int     `json:"n"`
	Density         float64 `json:"density"`
	ComputedDensity float64 `json:"computed_density"`
	Median          float64 `json:"median_ms"`
	TFLOPsDenseEq   float64 `json:"tflops_dense_eq"`
	Mask            string  `json:"mask"`
	Note            string  `json:"note"`
}

type peerPrefillRow struct {
	Method string  `json:"method"`
	N      int     `json:"n"`
	Median float64 `json:"median_ms"`
	Note   string  `json:"note"`
}

func ratio(ours, theirs float64) string {
	if ours <= 0 || theirs <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", ours/theirs)
}

// Compare joins our reports with the peers' and renders side-by-side
// tables: time ratios ours/theirs (below 1: ours is faster).
//
//   - kernels: our dense flash attention vs every peer kind run dense
//     (sdpa) at the same n; our sparse kernel vs the peer's sparse run
//     (flex) on the same mask (n, density).
//   - prefill: every method of ours vs every peer method at the same n.
func Compare(reports []*RawReport) ([]*Table, error) {
	var ours, peers []*RawReport
	for _, r := range reports {
		if r.Impl == "shareprefill" {
			ours = append(ours, r)
		} else {
			peers = append(peers, r)
		}
	}
	if len(ours) == 0 || len(peers) == 0 {
		return nil, fmt.Errorf("compare: need at least one report of ours (impl shareprefill) and one of a peer")
	}
	var tables []*Table
	src := &Table{Title: "Reports", Header: []string{"file", "bench", "impl", "device", "driver", "commit", "date"}}
	for _, r := range reports {
		src.Add(r.File, r.Bench, r.Impl, r.Device.Name, strings.TrimSpace(r.Device.Driver+" "+r.Device.DriverVersion), r.Commit, r.Date)
	}
	tables = append(tables, src)
	for _, o := range ours {
		for _, p := range peers {
			if o.Bench != p.Bench {
				continue
			}
			var t *Table
			var err error
			switch o.Bench {
			case "kernels":
				t, err = compareKernels(o, p)
			case "prefill":
				t, err = comparePrefill(o, p)
			}
			if err != nil {
				return nil, err
			}
			if t != nil {
				tables = append(tables, t)
			}
		}
	}
	if len(tables) == 1 {
		return nil, fmt.Errorf("compare: no report of ours matches a peer's benchmark (kernels or prefill)")
	}
	return tables, nil
}

func compareKernels(o, p *RawReport) (*Table, error) {
	var or, pr struct {
		Attention []peerAttnRow `json:"attention"`
	}
	if err := json.Unmarshal(o.Results, &or); err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}
	if err := json.Unmarshal(p.Results, &pr); err != nil {
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	t := &Table{Title: fmt.Sprintf("Attention: ours (%s) vs %s (%s)", o.Device.Name, p.Impl, p.Device.Name),
		Header: []string{"n", "density", "ours", "ours ms", "peer", "peer ms", "time ratio ours/peer", "ours TFLOP/s dense-eq", "peer TFLOP/s dense-eq"},
		Foot:   "time ratio below 1: ours is faster. Sparse rows compare the same exported mask (n, density)."}
	for _, a := range or.Attention {
		for _, b := range pr.Attention {
			if a.N != b.N {
				continue
			}
			sameDense := a.Kind == "dense" && b.Density >= 1 && !isSparsePeer(b.Kind)
			sameMask := a.Kind == "sparse" && isSparsePeer(b.Kind) && (a.Mask != "" && a.Mask == b.Mask || a.Mask == "" && a.Density == b.Density)
			if !sameDense && !sameMask {
				continue
			}
			t.Add(fmt.Sprint(a.N), f(a.Density, 2), a.Kind, f(a.Median, 3), b.Kind, f(b.Median, 3), ratio(a.Median, b.Median),
				f(a.TFLOPsDenseEq, 1), f(b.TFLOPsDenseEq, 1))
		}
	}
	if len(t.Rows) == 0 {
		return nil, nil
	}
	return t, nil
}

// isSparsePeer: peer kinds that run a block mask.
func isSparsePeer(kind string) bool {
	return strings.HasPrefix(kind, "flex") || strings.Contains(kind, "sparse")
}

func comparePrefill(o, p *RawReport) (*Table, error) {
	var or, pr struct {
		Model string           `json:"model"`
		Rows  []peerPrefillRow `json:"prefill"`
	}
	if err := json.Unmarshal(o.Results, &or); err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}
	if err := json.Unmarshal(p.Results, &pr); err != nil {
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	if or.Model != "" && pr.Model != "" && filepath.Base(filepath.Clean(or.Model)) != filepath.Base(filepath.Clean(pr.Model)) {
		return nil, nil // different models
	}
	peerMethods := methodsOf(pr.Rows, func(r peerPrefillRow) string { return r.Method })
	h := []string{"n", "ours", "ours ms"}
	for _, m := range peerMethods {
		h = append(h, m+" ms", "ours/"+m)
	}
	t := &Table{Title: fmt.Sprintf("Prefill: ours (%s) vs %s (%s)", o.Device.Name, p.Impl, p.Device.Name), Header: h,
		Foot: "time ratio below 1: ours is faster; every row is the whole prefill of the same model and length"}
	for _, a := range or.Rows {
		cells := []string{fmt.Sprint(a.N), a.Method, f(a.Median, 2)}
		found := false
		for _, m := range peerMethods {
			i := slices.IndexFunc(pr.Rows, func(b peerPrefillRow) bool { return b.Method == m && b.N == a.N })
			if i < 0 {
				cells = append(cells, "–", "–")
				continue
			}
			found = true
			cells = append(cells, f(pr.Rows[i].Median, 2), ratio(a.Median, pr.Rows[i].Median))
		}
		if found {
			t.Add(cells...)
		}
	}
	if len(t.Rows) == 0 {
		return nil, nil
	}
	return t, nil
}
