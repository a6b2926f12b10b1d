package harness

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
)

// OracleCase is one case written by bench/peers/hf_oracle.py: a model, a
// prompt, and transformers' float32 logits at some positions.
type OracleCase struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // "random" (seeded random weights) or "model" (a trained model on held-out text)
	Shape string `json:"shape"`
	N     int    `json:"n"`
	// Model is the model directory, relative to the case directory.
	Model     string `json:"model"`
	Vocab     int    `json:"vocab"`
	Positions []int  `json:"positions"`
	// NLL asks for the mean NLL over every prediction (trained models).
	NLL bool `json:"nll"`
	// HF holds transformers' own numbers: float16 against float32 on the
	// same inputs (fp16_rel_err, fp16_rel_err_last, fp16_max_abs) and the
	// float32 NLL.
	HF map[string]any `json:"hf"`
	// dir is the case directory.
	dir string
}

// OracleRow compares our logits with transformers' float32 logits for one
// case, next to transformers' float16 error on the same inputs.
type OracleRow struct {
	Case  string `json:"case"`
	Kind  string `json:"kind"`
	Shape string `json:"shape"`
	N     int    `json:"n"`
	// RelErr is ‖ours − fp32‖/‖fp32‖ over the stored positions, RelErrLast
	// the same at the last position, MaxAbs the largest |Δ|.
	RelErr     float64 `json:"rel_err"`
	RelErrLast float64 `json:"rel_err_last"`
	MaxAbs     float64 `json:"max_abs"`
	// HFFP16RelErr is transformers float16 against float32 (the control).
	HFFP16RelErr *float64 `json:"hf_fp16_rel_err,omitempty"`
	// NLL is our mean NLL over every prediction, HFNLL transformers' in
	// float32 (trained models only).
	NLL   *float64 `json:"nll,omitempty"`
	HFNLL *float64 `json:"hf_fp32_nll,omitempty"`
	// Pass says whether RelErr is within the tolerance of the kind.
	Pass bool    `json:"pass"`
	Tol  float64 `json:"tol"`
}

// OracleResults are the results of RunOracle.
type OracleResults struct {
	Dir  string      `json:"dir"`
	Rows []OracleRow `json:"oracle"`
}

// OracleParams configures RunOracle.
type OracleParams struct {
	Dir    string `json:"dir"`
	Device string `json:"device,omitempty"`
	// TolRandom and TolModel are the largest accepted relative errors for
	// random-weight and trained models (defaults 0.1 and 1e-3).
	TolRandom float64                          `json:"tol_random"`
	TolModel  float64                          `json:"tol_model"`
	Logf      func(format string, args ...any) `json:"-"`
}

// ReadOracleCases lists the cases of an hf_oracle.py directory, by name.
func ReadOracleCases(dir string) ([]OracleCase, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	var cases []OracleCase
	for _, e := range entries {
		p := filepath.Join(dir, e.Name(), "case.json")
		b, err := os.ReadFile(p)
		if err != nil {
			continue // models/ and other folders
		}
		var c OracleCase
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("oracle: %s: %w", p, err)
		}
		if c.Name == "" {
			c.Name = e.Name()
		}
		if c.N < 1 || len(c.Positions) == 0 || c.Vocab < 1 || c.Model == "" {
			return nil, fmt.Errorf("oracle: %s: needs n, positions, vocab and model", p)
		}
		for _, q := range c.Positions {
			if q < 0 || q >= c.N {
				return nil, fmt.Errorf("oracle: %s: position %d outside [0, %d)", p, q, c.N)
			}
		}
		c.dir = filepath.Join(dir, e.Name())
		c.Model = filepath.Join(c.dir, c.Model)
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("oracle: no case directories (with case.json) in %s", dir)
	}
	sort.Slice(cases, func(i, j int) bool {
		if cases[i].Shape != cases[j].Shape {
			return cases[i].Shape < cases[j].Shape
		}
		return cases[i].N < cases[j].N
	})
	return cases, nil
}

// RunOracle runs our engine (dense attention) on every case of an
// hf_oracle.py directory and compares its logits at the stored positions
// with transformers' float32 logits.
func RunOracle(ctx context.Context, p OracleParams) (*Report, error) {
	if p.TolRandom == 0 {
		p.TolRandom = 0.1
	}
	if p.TolModel == 0 {
		p.TolModel = 1e-3
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cases, err := ReadOracleCases(p.Dir)
	if err != nil {
		return nil, err
	}
	dev, err := runtime.Open(runtime.Options{Device: p.Device})
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	res := &OracleResults{Dir: p.Dir}
	rep := NewReport("oracle", DeviceOf(dev), p)
	rep.Results = res
	rep.Notef("relative error ‖ours − transformers fp32‖/‖transformers fp32‖ over the stored positions (all up to 128 tokens, else 128 evenly spaced with the last); the control is transformers fp16 against fp32 on the same inputs and the same bf16 weights; ours: f16 weights and activations, f32 accumulation, dense attention")
	// One engine per model, sized for its longest case.
	longest := map[string]int{}
	for _, c := range cases {
		longest[c.Model] = max(longest[c.Model], c.N)
	}
	var (
		cur  string
		eng  *model.Engine
		cfg  *model.Config
		done = func() {
			if eng != nil {
				eng.Close()
				eng = nil
			}
		}
	)
	defer done()
	for _, c := range cases {
		if c.Model != cur {
			done()
			if cfg, err = model.LoadConfig(c.Model); err != nil {
				return rep, fmt.Errorf("oracle %s: %w", c.Name, err)
			}
			ck, err := model.OpenCheckpoint(c.Model)
			if err != nil {
				return rep, fmt.Errorf("oracle %s: %w", c.Name, err)
			}
			eng, err = model.NewEngine(dev, cfg, ck, model.EngineOptions{Context: longest[c.Model]})
			ck.Close()
			if err != nil {
				return rep, fmt.Errorf("oracle %s: %w", c.Name, err)
			}
			cur = c.Model
		}
		row, err := oracleCase(ctx, eng, cfg, c)
		if err != nil {
			return rep, fmt.Errorf("oracle %s: %w", c.Name, err)
		}
		row.Tol = p.TolRandom
		if c.Kind == "model" {
			row.Tol = p.TolModel
		}
		row.Pass = row.RelErr <= row.Tol
		logf("oracle: %s: rel err %.4g (transformers fp16 %v)", c.Name, row.RelErr, deref(row.HFFP16RelErr))
		res.Rows = append(res.Rows, row)
	}
	return rep, nil
}

func deref(x *float64) any {
	if x == nil {
		return "–"
	}
	return *x
}

func hfFloat(m map[string]any, k string) *float64 {
	if v, ok := m[k].(float64); ok {
		return &v
	}
	return nil
}

// oracleCase runs one case on eng.
func oracleCase(ctx context.Context, eng *model.Engine, cfg *model.Config, c OracleCase) (OracleRow, error) {
	row := OracleRow{Case: c.Name, Kind: c.Kind, Shape: c.Shape, N: c.N, HFFP16RelErr: hfFloat(c.HF, "fp16_rel_err"), HFNLL: hfFloat(c.HF, "fp32_nll")}
	var ids []int
	b, err := os.ReadFile(filepath.Join(c.dir, "ids.json"))
	if err != nil {
		return row, err
	}
	if err := json.Unmarshal(b, &ids); err != nil {
		return row, fmt.Errorf("ids.json: %w", err)
	}
	if len(ids) != c.N {
		return row, fmt.Errorf("ids.json has %d tokens, case.json says %d", len(ids), c.N)
	}
	v := cfg.VocabSize
	if v != c.Vocab {
		return row, fmt.Errorf("vocab %d in config.json, %d in case.json", v, c.Vocab)
	}
	raw, err := os.ReadFile(filepath.Join(c.dir, "ref_logits.f32"))
	if err != nil {
		return row, err
	}
	if len(raw) != 4*len(c.Positions)*v {
		return row, fmt.Errorf("ref_logits.f32 has %d bytes, want %d", len(raw), 4*len(c.Positions)*v)
	}
	slot := map[int]int{}
	for i, q := range c.Positions {
		slot[q] = i
	}
	last := c.Positions[len(c.Positions)-1]
	var num, den, lnum, lden, nll float64
	eng.Reset()
	err = eng.PrefillAll(ctx, ids, func(pos int, logits []float32) {
		if c.NLL && pos+1 < len(ids) {
			nll -= model.LogProb(logits, ids[pos+1])
		}
		i, ok := slot[pos]
		if !ok {
			return
		}
		for j, x := range logits {
			ref := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*v+j):])))
			d := float64(x) - ref
			num += d * d
			den += ref * ref
			if pos == last {
				lnum += d * d
				lden += ref * ref
			}
			if math.IsNaN(d) {
				row.MaxAbs = math.Inf(1)
			} else {
				row.MaxAbs = math.Max(row.MaxAbs, math.Abs(d))
			}
		}
	})
	if err != nil {
		return row, err
	}
	row.RelErr, row.RelErrLast = math.Sqrt(num/den), math.Sqrt(lnum/lden)
	if c.NLL && len(ids) > 1 {
		x := nll / float64(len(ids)-1)
		row.NLL = &x
	}
	return row, nil
}

// OracleTables renders an oracle report.
func OracleTables(res *OracleResults) []*Table {
	t := &Table{Title: "Logits against transformers float32 (the control: transformers float16 on the same inputs)",
		Header: []string{"case", "kind", "tokens", "ours: rel err", "transformers fp16: rel err", "ours / fp16", "ours, last position", "max |Δ|", "NLL ours", "NLL transformers fp32", "within tol"},
		Foot:   "rel err = ‖x − fp32‖/‖fp32‖ over the stored positions; tolerance 0.1 for random weights (reported for the trend), 1e-3 for trained models."}
	for _, r := range res.Rows {
		fp16, ratio, nll, hfnll := "–", "–", "–", "–"
		if r.HFFP16RelErr != nil {
			fp16 = fmt.Sprintf("%.4g", *r.HFFP16RelErr)
			ratio = f(r.RelErr / *r.HFFP16RelErr, 2)
		}
		if r.NLL != nil {
			nll = f(*r.NLL, 4)
		}
		if r.HFNLL != nil {
			hfnll = f(*r.HFNLL, 4)
		}
		pass := "yes"
		if !r.Pass {
			pass = fmt.Sprintf("NO (> %g)", r.Tol)
		}
		t.Add(r.Case, r.Kind, fmt.Sprint(r.N), fmt.Sprintf("%.4g", r.RelErr), fp16, ratio, fmt.Sprintf("%.4g", r.RelErrLast), fmt.Sprintf("%.3g", r.MaxAbs), nll, hfnll, pass)
	}
	return []*Table{t}
}
