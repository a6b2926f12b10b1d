package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/share"
)

// AccuracyParams configures RunAccuracy. Every variant sees the same
// samples and the same perplexity windows (seeded).
type AccuracyParams struct {
	ModelParams
	// Suite names the suite the parameters came from (Suite), for the
	// record.
	Suite string `json:"suite,omitempty"`
	// Lens are the retrieval prompt lengths in tokens.
	Lens []int `json:"lens"`
	// Methods are the main attention methods (dense, vs, flex, share); each
	// runs every task and the perplexity. "share" takes ModelParams'
	// cluster file and preset; "flex" takes the flex preset.
	Methods []string `json:"methods"`
	// LateMethods are main methods run after the ablations (slow
	// planners, so that a budget cuts them first).
	LateMethods []string `json:"late_methods,omitempty"`
	// MethodSamples caps the trained-format samples of some main methods
	// (Variant.Samples).
	MethodSamples map[string]int `json:"method_samples,omitempty"`
	// Ablations are further variants, run on AblationTasks (and on the
	// perplexity windows when Variant.PPL is set) after the main methods'
	// first task.
	Ablations []Variant `json:"ablations,omitempty"`
	// AblationTasks are the tasks of the ablation variants (default: the
	// first trained-format task of Tasks).
	AblationTasks []string `json:"ablation_tasks,omitempty"`
	// HeldOut is the held-out text: a file written by WriteHeldOut (see
	// BuildHeldOut) or a plain text file. It supplies the perplexity
	// windows and the filler and words of the trained-format tasks.
	HeldOut string `json:"heldout,omitempty"`
	// PPLLens are the perplexity window lengths (empty: no perplexity).
	PPLLens []int `json:"ppl_lens,omitempty"`
	// PPLSource restricts the perplexity stream to one held-out source
	// (e.g. "go"); empty: all documents.
	PPLSource string `json:"ppl_source,omitempty"`
	// PPLWindows caps the windows per length (0: every whole window of the
	// stream). Windows are consecutive and do not overlap.
	PPLWindows int `json:"ppl_windows"`
	// PPLTail scores the last PPLTail predictions of each window (0: every
	// prediction, as bench-lm-8k's README evaluation did).
	PPLTail int `json:"ppl_tail"`
	// Tasks are the retrieval tasks: the trained-format NeedleTasks and
	// the InfiniteBench formats (passkey, kv) for instruction models.
	Tasks []string `json:"tasks"`
	// Samples is the number of trained-format samples per task and length
	// (one per depth stratum of [0.02, 0.98]).
	Samples int `json:"samples"`
	// TaskSamples overrides Samples for some tasks.
	TaskSamples map[string]int `json:"task_samples,omitempty"`
	// FlexPreset is the preset of the main "flex" method (default "flex",
	// FlexPrefill's own defaults).
	FlexPreset string `json:"flex_preset,omitempty"`
	// Depths and Trials place the InfiniteBench samples.
	Depths []float64 `json:"depths,omitempty"`
	Trials int       `json:"trials,omitempty"`
	Seed   uint64    `json:"seed"`
	// MaxNew is the greedy decode length of the InfiniteBench tasks
	// (defaults: passkey 8, kv 40).
	MaxNew map[string]int `json:"max_new,omitempty"`
	// Budget stops starting new jobs (a variant's perplexity or its
	// samples of some tasks) once this much time has passed since the
	// start; the first job always runs, and the jobs left are listed as
	// skipped. 0: no budget.
	Budget time.Duration `json:"budget_ns,omitempty"`
	// Checkpoint, if set, receives the report after every finished job,
	// with the summaries computed so far (for partial results).
	Checkpoint func(*Report) error              `json:"-"`
	Logf       func(format string, args ...any) `json:"-"`
}

// DefaultMaxNew are the decode lengths of the InfiniteBench tasks.
func DefaultMaxNew() map[string]int { return map[string]int{"passkey": 8, "kv": 40} }

// PPLRow is the perplexity of one variant at one window length.
type PPLRow struct {
	Method  string `json:"method"`
	N       int    `json:"n"`
	Windows int    `json:"windows"`
	Scored  int    `json:"scored_tokens"`
	// NLL is the mean negative log-likelihood per scored token (nats), CI
	// its 95 % interval with the windows as independent units
	// (RatioCI).
	NLL float64  `json:"nll"`
	CI  Interval `json:"nll_ci"`
	PPL float64  `json:"ppl"`
	// DeltaNLL is NLL − dense NLL on the same windows and DeltaCI its
	// paired 95 % interval (RatioCI of the per-window differences).
	DeltaNLL *float64  `json:"delta_nll_vs_dense,omitempty"`
	DeltaCI  *Interval `json:"delta_nll_ci,omitempty"`
	// RelPPL is PPL / dense PPL − 1.
	RelPPL  *float64 `json:"rel_ppl_vs_dense,omitempty"`
	Density float64  `json:"density"`
	// WindowNLL and WindowTokens are the summed NLL and the scored tokens
	// of each window, in window order.
	WindowNLL    []float64 `json:"window_nll_sums"`
	WindowTokens []float64 `json:"window_tokens"`
}

// Sample is one retrieval answer of one variant.
type Sample struct {
	ID     string  `json:"id"` // the same for every variant
	Task   string  `json:"task"`
	Method string  `json:"method"`
	N      int     `json:"n"`
	Tokens int     `json:"tokens"` // prompt tokens
	Depth  float64 `json:"depth"`
	Answer string  `json:"answer"`
	// Output is the greedy output (InfiniteBench) or the argmax tokens
	// under teacher forcing of the answers (trained format).
	Output  string  `json:"output"`
	Correct bool    `json:"correct"`
	Hits    []bool  `json:"hits,omitempty"` // per query (secret-multi)
	Density float64 `json:"density"`
	// PrefillMs is the wall time of the prompt's prefill (planning and
	// attention included).
	PrefillMs float64 `json:"prefill_ms"`
	heads     map[string]int
	exclBy    map[string]int
}

// TaskSummary aggregates the samples of (task, variant, n); N = 0 is the
// row over every length (present when there is more than one).
type TaskSummary struct {
	Task     string   `json:"task"`
	Method   string   `json:"method"`
	N        int      `json:"n"`
	Correct  int      `json:"correct"`
	Total    int      `json:"total"`
	Accuracy float64  `json:"accuracy"`
	CI       Interval `json:"accuracy_ci"` // Wilson 95 %
	// Against dense on the same samples: Gains = samples this variant
	// answers and dense does not, Losses the reverse, P McNemar's exact
	// two-sided p-value. Nil without a dense run.
	Gains  *int     `json:"gains_vs_dense,omitempty"`
	Losses *int     `json:"losses_vs_dense,omitempty"`
	P      *float64 `json:"mcnemar_p_vs_dense,omitempty"`
	// QueryAccuracy is the accuracy of each query position (secret-multi).
	QueryAccuracy []float64 `json:"query_accuracy,omitempty"`
	Density       float64   `json:"density"` // mean over samples
	// PrefillMs is the mean wall time of the prompt prefills: compare
	// variants on the same samples (the pooled row mixes lengths).
	PrefillMs float64 `json:"prefill_ms"`
	// HeadsPerMethod and ExcludedBy are means per prefill over samples.
	HeadsPerMethod map[string]float64 `json:"heads_per_method,omitempty"`
	ExcludedBy     map[string]float64 `json:"excluded_by,omitempty"`
}

// AblationRow is one variant of the ablation table: its accuracy over
// every length of the ablation task, against dense and against the main
// SharePrefill run on the same samples. The main methods dense, flex and
// share come first (What "main method") as the reference rows.
type AblationRow struct {
	Variant
	Task string `json:"task"`
	TaskSummary
	GainsVsShare  *int     `json:"gains_vs_share,omitempty"`
	LossesVsShare *int     `json:"losses_vs_share,omitempty"`
	PVsShare      *float64 `json:"mcnemar_p_vs_share,omitempty"`
	// Interpretation is one sentence on what the row shows, written after
	// the device run.
	Interpretation string `json:"interpretation"`
}

// AccuracyResults are the results of RunAccuracy.
type AccuracyResults struct {
	Model      string        `json:"model"`
	Variants   []Variant     `json:"variants"`
	Perplexity []PPLRow      `json:"perplexity,omitempty"`
	Summary    []TaskSummary `json:"retrieval_summary,omitempty"`
	Ablations  []AblationRow `json:"ablations,omitempty"`
	Samples    []Sample      `json:"retrieval,omitempty"`
	Skipped    []Skip        `json:"skipped,omitempty"`
	// Done lists the finished jobs ("label: task" or "label: perplexity").
	Done []string `json:"done"`
}

// Validate checks every parameter before any work. It sets AblationTasks to
// the first trained-format task when ablations have none.
func (p *AccuracyParams) Validate() error {
	if len(p.Methods) == 0 && len(p.Ablations) == 0 {
		return fmt.Errorf("--methods: no methods (and no ablation variants)")
	}
	if len(p.Tasks) > 0 && len(p.Lens) == 0 {
		return fmt.Errorf("--lens: retrieval tasks need lengths")
	}
	ib := false
	for _, t := range p.Tasks {
		switch {
		case slices.Contains(NeedleTasks, t):
			if n := p.samples(t); n < 1 {
				return fmt.Errorf("--samples %d: task %s needs ≥ 1", n, t)
			}
			if p.HeldOut == "" {
				return fmt.Errorf("--heldout: task %s needs the held-out text (filler and needle words)", t)
			}
		case slices.Contains(Tasks, t):
			ib = true
		default:
			return fmt.Errorf("--tasks: unknown task %q (known: %s, %s)", t, strings.Join(NeedleTasks, ", "), strings.Join(Tasks, ", "))
		}
	}
	switch {
	case ib && len(p.Depths) == 0:
		return fmt.Errorf("--depths: the InfiniteBench tasks need at least one depth")
	case ib && p.Trials < 1:
		return fmt.Errorf("--trials %d: want ≥ 1 for the InfiniteBench tasks", p.Trials)
	case len(p.PPLLens) > 0 && p.HeldOut == "":
		return fmt.Errorf("--heldout: perplexity needs the held-out text")
	case p.PPLWindows < 0:
		return fmt.Errorf("--ppl-windows %d: want ≥ 0 (0: every whole window)", p.PPLWindows)
	case p.PPLTail < 0:
		return fmt.Errorf("--ppl-tail %d: want ≥ 0 (0: every prediction of the window)", p.PPLTail)
	case p.Budget < 0:
		return fmt.Errorf("--budget %v: want ≥ 0 (0: no limit)", p.Budget)
	}
	for _, d := range p.Depths {
		if !(d >= 0 && d <= 1) {
			return fmt.Errorf("--depths: %v outside [0, 1]", d)
		}
	}
	for _, v := range p.Ablations {
		if err := v.check(); err != nil {
			return err
		}
	}
	if len(p.AblationTasks) == 0 {
		for _, t := range p.Tasks {
			if slices.Contains(NeedleTasks, t) {
				p.AblationTasks = []string{t}
				break
			}
		}
	}
	for _, t := range p.AblationTasks {
		if !slices.Contains(p.Tasks, t) {
			return fmt.Errorf("ablation task %q is not among the tasks %v", t, p.Tasks)
		}
	}
	if len(p.Ablations) > 0 && len(p.AblationTasks) == 0 {
		return fmt.Errorf("ablations need a retrieval task")
	}
	for _, k := range slices.Sorted(maps.Keys(p.MaxNew)) {
		if v := p.MaxNew[k]; v < 1 {
			flag := "--kv-tokens"
			if k != "kv" {
				flag = "--passkey-tokens"
			}
			return fmt.Errorf("%s %d: want ≥ 1 (decode length of %s)", flag, v, k)
		}
	}
	return nil
}

// samples is the number of trained-format samples of task per length.
func (p *AccuracyParams) samples(task string) int {
	if n, ok := p.TaskSamples[task]; ok {
		return n
	}
	return p.Samples
}

func (p *AccuracyParams) samplesText(tasks []string) string {
	var parts []string
	for _, t := range tasks {
		parts = append(parts, fmt.Sprintf("%s %d samples", t, p.samples(t)))
	}
	return strings.Join(parts, ", ")
}

// variants returns the main variants from Methods.
func (p *AccuracyParams) variants() []Variant {
	var vs []Variant
	for _, m := range p.Methods {
		v := Variant{Label: m, Attention: m, Samples: p.MethodSamples[m]}
		switch m {
		case "share":
			v.Preset, v.Clusters = p.Preset, p.Clusters
		case "flex":
			v.Preset = cmp.Or(p.FlexPreset, "flex")
		}
		vs = append(vs, v)
	}
	return vs
}

// job is one unit of work: a variant's perplexity or its samples of tasks.
type job struct {
	v     Variant
	ppl   bool
	tasks []string
}

// plan orders the work so that the most important results come first
// under a budget: the main methods' perplexity and first task, the
// ablations, then the main methods' other tasks.
func (p *AccuracyParams) plan() []job {
	main := p.variants()
	var jobs []job
	first := p.Tasks
	if len(p.AblationTasks) > 0 {
		first = p.AblationTasks
	}
	head := func(v Variant) {
		if len(p.PPLLens) > 0 {
			jobs = append(jobs, job{v: v, ppl: true})
		}
		if len(first) > 0 {
			jobs = append(jobs, job{v: v, tasks: first})
		}
	}
	for _, v := range main {
		if !slices.Contains(p.LateMethods, v.Label) {
			head(v)
		}
	}
	for _, v := range p.Ablations {
		if v.PPL && len(p.PPLLens) > 0 {
			jobs = append(jobs, job{v: v, ppl: true})
		}
		jobs = append(jobs, job{v: v, tasks: p.AblationTasks})
	}
	for _, v := range main {
		if slices.Contains(p.LateMethods, v.Label) {
			head(v)
		}
	}
	var rest []string
	for _, t := range p.Tasks {
		if !slices.Contains(first, t) {
			rest = append(rest, t)
		}
	}
	if len(rest) > 0 {
		for _, v := range main {
			jobs = append(jobs, job{v: v, tasks: rest})
		}
	}
	return jobs
}

// accData is what every variant shares: the samples and the windows.
type accData struct {
	needle  []NeedleSample
	ib      []TaskSpec
	windows [][]int
}

func (p *AccuracyParams) contextLen() int {
	n := 0
	for _, l := range p.Lens {
		n = max(n, l)
	}
	for _, l := range p.PPLLens {
		n = max(n, l)
	}
	return n
}

// buildData makes every sample and window once, with m's tokenizer.
func (p *AccuracyParams) buildData(m *shareprefill.Model, rep *Report) (*accData, error) {
	d := &accData{}
	tok := m.Tokenizer()
	enc := func(s string) []int { return tok.Encode(s, false) }
	bos, eos := tok.BOS(), tok.EOS()
	var ho *HeldOut
	if p.HeldOut != "" {
		var err error
		if ho, err = ReadHeldOut(p.HeldOut); err != nil {
			return nil, err
		}
		rep.Notef("held-out text %s: %d documents (%s), %d needle words", p.HeldOut, len(ho.Docs), strings.Join(ho.Sources(), ", "), len(ho.Words))
	}
	var needleTasks, ibTasks []string
	for _, t := range p.Tasks {
		if slices.Contains(NeedleTasks, t) {
			needleTasks = append(needleTasks, t)
		} else {
			ibTasks = append(ibTasks, t)
		}
	}
	if len(needleTasks) > 0 {
		stream := ho.Stream(enc, bos, eos, nil, p.Seed)
		for _, t := range needleTasks {
			for _, n := range p.Lens {
				for i := 0; i < p.samples(t); i++ {
					s, err := BuildNeedleSample(enc, bos, stream, ho.Words, t, n, i, p.samples(t), p.Seed)
					if err != nil {
						return nil, err
					}
					d.needle = append(d.needle, s)
				}
			}
		}
		rep.Notef("trained-format retrieval: BOS, a window of the held-out token stream (%d tokens; documents as BOS text EOS) as filler, needles and queries tokenised separately and inserted at token positions; %s per length, the first queried needle's depth stratified over [0.02, 0.98]; scored by exact match of the answer tokens: the argmax after the prompt prefill, then each answer token fed by a decode step (teacher forcing: the same as greedy decoding for exact match)", len(stream), p.samplesText(needleTasks))
	}
	if len(ibTasks) > 0 {
		ibEnc := func(s string) []int { return tok.Encode(s, true) }
		for _, task := range ibTasks {
			for _, n := range p.Lens {
				budget := n - p.MaxNew[task]
				for _, dp := range p.Depths {
					for t := 0; t < p.Trials; t++ {
						var (
							s   TaskSpec
							err error
						)
						switch task {
						case "passkey":
							s, err = buildPasskey(ibEnc, p.Seed, n, budget, dp, t)
						case "kv":
							s, err = buildKV(ibEnc, p.Seed, n, budget, dp, t)
						}
						if err != nil {
							return nil, fmt.Errorf("%s n=%d: %w", task, n, err)
						}
						d.ib = append(d.ib, s)
					}
				}
			}
		}
		rep.Notef("InfiniteBench passkey/kv: greedy decoding; passkey scores the first integer of the output, kv the value among the output's words (InfiniteBench scoring); these formats suit instruction-following models, not bench-lm-8k")
	}
	if len(p.PPLLens) > 0 {
		keep := func(src string) bool { return p.PPLSource == "" || src == p.PPLSource }
		stream := ho.Stream(enc, bos, eos, keep, p.Seed)
		if len(stream) == 0 {
			return nil, fmt.Errorf("perplexity: the held-out text has no %q documents", p.PPLSource)
		}
		src := "held-out stream"
		if p.PPLSource != "" {
			src = "held-out " + p.PPLSource + " stream"
		}
		rep.Notef("perplexity: %s of %d tokens cut into consecutive windows of n tokens from its start (the same windows for every method), one prefill per window on an empty cache; NLL interval: 95 %% Student-t over windows (cluster-robust); ΔNLL interval: paired over windows", src, len(stream))
		for _, n := range p.PPLLens {
			w := len(stream) / n
			if p.PPLWindows > 0 {
				w = min(w, p.PPLWindows)
			}
			if w == 0 {
				rep.Notef("perplexity n=%d: the stream has %d tokens, less than one window", n, len(stream))
			}
			for i := 0; i < w; i++ {
				d.windows = append(d.windows, stream[i*n:(i+1)*n])
			}
		}
	}
	return d, nil
}

// RunAccuracy runs the perplexity and the retrieval tasks for every
// variant on the same windows and samples, then computes the intervals and
// paired tests (finishAccuracy).
func RunAccuracy(ctx context.Context, p AccuracyParams) (*Report, error) {
	maxNew := DefaultMaxNew()
	maps.Copy(maxNew, p.MaxNew)
	p.MaxNew = maxNew
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("bench accuracy: %w", err)
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	began := time.Now()
	res := &AccuracyResults{Model: p.Model, Variants: append(p.variants(), p.Ablations...)}
	var (
		rep   *Report
		data  *accData
		noted = map[string]bool{}
	)
	for _, j := range p.plan() {
		what := j.v.Label + ": " + strings.Join(j.tasks, ", ")
		if j.ppl {
			what = j.v.Label + ": perplexity"
		}
		if p.Budget > 0 && rep != nil && time.Since(began) > p.Budget {
			res.Skipped = append(res.Skipped, Skip{What: what, Reason: fmt.Sprintf("time budget of %v spent", p.Budget)})
			continue
		}
		m, err := p.openVariant(ctx, j.v)
		if err != nil {
			if rep == nil && !isMethodError(err) {
				return nil, err
			}
			res.Skipped = append(res.Skipped, Skip{What: what, Reason: err.Error()})
			logf("accuracy: %s skipped: %v", what, err)
			continue
		}
		err = func() error {
			defer m.Close()
			if rep == nil {
				rep = NewReport("accuracy", DeviceOf(m.Device()), p)
				rep.Results = res
				rep.Notef("device memory: %s", m.MemoryPlan())
				if data, err = p.buildData(m, rep); err != nil {
					return err
				}
			}
			t0 := time.Now()
			if j.ppl {
				if err := runPerplexity(ctx, m, j.v.Label, data, p, res, logf); err != nil {
					return err
				}
			}
			for _, task := range j.tasks {
				if err := runTask(ctx, m, j.v, task, data, p, res, logf); err != nil {
					return err
				}
			}
			if !noted[j.v.Label] {
				noted[j.v.Label] = true
				if r := attnRules(m); r != "" {
					rep.Notef("%s: %s", j.v.Label, r)
				}
			}
			res.Done = append(res.Done, what)
			logf("accuracy: %s done in %.1f s", what, time.Since(t0).Seconds())
			return nil
		}()
		if err != nil {
			if rep != nil {
				finishAccuracy(res, p.Ablations)
			}
			return rep, fmt.Errorf("bench accuracy: %s: %w", what, err)
		}
		if p.Checkpoint != nil {
			finishAccuracy(res, p.Ablations)
			if err := p.Checkpoint(rep); err != nil {
				return rep, err
			}
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("bench accuracy: no variant could be loaded: %v", res.Skipped)
	}
	finishAccuracy(res, p.Ablations)
	return rep, nil
}

func (p *AccuracyParams) openVariant(ctx context.Context, v Variant) (*shareprefill.Model, error) {
	mp := ModelParams{Model: p.Model, Device: p.Device, Clusters: v.Clusters, Preset: v.Preset, Quantize: p.Quantize}
	return mp.open(ctx, v.Attention, p.contextLen(), nil)
}

// runTask runs one variant on every sample of one task (its subset, with
// Variant.Samples).
func runTask(ctx context.Context, m *shareprefill.Model, v Variant, task string, d *accData, p AccuracyParams, res *AccuracyResults, logf func(string, ...any)) error {
	label := v.Label
	for i := range d.needle {
		s := &d.needle[i]
		if s.Task != task || !v.keeps(s.Index, p.samples(task)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out, err := evalNeedle(ctx, m, s)
		if err != nil {
			return fmt.Errorf("%s n=%d sample %d: %w", task, s.N, s.Index, err)
		}
		out.Method = label
		res.Samples = append(res.Samples, out)
		if s.Index%max(1, p.samples(task)/4) == 0 {
			logf("accuracy: %s %s n=%d sample %d depth %.3f: %s → %q %v (density %.3f)", label, task, s.N, s.Index, s.Depth, out.Answer, out.Output, out.Correct, out.Density)
		}
	}
	for _, s := range d.ib {
		if s.Task != task {
			continue
		}
		out, sum, ms, err := greedy(ctx, m, s.ids, p.MaxNew[s.Task])
		if err != nil {
			return fmt.Errorf("%s n=%d depth %g: %w", task, s.N, s.Depth, err)
		}
		ok := Score(s.Task, out, s.Answer)
		logf("accuracy: %s %s n=%d depth %.2f: %q → %q %v", label, s.Task, s.N, s.Depth, s.Answer, out, ok)
		res.Samples = append(res.Samples, Sample{ID: fmt.Sprintf("%s/%d/%g/%d", s.Task, s.N, s.Depth, s.Trial), Task: s.Task, Method: label, N: s.N,
			Tokens: s.Tokens, Depth: s.Depth, Answer: s.Answer, Output: out, Correct: ok, Density: sum.Density, PrefillMs: ms, heads: sum.HeadsPerMethod, exclBy: sum.ExcludedBy})
	}
	return nil
}

// evalNeedle prefills the prompt on an empty cache, then for each query
// compares the argmax with every answer token, feeding the answer token by
// token (decode steps), then the tokens after it (the "." and the next
// query).
func evalNeedle(ctx context.Context, m *shareprefill.Model, s *NeedleSample) (Sample, error) {
	if err := m.Reset(); err != nil {
		return Sample{}, err
	}
	t0 := time.Now()
	logits, err := m.Prefill(ctx, s.prompt)
	if err != nil {
		return Sample{}, err
	}
	ms := float64(time.Since(t0).Microseconds()) / 1e3
	sum, err := attnSummary(m)
	if err != nil {
		return Sample{}, err
	}
	out := Sample{ID: fmt.Sprintf("%s/%d/%d", s.Task, s.N, s.Index), Task: s.Task, N: s.N, Tokens: s.Tokens, Depth: s.Depth,
		Correct: true, Density: sum.Density, PrefillMs: ms, heads: sum.HeadsPerMethod, exclBy: sum.ExcludedBy}
	var answers, outputs []string
	for j, ans := range s.answer {
		hit := true
		var got []int
		for i, t := range ans {
			a := argmax(logits)
			got = append(got, a)
			hit = hit && a == t
			last := j == len(s.answer)-1 && i == len(ans)-1
			if !last {
				if logits, err = m.Prefill(ctx, []int{t}); err != nil {
					return Sample{}, err
				}
			}
		}
		if len(s.then[j]) > 0 {
			if logits, err = m.Prefill(ctx, s.then[j]); err != nil {
				return Sample{}, err
			}
		}
		out.Hits = append(out.Hits, hit)
		out.Correct = out.Correct && hit
		answers = append(answers, s.Keys[s.Asked[j]])
		outputs = append(outputs, strings.TrimSpace(m.Tokenizer().Decode(got)))
	}
	out.Answer, out.Output = strings.Join(answers, " "), strings.Join(outputs, " ")
	if len(s.answer) == 1 {
		out.Hits = nil
	}
	return out, nil
}

// attnRules states the planner, its sharing scope and its exclusion rule
// from the last planned prefill's statistics ("" for dense).
func attnRules(m *shareprefill.Model) string {
	b, err := m.AttentionJSON()
	if err != nil || len(b) == 0 {
		return ""
	}
	var st share.Stats
	if json.Unmarshal(b, &st) != nil || st.Planner == "" {
		return ""
	}
	parts := []string{"planner " + st.Planner}
	for _, x := range []string{st.Scope, st.Exclusion, st.Note} {
		if x != "" {
			parts = append(parts, x)
		}
	}
	return strings.Join(parts, "; ")
}

// greedy prefills ids on an empty cache and decodes up to maxNew tokens
// greedily (stopping at EOS); it returns the text and the prefill's
// attention summary.
func greedy(ctx context.Context, m *shareprefill.Model, ids []int, maxNew int) (string, AttnSummary, float64, error) {
	if err := m.Reset(); err != nil {
		return "", AttnSummary{}, 0, err
	}
	t0 := time.Now()
	logits, err := m.Prefill(ctx, ids)
	if err != nil {
		return "", AttnSummary{}, 0, err
	}
	ms := float64(time.Since(t0).Microseconds()) / 1e3
	sum, err := attnSummary(m)
	if err != nil {
		return "", AttnSummary{}, 0, err
	}
	stop := map[int]bool{}
	if e := m.Tokenizer().EOS(); e >= 0 {
		stop[e] = true
	}
	for _, e := range m.Config().EOSTokenIDs {
		stop[e] = true
	}
	var out []int
	for len(out) < maxNew {
		id := argmax(logits)
		if stop[id] {
			break
		}
		out = append(out, id)
		if len(out) == maxNew || m.Pos() >= m.Context() {
			break
		}
		if logits, err = m.Prefill(ctx, []int{id}); err != nil {
			return "", AttnSummary{}, 0, err
		}
	}
	return m.Tokenizer().Decode(out), sum, ms, nil
}

func argmax(v []float32) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}

// runPerplexity scores every window of every length for one variant.
func runPerplexity(ctx context.Context, m *shareprefill.Model, label string, d *accData, p AccuracyParams, res *AccuracyResults, logf func(string, ...any)) error {
	rows := map[int]*PPLRow{}
	var order []int
	for _, win := range d.windows {
		n := len(win)
		row := rows[n]
		if row == nil {
			row = &PPLRow{Method: label, N: n}
			rows[n] = row
			order = append(order, n)
		}
		first := 0 // the first position whose prediction is scored
		if p.PPLTail > 0 && p.PPLTail < n-1 {
			first = n - 1 - p.PPLTail
		}
		sum, cnt, err := windowNLL(ctx, m, win, first)
		if err != nil {
			return fmt.Errorf("perplexity n=%d window %d: %w", n, row.Windows, err)
		}
		s, err := attnSummary(m)
		if err != nil {
			return err
		}
		row.Density += s.Density
		row.Windows++
		row.Scored += cnt
		row.WindowNLL = append(row.WindowNLL, sum)
		row.WindowTokens = append(row.WindowTokens, float64(cnt))
	}
	for _, n := range order {
		row := rows[n]
		row.NLL, row.CI = RatioCI(row.WindowNLL, row.WindowTokens)
		row.PPL = math.Exp(row.NLL)
		row.Density /= float64(row.Windows)
		logf("accuracy: %s perplexity n=%d: %d windows, NLL %.4f [%.4f, %.4f] (density %.3f)", label, n, row.Windows, row.NLL, row.CI.Lo, row.CI.Hi, row.Density)
		res.Perplexity = append(res.Perplexity, *row)
	}
	return nil
}

// windowNLL prefills win on an empty cache and returns the summed NLL of
// the predictions of positions first…len(win)−2 and their number. The log
// probabilities are computed on every CPU while the engine downloads the
// next rows.
func windowNLL(ctx context.Context, m *shareprefill.Model, win []int, first int) (float64, int, error) {
	type item struct {
		pos    int
		logits []float32
	}
	nll := make([]float64, len(win))
	workers := goruntime.NumCPU()
	items := make(chan item, 64)
	free := make(chan []float32, 64+workers) // reused logits buffers
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range items {
				nll[it.pos] = -model.LogProb(it.logits, win[it.pos+1])
				select {
				case free <- it.logits:
				default:
				}
			}
		})
	}
	err := m.Reset()
	if err == nil {
		err = m.PrefillAll(ctx, win, func(pos int, logits []float32) {
			if pos < first || pos+1 >= len(win) {
				return
			}
			var buf []float32
			select {
			case buf = <-free:
			default:
			}
			if cap(buf) < len(logits) {
				buf = make([]float32, len(logits))
			}
			buf = buf[:len(logits)]
			copy(buf, logits)
			items <- item{pos, buf}
		})
	}
	close(items)
	wg.Wait()
	if err != nil {
		return 0, 0, err
	}
	var sum float64
	for pos := first; pos+1 < len(win); pos++ {
		sum += nll[pos]
	}
	return sum, len(win) - 1 - first, nil
}

// finishAccuracy computes the perplexity deltas, the task summaries with
// their intervals and paired tests, and the ablation rows.
func finishAccuracy(res *AccuracyResults, ablations []Variant) {
	// Perplexity against dense, window by window.
	dense := map[int]*PPLRow{}
	for i := range res.Perplexity {
		if r := &res.Perplexity[i]; r.Method == "dense" {
			dense[r.N] = r
		}
	}
	for i := range res.Perplexity {
		r := &res.Perplexity[i]
		dr, ok := dense[r.N]
		if !ok || len(dr.WindowNLL) != len(r.WindowNLL) {
			continue
		}
		diff := make([]float64, len(r.WindowNLL))
		for w := range diff {
			diff[w] = r.WindowNLL[w] - dr.WindowNLL[w]
		}
		dl, ci := RatioCI(diff, r.WindowTokens)
		rel := math.Exp(r.NLL-dr.NLL) - 1
		r.DeltaNLL, r.DeltaCI, r.RelPPL = &dl, &ci, &rel
	}
	// Retrieval: per (task, variant, n) and per (task, variant) over all n.
	type key struct {
		task, method string
		n            int
	}
	byKey := map[key][]*Sample{}
	var keys []key
	outcome := map[string]map[string]bool{} // method → sample id → correct
	lens := map[key][]int{}                 // (task, method, 0) → lengths seen
	for i := range res.Samples {
		s := &res.Samples[i]
		for _, k := range []key{{s.Task, s.Method, s.N}, {s.Task, s.Method, 0}} {
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], s)
		}
		if k := (key{s.Task, s.Method, 0}); !slices.Contains(lens[k], s.N) {
			lens[k] = append(lens[k], s.N)
		}
		if outcome[s.Method] == nil {
			outcome[s.Method] = map[string]bool{}
		}
		outcome[s.Method][s.ID] = s.Correct
	}
	summarize := func(k key, ref string) TaskSummary {
		ss := byKey[k]
		t := TaskSummary{Task: k.task, Method: k.method, N: k.n, Total: len(ss), HeadsPerMethod: map[string]float64{}}
		var hits []int
		refOut, hasRef := outcome[ref]
		var gains, losses int
		paired := hasRef
		for _, s := range ss {
			if s.Correct {
				t.Correct++
			}
			t.Density += s.Density
			t.PrefillMs += s.PrefillMs
			for m, c := range s.heads {
				t.HeadsPerMethod[m] += float64(c)
			}
			for r, c := range s.exclBy {
				if t.ExcludedBy == nil {
					t.ExcludedBy = map[string]float64{}
				}
				t.ExcludedBy[r] += float64(c)
			}
			for q, h := range s.Hits {
				if len(hits) <= q {
					hits = append(hits, 0)
				}
				if h {
					hits[q]++
				}
			}
			if hasRef {
				rc, ok := refOut[s.ID]
				if !ok {
					paired = false
				}
				switch {
				case s.Correct && !rc:
					gains++
				case !s.Correct && rc:
					losses++
				}
			}
		}
		nn := float64(len(ss))
		t.Accuracy = float64(t.Correct) / nn
		t.CI = Wilson(t.Correct, len(ss))
		t.Density /= nn
		t.PrefillMs /= nn
		for m := range t.HeadsPerMethod {
			t.HeadsPerMethod[m] /= nn
		}
		for r := range t.ExcludedBy {
			t.ExcludedBy[r] /= nn
		}
		for _, h := range hits {
			t.QueryAccuracy = append(t.QueryAccuracy, float64(h)/nn)
		}
		if paired {
			pv := McNemarExact(gains, losses)
			t.Gains, t.Losses, t.P = &gains, &losses, &pv
		}
		return t
	}
	res.Summary = res.Summary[:0]
	for _, k := range keys {
		// The pooled row only where there is more than one length.
		if k.n == 0 && len(lens[k]) < 2 {
			continue
		}
		res.Summary = append(res.Summary, summarize(k, "dense"))
	}
	res.Ablations = res.Ablations[:0]
	if len(ablations) == 0 {
		return
	}
	// The main methods first, on the same task, as the reference rows.
	var rows []Variant
	for _, v := range res.Variants {
		if slices.Contains([]string{"dense", "flex", "share"}, v.Label) {
			v.What = "main method"
			rows = append(rows, v)
		}
	}
	rows = append(rows, ablations...)
	task := ""
	for _, k := range keys {
		if k.method == ablations[0].Label {
			task = k.task
			break
		}
	}
	for _, v := range rows {
		for _, k := range keys {
			if k.method != v.Label || k.n != 0 || k.task != task {
				continue
			}
			row := AblationRow{Variant: v, Task: k.task, TaskSummary: summarize(k, "dense")}
			if vs := summarize(k, "share"); vs.P != nil && v.Label != "share" {
				row.GainsVsShare, row.LossesVsShare, row.PVsShare = vs.Gains, vs.Losses, vs.P
			}
			res.Ablations = append(res.Ablations, row)
		}
	}
}
