package harness

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// OracleCase is one case of an oracle directory: a model, a prompt, and
// the reference's logits at some positions. bench/peers/hf_oracle.py
// writes cases of kind "random" and "model" (transformers float32 on a
// safetensors model); bench/peers/llamacpp-oracle.sh writes cases of kind
// "llamacpp" (llama.cpp on the CPU, on a GGUF file), which may also carry a
// greedy continuation, the text the ids were tokenised from, or, instead
// of logits, perplexity windows.
type OracleCase struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // "random" (seeded random weights), "model" (a trained model on held-out text) or "llamacpp"
	Shape string `json:"shape"`
	N     int    `json:"n"`
	// Model is the model directory or GGUF file, relative to the case
	// directory.
	Model     string `json:"model"`
	Vocab     int    `json:"vocab"`
	Positions []int  `json:"positions"`
	// NLL asks for the mean NLL over every prediction (trained models).
	NLL bool `json:"nll"`
	// HF holds transformers' own numbers: float16 against float32 on the
	// same inputs (fp16_rel_err, fp16_rel_err_last, fp16_max_abs) and the
	// float32 NLL.
	HF map[string]any `json:"hf"`
	// Greedy is the reference's greedy continuation of the ids (argmax,
	// lowest id on ties); greedy_logits.f32 beside case.json, if present,
	// holds the logits each of its tokens was taken from.
	Greedy []int `json:"greedy,omitempty"`
	// Text, if set, is the file (relative to the case directory) whose
	// text the reference tokenised into the ids: ours tokenises it too and
	// the ids are compared (the comparison itself runs on the reference's
	// ids).
	Text string `json:"text,omitempty"`
	// Source describes where the ids came from, for reports (hf_oracle.py:
	// "held-out Go files (first n tokens)").
	Source string `json:"source,omitempty"`
	// PPL, if set, makes this a perplexity case: no stored logits; the ids
	// are the token stream the windows are cut from.
	PPL *OraclePPL `json:"ppl,omitempty"`
	// dir is the case directory.
	dir string
}

// OraclePPL describes a reference perplexity run in llama-perplexity's
// rule: window w is ids[w·Window : (w+1)·Window] with its first token
// replaced by BOS (when BOS ≥ 0), prefilled on an empty cache, and the
// predictions of positions First … Window−2 are scored.
type OraclePPL struct {
	Window int `json:"window"`
	First  int `json:"first"`
	BOS    int `json:"bos"`
	// WindowNLL is the reference's summed NLL (natural log) of each
	// window's scored predictions, in order.
	WindowNLL []float64 `json:"window_nll"`
	// RefPPL is the reference's perplexity over every window, as it
	// printed it.
	RefPPL float64 `json:"ref_ppl"`
}

// OracleRow compares our logits with the reference's for one case, next
// to transformers' float16 error on the same inputs (transformers cases),
// or our greedy tokens and perplexity with llama.cpp's (llama.cpp cases).
type OracleRow struct {
	Case  string `json:"case"`
	Kind  string `json:"kind"`
	Shape string `json:"shape"`
	N     int    `json:"n"`
	// Weights says how our engine held the GGUF file's quantized matrices:
	// "quantized" (on the device as they are) or "f16" (dequantized to
	// f16 at load); "file's own" for a GGUF file that has none on the
	// device, "" for safetensors models.
	Weights string `json:"weights,omitempty"`
	// RelErr is ‖ours − ref‖/‖ref‖ (Euclidean norms) over all the stored
	// positions together, RelErrLast the same at the last position,
	// RelErrWorst the largest per-position value, MaxAbs the largest |Δ|.
	RelErr      float64 `json:"rel_err"`
	RelErrLast  float64 `json:"rel_err_last"`
	RelErrWorst float64 `json:"rel_err_worst"`
	MaxAbs      float64 `json:"max_abs"`
	// ExactRef and ExactOurs, with OracleParams.Control, are the
	// reference's and our rel err against the control's logits (the tests'
	// control: the float64 forward pass of the GGUF file's own weights,
	// exactly dequantized), over the same positions: which side a
	// difference comes from.
	ExactRef  *float64 `json:"exact_rel_err_ref,omitempty"`
	ExactOurs *float64 `json:"exact_rel_err_ours,omitempty"`
	// ArgmaxSame counts the Stored positions whose argmax is the
	// reference's.
	ArgmaxSame int `json:"argmax_same"`
	Stored     int `json:"stored"`
	// HFFP16RelErr is transformers float16 against float32 (the control).
	HFFP16RelErr *float64 `json:"hf_fp16_rel_err,omitempty"`
	// NLL is our mean NLL over every prediction, HFNLL transformers' in
	// float32 (trained models only).
	NLL   *float64 `json:"nll,omitempty"`
	HFNLL *float64 `json:"hf_fp32_nll,omitempty"`
	// Greedy compares greedy continuations: GreedySame is the length of
	// the common prefix of ours and the reference's (GreedyN tokens), and
	// GreedyGap, at the first difference, is the reference's logit of its
	// token minus its logit of ours (a near tie is a small gap).
	GreedyN    int      `json:"greedy_n,omitempty"`
	GreedySame int      `json:"greedy_same,omitempty"`
	GreedyGap  *float64 `json:"greedy_gap,omitempty"`
	// DecodeRelErr is ‖ours − ref‖/‖ref‖ over the logits of the decode
	// steps of the common greedy prefix (steps 1 … GreedySame−1; step 0
	// is the prefill's last position), when the reference stored them.
	DecodeRelErr *float64 `json:"decode_rel_err,omitempty"`
	// Tokens and TokensDiffer compare our tokenizer's ids of the case's
	// text with the reference's (the first Tokens ids); TokenFirstDiff is
	// the first differing index, −1 when none.
	Tokens         int `json:"tokens,omitempty"`
	TokensDiffer   int `json:"tokens_differ,omitempty"`
	TokenFirstDiff int `json:"token_first_diff,omitempty"`
	// Perplexity cases: Windows windows of N tokens, Scored predictions;
	// PPL ours and RefPPL the reference's over the same windows (RefPPLAll
	// over all the windows the reference scored), PPLRatio = PPL/RefPPL.
	Windows   int     `json:"windows,omitempty"`
	Scored    int     `json:"scored,omitempty"`
	PPL       float64 `json:"ppl,omitempty"`
	RefPPL    float64 `json:"ref_ppl,omitempty"`
	RefPPLAll float64 `json:"ref_ppl_all,omitempty"`
	PPLRatio  float64 `json:"ppl_ratio,omitempty"`
	// ExactPPL, with OracleParams.Control, is the control's perplexity of
	// the same windows.
	ExactPPL float64 `json:"exact_ppl,omitempty"`
	// Pass says whether the case met its bar: RelErr within Tol
	// (transformers cases); for llama.cpp cases also the same greedy
	// tokens, and for perplexity cases |PPLRatio − 1| within PPLTol.
	Pass   bool    `json:"pass"`
	Tol    float64 `json:"tol"`
	PPLTol float64 `json:"ppl_tol,omitempty"`
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
	// random-weight and trained models (defaults 0.1 and 1e-3), TolLlamaCpp
	// for llama.cpp cases (default 1e-2) and PPLTol the largest accepted
	// |ours/llama.cpp − 1| of a perplexity (default 0.005).
	TolRandom   float64 `json:"tol_random"`
	TolModel    float64 `json:"tol_model"`
	TolLlamaCpp float64 `json:"tol_llamacpp"`
	PPLTol      float64 `json:"ppl_tol"`
	// Weights lists how a GGUF file's quantized matrices are held, one
	// run of its cases each: "quantized" (on the device as they are, the
	// default) and "f16" (dequantized at load). A file without quantized
	// matrices runs once.
	Weights []string `json:"weights"`
	// PPLWindows scores at most this many windows of each perplexity case
	// (0: all); the reference's perplexity is taken over the same windows.
	PPLWindows int `json:"ppl_windows"`
	// Control, if set, gives each case of a GGUF file a second reference
	// against which both the reference's and our logits and perplexity are
	// measured (OracleControl). The product links none; the tests pass the
	// float64 forward pass of internal/ref (TestOracleControl runs it on an
	// oracle directory).
	Control OracleControl `json:"-"`
	// Cases, if set, runs only the cases whose names match one of these
	// path.Match patterns.
	Cases []string                         `json:"cases,omitempty"`
	Logf  func(format string, args ...any) `json:"-"`
}

// OracleControl builds the control of a GGUF model: a forward pass that
// returns the logits of every position of ids, from position 0 on an empty
// cache.
type OracleControl func(cfg *model.Config, ck *model.Checkpoint) (forward func(ids []int) ([][]float64, error), err error)

// OracleWeights lists the values of OracleParams.Weights.
var OracleWeights = []string{"quantized", "f16"}

// ReadOracleCases lists the cases of an oracle directory, by shape, then
// model, then length, then name.
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
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("oracle: %s: %w", p, err)
		}
		c.dir = filepath.Join(dir, e.Name())
		if c.Text != "" {
			if st, err := os.Stat(filepath.Join(c.dir, c.Text)); err != nil || !st.Mode().IsRegular() {
				return nil, fmt.Errorf("oracle: %s: text %q is not a file in the case directory (text names the file the reference tokenised; describe the ids in source)", p, c.Text)
			}
		}
		c.Model = filepath.Join(c.dir, c.Model)
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("oracle: no case directories (with case.json) in %s", dir)
	}
	sort.Slice(cases, func(i, j int) bool {
		a, b := cases[i], cases[j]
		if a.Shape != b.Shape {
			return a.Shape < b.Shape
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.N != b.N {
			return a.N < b.N
		}
		return a.Name < b.Name
	})
	return cases, nil
}

// check validates the fields of a case.
func (c *OracleCase) check() error {
	if c.N < 1 || c.Vocab < 1 || c.Model == "" {
		return fmt.Errorf("needs n, vocab and model")
	}
	if c.PPL != nil {
		p := c.PPL
		if p.Window < 2 || p.First < 0 || p.First > p.Window-2 || len(p.WindowNLL) == 0 {
			return fmt.Errorf("ppl: needs window ≥ 2, 0 ≤ first ≤ window−2 and window_nll (window %d, first %d, %d windows)", p.Window, p.First, len(p.WindowNLL))
		}
		if c.N < p.Window*len(p.WindowNLL) {
			return fmt.Errorf("ppl: n %d is less than %d windows of %d tokens", c.N, len(p.WindowNLL), p.Window)
		}
		if p.BOS >= c.Vocab {
			return fmt.Errorf("ppl: bos %d outside the vocab of %d", p.BOS, c.Vocab)
		}
		return nil
	}
	if len(c.Positions) == 0 {
		return fmt.Errorf("needs positions (or ppl)")
	}
	for _, q := range c.Positions {
		if q < 0 || q >= c.N {
			return fmt.Errorf("position %d outside [0, %d)", q, c.N)
		}
	}
	for _, t := range c.Greedy {
		if t < 0 || t >= c.Vocab {
			return fmt.Errorf("greedy token %d outside the vocab of %d", t, c.Vocab)
		}
	}
	return nil
}

// tokens is the context a case needs.
func (c *OracleCase) tokens() int {
	if c.PPL != nil {
		return c.PPL.Window
	}
	return c.N + len(c.Greedy)
}

// oracleModel is an open model of an oracle run.
type oracleModel struct {
	cfg *model.Config
	ck  *model.Checkpoint
	tok *tokenizer.Tokenizer // GGUF files only
}

// openOracleModel opens a model directory or GGUF file.
func openOracleModel(path string) (*oracleModel, error) {
	if !model.IsGGUF(path) {
		cfg, err := model.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		ck, err := model.OpenCheckpoint(path)
		if err != nil {
			return nil, err
		}
		return &oracleModel{cfg: cfg, ck: ck}, nil
	}
	cfg, ck, err := model.OpenGGUF(path)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(ck.GGUF())
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &oracleModel{cfg: cfg, ck: ck, tok: tok}, nil
}

// RunOracle runs our engine (dense attention) on every case of an oracle
// directory and compares its logits at the stored positions with the
// reference's, and, for llama.cpp cases, its greedy tokens, tokenizer and
// perplexity. A GGUF file's cases run once per p.Weights mode.
func RunOracle(ctx context.Context, p OracleParams) (*Report, error) {
	if p.TolRandom == 0 {
		p.TolRandom = 0.1
	}
	if p.TolModel == 0 {
		p.TolModel = 1e-3
	}
	if p.TolLlamaCpp == 0 {
		p.TolLlamaCpp = 1e-2
	}
	if p.PPLTol == 0 {
		p.PPLTol = 0.005
	}
	if len(p.Weights) == 0 {
		p.Weights = []string{"quantized"}
	}
	for _, w := range p.Weights {
		if !slices.Contains(OracleWeights, w) {
			return nil, fmt.Errorf("oracle: weights %q: want one of %s", w, strings.Join(OracleWeights, ", "))
		}
	}
	if p.PPLWindows < 0 {
		return nil, fmt.Errorf("oracle: ppl windows %d: want ≥ 0 (0: all)", p.PPLWindows)
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cases, err := ReadOracleCases(p.Dir)
	if err != nil {
		return nil, err
	}
	if len(p.Cases) > 0 {
		var keep []OracleCase
		for _, c := range cases {
			for _, pat := range p.Cases {
				if ok, err := path.Match(pat, c.Name); err != nil {
					return nil, fmt.Errorf("oracle: case pattern %q: %w", pat, err)
				} else if ok {
					keep = append(keep, c)
					break
				}
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("oracle: no case of %s matches %s", p.Dir, strings.Join(p.Cases, ", "))
		}
		cases = keep
	}
	dev, err := runtime.Open(runtime.Options{Device: p.Device})
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	res := &OracleResults{Dir: p.Dir}
	rep := NewReport("oracle", DeviceOf(dev), p)
	rep.Results = res
	rep.Notef("relative error ‖ours − ref‖/‖ref‖ (Euclidean norms) over the stored positions together; worst = the largest per-position value. Transformers cases: ref = transformers fp32 at up to 128 positions, the control is transformers fp16 against fp32 on the same inputs and the same bf16 weights. llama.cpp cases: ref = llama.cpp on the CPU on the same GGUF file, every position, the same token ids. Ours: f16 activations, f32 accumulation, dense attention")
	// One engine per model and weights mode, sized for its longest case.
	longest := map[string]int{}
	var models []string
	for _, c := range cases {
		if _, ok := longest[c.Model]; !ok {
			models = append(models, c.Model)
		}
		longest[c.Model] = max(longest[c.Model], c.tokens())
	}
	for _, mpath := range models {
		m, err := openOracleModel(mpath)
		if err != nil {
			return rep, fmt.Errorf("oracle: %w", err)
		}
		err = func() error {
			defer m.ck.Close()
			wt, _, err := model.PlanWeights(m.cfg, m.ck, model.EngineOptions{}, model.QuantTypes(dev))
			if err != nil {
				return fmt.Errorf("oracle %s: %w", mpath, err)
			}
			quant := false
			for _, t := range wt {
				quant = quant || t.BlockElems() > 1
			}
			exact := map[string]*oracleExact{} // case → the control
			if p.Control != nil && m.tok != nil {
				fwd, err := p.Control(m.cfg, m.ck)
				if err != nil {
					return fmt.Errorf("oracle %s: %w", mpath, err)
				}
				for _, c := range cases {
					if c.Model != mpath {
						continue
					}
					x := &oracleExact{}
					if c.PPL != nil {
						x.ppl, err = exactPPL(fwd, c, p.PPLWindows)
					} else {
						x.logits, err = exactLogits(fwd, c)
					}
					if err != nil {
						return fmt.Errorf("oracle %s: control: %w", c.Name, err)
					}
					exact[c.Name] = x
					logf("oracle: %s: control done", c.Name)
				}
			}
			for i, w := range p.Weights {
				if m.tok == nil && i > 0 {
					break // safetensors: one run
				}
				if m.tok != nil && !quant && w == "f16" && slices.Contains(p.Weights, "quantized") {
					continue // no quantized matrix on the device: the quantized run is this one
				}
				opts := model.EngineOptions{Context: longest[mpath], F16Weights: w == "f16"}
				eng, err := model.NewEngine(dev, m.cfg, m.ck, opts)
				if err != nil {
					return fmt.Errorf("oracle %s: %w", mpath, err)
				}
				label := ""
				switch {
				case m.tok != nil && quant:
					label = w
				case m.tok != nil:
					label = "file's own" // no quantized matrix on the device
				}
				for _, c := range cases {
					if c.Model != mpath {
						continue
					}
					row, err := oracleCase(ctx, eng, m, c, p, exact[c.Name])
					if err != nil {
						eng.Close()
						return fmt.Errorf("oracle %s: %w", c.Name, err)
					}
					row.Weights = label
					logf("oracle: %s", row.summary())
					res.Rows = append(res.Rows, row)
				}
				eng.Close()
			}
			return nil
		}()
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// summary is the log line of a row.
func (r OracleRow) summary() string {
	s := r.Case
	if r.Weights != "" {
		s += " (" + r.Weights + " weights)"
	}
	if r.Windows > 0 {
		s = fmt.Sprintf("%s: perplexity %.4f, reference %.4f (ratio %.5f) over %d windows", s, r.PPL, r.RefPPL, r.PPLRatio, r.Windows)
		if r.ExactPPL > 0 {
			s += fmt.Sprintf("; the control: %.4f", r.ExactPPL)
		}
		return s
	}
	s += fmt.Sprintf(": rel err %.4g (worst position %.4g)", r.RelErr, r.RelErrWorst)
	if r.HFFP16RelErr != nil {
		s += fmt.Sprintf(" (transformers fp16 %.4g)", *r.HFFP16RelErr)
	}
	if r.GreedyN > 0 {
		s += fmt.Sprintf(", greedy %d/%d the same", r.GreedySame, r.GreedyN)
	}
	if r.DecodeRelErr != nil {
		s += fmt.Sprintf(", decode steps rel err %.4g", *r.DecodeRelErr)
	}
	if r.ExactRef != nil {
		s += fmt.Sprintf("; against the control: reference %.4g, ours %.4g", *r.ExactRef, *r.ExactOurs)
	}
	return s
}

func hfFloat(m map[string]any, k string) *float64 {
	if v, ok := m[k].(float64); ok {
		return &v
	}
	return nil
}

// readF32 reads a file of little-endian float32 of rows×cols values.
func readF32(path string, rows, cols int) ([]float32, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) != 4*rows*cols {
		return nil, fmt.Errorf("%s has %d bytes, want %d (%d×%d float32)", filepath.Base(path), len(raw), 4*rows*cols, rows, cols)
	}
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return x, nil
}

// oracleExact is the control of one case: the logits at its positions, or
// the perplexity of its windows.
type oracleExact struct {
	logits [][]float32
	ppl    float64
}

// pplWindows returns the windows of a perplexity case that are scored (at
// most limit; 0: all), each with its first token replaced by BOS.
func pplWindows(c OracleCase, ids []int, limit int) [][]int {
	pp := c.PPL
	n := len(pp.WindowNLL)
	if limit > 0 {
		n = min(n, limit)
	}
	out := make([][]int, n)
	for w := range out {
		out[w] = slices.Clone(ids[w*pp.Window : (w+1)*pp.Window])
		if pp.BOS >= 0 {
			out[w][0] = pp.BOS
		}
	}
	return out
}

// exactPPL returns the control's perplexity of c's windows.
func exactPPL(forward func([]int) ([][]float64, error), c OracleCase, limit int) (float64, error) {
	ids, err := readIDs(c)
	if err != nil {
		return 0, err
	}
	var nll float64
	var n int
	for _, win := range pplWindows(c, ids, limit) {
		lg, err := forward(win)
		if err != nil {
			return 0, err
		}
		if len(lg) != len(win) {
			return 0, fmt.Errorf("the control gave %d positions for a window of %d", len(lg), len(win))
		}
		for pos := c.PPL.First; pos+1 < len(win); pos++ {
			nll -= logProb64(lg[pos], win[pos+1])
			n++
		}
	}
	return math.Exp(nll / float64(n)), nil
}

// logProb64 is model.LogProb for float64 logits.
func logProb64(logits []float64, t int) float64 {
	mx := math.Inf(-1)
	for _, x := range logits {
		mx = math.Max(mx, x)
	}
	var s float64
	for _, x := range logits {
		s += math.Exp(x - mx)
	}
	return logits[t] - mx - math.Log(s)
}

// exactLogits returns the logits of the control at c's stored positions.
func exactLogits(forward func([]int) ([][]float64, error), c OracleCase) ([][]float32, error) {
	ids, err := readIDs(c)
	if err != nil {
		return nil, err
	}
	all, err := forward(ids[:c.Positions[len(c.Positions)-1]+1])
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(c.Positions))
	for i, q := range c.Positions {
		if q >= len(all) || len(all[q]) != c.Vocab {
			return nil, fmt.Errorf("the control gave %d positions of %d logits, want position %d of %d", len(all), len(all[min(q, len(all)-1)]), q, c.Vocab)
		}
		out[i] = make([]float32, c.Vocab)
		for j, x := range all[q] {
			out[i][j] = float32(x)
		}
	}
	return out, nil
}

// readIDs reads the ids.json of a case.
func readIDs(c OracleCase) ([]int, error) {
	var ids []int
	b, err := os.ReadFile(filepath.Join(c.dir, "ids.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("ids.json: %w", err)
	}
	if len(ids) != c.N {
		return nil, fmt.Errorf("ids.json has %d tokens, case.json says %d", len(ids), c.N)
	}
	return ids, nil
}

// relErr returns ‖x − r‖/‖r‖ over rows.
func relErr(x, r [][]float32) float64 {
	var num, den float64
	for i := range r {
		for j, v := range r[i] {
			d := float64(x[i][j]) - float64(v)
			num += d * d
			den += float64(v) * float64(v)
		}
	}
	return math.Sqrt(num / den)
}

// oracleCase runs one case on eng; x, if not nil, is the case's control.
func oracleCase(ctx context.Context, eng *model.Engine, m *oracleModel, c OracleCase, p OracleParams, x *oracleExact) (OracleRow, error) {
	row := OracleRow{Case: c.Name, Kind: c.Kind, Shape: c.Shape, N: c.N, HFFP16RelErr: hfFloat(c.HF, "fp16_rel_err"), HFNLL: hfFloat(c.HF, "fp32_nll")}
	row.Tol = p.TolRandom
	switch c.Kind {
	case "model":
		row.Tol = p.TolModel
	case "llamacpp":
		row.Tol = p.TolLlamaCpp
	}
	ids, err := readIDs(c)
	if err != nil {
		return row, err
	}
	v := m.cfg.VocabSize
	if v != c.Vocab {
		return row, fmt.Errorf("vocab %d in the model, %d in case.json", v, c.Vocab)
	}
	for i, t := range ids {
		if t < 0 || t >= v {
			return row, fmt.Errorf("ids.json: token %d (index %d) outside the vocab of %d", t, i, v)
		}
	}
	if c.Text != "" {
		if m.tok == nil {
			return row, fmt.Errorf("text %s: the model has no GGUF tokenizer", c.Text)
		}
		text, err := os.ReadFile(filepath.Join(c.dir, c.Text))
		if err != nil {
			return row, err
		}
		ours := m.tok.Encode(string(text), true)
		row.Tokens, row.TokenFirstDiff = len(ids), -1
		for i, t := range ids {
			if i >= len(ours) || ours[i] != t {
				row.TokensDiffer++
				if row.TokenFirstDiff < 0 {
					row.TokenFirstDiff = i
				}
			}
		}
	}
	if c.PPL != nil {
		row, err := oraclePPL(ctx, eng, c, ids, p, row)
		if x != nil {
			row.ExactPPL = x.ppl
		}
		return row, err
	}
	var exact [][]float32
	if x != nil {
		exact = x.logits
	}
	ref, err := readF32(filepath.Join(c.dir, "ref_logits.f32"), len(c.Positions), v)
	if err != nil {
		return row, err
	}
	slot := map[int]int{}
	for i, q := range c.Positions {
		slot[q] = i
	}
	last := c.Positions[len(c.Positions)-1]
	row.Stored = len(c.Positions)
	var num, den, lnum, lden, nll float64
	var lastLogits []float32
	var ours [][]float32 // at the stored positions, for the control
	if exact != nil {
		ours = make([][]float32, len(c.Positions))
	}
	eng.Reset()
	err = eng.PrefillAll(ctx, ids, func(pos int, logits []float32) {
		if pos == len(ids)-1 {
			lastLogits = slices.Clone(logits)
		}
		if i, ok := slot[pos]; ok && ours != nil {
			ours[i] = slices.Clone(logits)
		}
		if c.NLL && pos+1 < len(ids) {
			nll -= model.LogProb(logits, ids[pos+1])
		}
		i, ok := slot[pos]
		if !ok {
			return
		}
		r := ref[i*v : (i+1)*v]
		var pn, pd float64
		for j, x := range logits {
			d := float64(x) - float64(r[j])
			pn += d * d
			pd += float64(r[j]) * float64(r[j])
			if math.IsNaN(d) {
				row.MaxAbs = math.Inf(1)
			} else {
				row.MaxAbs = math.Max(row.MaxAbs, math.Abs(d))
			}
		}
		num += pn
		den += pd
		if pos == last {
			lnum, lden = pn, pd
		}
		if w := math.Sqrt(pn / pd); !(w <= row.RelErrWorst) {
			row.RelErrWorst = w // NaN sticks
		}
		if argmax(logits) == argmax(r) {
			row.ArgmaxSame++
		}
	})
	if err != nil {
		return row, err
	}
	row.RelErr, row.RelErrLast = math.Sqrt(num/den), math.Sqrt(lnum/lden)
	if exact != nil {
		rows := make([][]float32, len(c.Positions))
		for i := range rows {
			rows[i] = ref[i*v : (i+1)*v]
		}
		er, eo := relErr(rows, exact), relErr(ours, exact)
		row.ExactRef, row.ExactOurs = &er, &eo
	}
	if c.NLL && len(ids) > 1 {
		x := nll / float64(len(ids)-1)
		row.NLL = &x
	}
	row.Pass = row.RelErr <= row.Tol
	if len(c.Greedy) > 0 {
		if err := oracleGreedy(ctx, eng, c, lastLogits, &row); err != nil {
			return row, err
		}
		row.Pass = row.Pass && row.GreedySame == row.GreedyN && (row.DecodeRelErr == nil || *row.DecodeRelErr <= row.Tol)
	}
	return row, nil
}

// oracleGreedy continues the prefill greedily for len(c.Greedy) tokens
// from the last position's logits and compares the tokens with c.Greedy.
func oracleGreedy(ctx context.Context, eng *model.Engine, c OracleCase, logits []float32, row *OracleRow) error {
	var refLogits []float32
	if _, err := os.Stat(filepath.Join(c.dir, "greedy_logits.f32")); err == nil {
		var err error
		if refLogits, err = readF32(filepath.Join(c.dir, "greedy_logits.f32"), len(c.Greedy), c.Vocab); err != nil {
			return err
		}
	}
	row.GreedyN = len(c.Greedy)
	same := true
	var num, den float64
	for k, want := range c.Greedy {
		got := argmax(logits)
		if same && k > 0 && refLogits != nil {
			for j, x := range refLogits[k*c.Vocab : (k+1)*c.Vocab] {
				d := float64(logits[j]) - float64(x)
				num += d * d
				den += float64(x) * float64(x)
			}
		}
		if same && got != want {
			same = false
			row.GreedySame = k
			if refLogits != nil {
				r := refLogits[k*c.Vocab : (k+1)*c.Vocab]
				gap := float64(r[want]) - float64(r[got])
				row.GreedyGap = &gap
			}
		}
		if k+1 == len(c.Greedy) {
			break
		}
		var err error
		if logits, err = eng.Decode(ctx, got); err != nil {
			return fmt.Errorf("greedy step %d: %w", k+1, err)
		}
	}
	if same {
		row.GreedySame = row.GreedyN
	}
	if den > 0 {
		e := math.Sqrt(num / den)
		row.DecodeRelErr = &e
	}
	return nil
}

// oraclePPL scores a perplexity case: the windows of llama-perplexity's
// rule (OraclePPL), at most p.PPLWindows of them.
func oraclePPL(ctx context.Context, eng *model.Engine, c OracleCase, ids []int, p OracleParams, row OracleRow) (OracleRow, error) {
	pp := c.PPL
	row.Tol, row.PPLTol = 0, p.PPLTol
	wins := pplWindows(c, ids, p.PPLWindows)
	windows := len(wins)
	var nll, refNLL, refAll float64
	for w, win := range wins {
		eng.Reset()
		err := eng.PrefillAll(ctx, win, func(pos int, logits []float32) {
			if pos >= pp.First && pos+1 < len(win) {
				nll -= model.LogProb(logits, win[pos+1])
			}
		})
		if err != nil {
			return row, fmt.Errorf("window %d: %w", w, err)
		}
		refNLL += pp.WindowNLL[w]
	}
	for _, x := range pp.WindowNLL {
		refAll += x
	}
	per := pp.Window - 1 - pp.First
	row.N, row.Windows, row.Scored = pp.Window, windows, windows*per
	row.PPL = math.Exp(nll / float64(row.Scored))
	row.RefPPL = math.Exp(refNLL / float64(row.Scored))
	row.RefPPLAll = pp.RefPPL
	if row.RefPPLAll == 0 {
		row.RefPPLAll = math.Exp(refAll / float64(len(pp.WindowNLL)*per))
	}
	row.PPLRatio = row.PPL / row.RefPPL
	row.Pass = math.Abs(row.PPLRatio-1) <= p.PPLTol
	return row, nil
}

// OracleTables renders an oracle report: one table for the transformers
// cases, one for the llama.cpp logits cases and one for the llama.cpp
// perplexity cases (each only when it has rows).
func OracleTables(res *OracleResults) []*Table {
	hf := &Table{Title: "Logits against transformers float32 (the control: transformers float16 on the same inputs)",
		Header: []string{"case", "kind", "tokens", "ours: rel err", "transformers fp16: rel err", "ours / fp16", "ours, last position", "max |Δ|", "NLL ours", "NLL transformers fp32", "within tol"},
		Foot:   "rel err = ‖x − fp32‖/‖fp32‖ over the stored positions; tolerance 0.1 for random weights (reported for the trend), 1e-3 for trained models."}
	lc := &Table{Title: "Logits and greedy tokens against llama.cpp (CPU) on the same GGUF file",
		Header: []string{"case", "our weights", "tokens", "rel err", "worst position", "last position", "max |Δ|", "argmax same (stored positions)", "greedy same", "decode steps: rel err", "control: llama.cpp vs exact", "control: ours vs exact", "tokenizer", "pass"},
		Foot:   "rel err = ‖ours − llama.cpp‖/‖llama.cpp‖ over every position together (Euclidean norms), worst = the largest per-position value; our weights: quantized = the file's blocks on the device (decode: in-register mat-vec; prefill: dequantized to an f16 scratch), f16 = dequantized at load; greedy: common prefix of the two greedy continuations (at a difference, llama.cpp's logit gap between its token and ours); decode steps: rel err of the logits of the greedy steps both took the same way (our decode path: the in-register mat-vec on quantized weights), against llama.cpp's; control (TestOracleControl): rel err against the float64 CPU forward pass of the file's own weights, dequantized exactly; tokenizer: our ids of the prompt text against llama.cpp's; pass: both rel errs ≤ tol (1e-2) and the same greedy tokens."}
	pl := &Table{Title: "Perplexity against llama-perplexity on the same GGUF file",
		Header: []string{"case", "our weights", "windows × tokens", "scored", "PPL ours", "PPL llama.cpp (same windows)", "ours / llama.cpp", "llama.cpp, all its windows", "control: exact PPL", "tokenizer", "within ±tol"},
		Foot:   "llama-perplexity's rule: window w = tokens [w·n, (w+1)·n) of the text's token stream (BOS first), its first token replaced by BOS, the predictions of positions n/2 … n−2 scored; both sides run llama.cpp's token ids; tokenizer: our ids of the whole text against llama.cpp's (those the windows use)."}
	for _, r := range res.Rows {
		switch {
		case r.Windows > 0:
			pass := "yes"
			if !r.Pass {
				pass = fmt.Sprintf("NO (> %g)", r.PPLTol)
			}
			xp := "–"
			if r.ExactPPL > 0 {
				xp = f(r.ExactPPL, 4)
			}
			pl.Add(r.Case, r.Weights, fmt.Sprintf("%d × %d", r.Windows, r.N), fmt.Sprint(r.Scored), f(r.PPL, 4), f(r.RefPPL, 4), f(r.PPLRatio, 5), f(r.RefPPLAll, 4), xp, r.tokenizerCell(), pass)
		case r.Kind == "llamacpp":
			greedy := "–"
			if r.GreedyN > 0 {
				greedy = fmt.Sprintf("%d/%d", r.GreedySame, r.GreedyN)
				if r.GreedyGap != nil {
					greedy += fmt.Sprintf(" (gap %.3g)", *r.GreedyGap)
				}
			}
			xr, xo := "–", "–"
			if r.ExactRef != nil {
				xr, xo = fmt.Sprintf("%.4g", *r.ExactRef), fmt.Sprintf("%.4g", *r.ExactOurs)
			}
			dec := "–"
			if r.DecodeRelErr != nil {
				dec = fmt.Sprintf("%.4g", *r.DecodeRelErr)
			}
			pass := "yes"
			if !r.Pass {
				pass = "NO"
			}
			lc.Add(r.Case, r.Weights, fmt.Sprint(r.N), fmt.Sprintf("%.4g", r.RelErr), fmt.Sprintf("%.4g", r.RelErrWorst), fmt.Sprintf("%.4g", r.RelErrLast), fmt.Sprintf("%.3g", r.MaxAbs), fmt.Sprintf("%d/%d", r.ArgmaxSame, r.Stored), greedy, dec, xr, xo, r.tokenizerCell(), pass)
		default:
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
			hf.Add(r.Case, r.Kind, fmt.Sprint(r.N), fmt.Sprintf("%.4g", r.RelErr), fp16, ratio, fmt.Sprintf("%.4g", r.RelErrLast), fmt.Sprintf("%.3g", r.MaxAbs), nll, hfnll, pass)
		}
	}
	var out []*Table
	for _, t := range []*Table{hf, lc, pl} {
		if len(t.Rows) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// tokenizerCell says how our tokenizer's ids compare with the reference's.
func (r OracleRow) tokenizerCell() string {
	switch {
	case r.Tokens == 0:
		return "–"
	case r.TokensDiffer == 0:
		return fmt.Sprintf("same %d ids", r.Tokens)
	default:
		return fmt.Sprintf("%d of %d differ (first at %d)", r.TokensDiffer, r.Tokens, r.TokenFirstDiff)
	}
}
