package harness

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
)

// AccuracyParams configures RunAccuracy.
type AccuracyParams struct {
	ModelParams
	Lens    []int    `json:"lens"`
	Methods []string `json:"methods"`
	// Corpus is the perplexity text (and the filler of the "secret" task);
	// empty: perplexity is skipped.
	Corpus     string `json:"corpus,omitempty"`
	PPLWindows int    `json:"ppl_windows"`
	// PPLTail scores the last PPLTail tokens of each window (0: the second
	// half, so every scored token sees at least n/2 tokens of context).
	PPLTail int       `json:"ppl_tail"`
	Tasks   []string  `json:"tasks"`
	Depths  []float64 `json:"depths"`
	Trials  int       `json:"trials"`
	Seed    uint64    `json:"seed"`
	// MaxNew is the greedy decode length per task (defaults: passkey 8,
	// secret 8, kv 40).
	MaxNew map[string]int                   `json:"max_new"`
	Logf   func(format string, args ...any) `json:"-"`
}

// DefaultMaxNew are the decode lengths per task.
func DefaultMaxNew() map[string]int { return map[string]int{"passkey": 8, "secret": 8, "kv": 40} }

// PPLRow is the perplexity of one method at one window length.
type PPLRow struct {
	Method   string   `json:"method"`
	N        int      `json:"n"`
	Windows  int      `json:"windows"`
	Scored   int      `json:"scored_tokens"`
	NLL      float64  `json:"nll"` // mean negative log-likelihood, nats
	PPL      float64  `json:"ppl"`
	DeltaNLL *float64 `json:"delta_nll_vs_dense,omitempty"`
	Density  float64  `json:"density"`
}

// Sample is one retrieval answer.
type Sample struct {
	TaskSpec
	Method  string  `json:"method"`
	Output  string  `json:"output"`
	Correct bool    `json:"correct"`
	Density float64 `json:"density"`
}

// TaskSummary aggregates the samples of (task, method, n).
type TaskSummary struct {
	Task     string  `json:"task"`
	Method   string  `json:"method"`
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	Accuracy float64 `json:"accuracy"`
	Density  float64 `json:"density"` // mean over samples
}

// AccuracyResults are the results of RunAccuracy.
type AccuracyResults struct {
	Model      string        `json:"model"`
	Perplexity []PPLRow      `json:"perplexity,omitempty"`
	Summary    []TaskSummary `json:"retrieval_summary,omitempty"`
	Samples    []Sample      `json:"retrieval,omitempty"`
	Skipped    []Skip        `json:"skipped,omitempty"`
}

// Validate checks every parameter before any work, without changing p; its
// errors name the parameters by their `bench accuracy` flags. RunAccuracy
// first replaces a zero PPLWindows by 1 and fills MaxNew's missing tasks.
func (p *AccuracyParams) Validate() error {
	if len(p.Lens) == 0 {
		return fmt.Errorf("--lens: no lengths")
	}
	if len(p.Methods) == 0 {
		return fmt.Errorf("--methods: no methods")
	}
	for _, t := range p.Tasks {
		if !slices.Contains(Tasks, t) {
			return fmt.Errorf("--tasks: unknown task %q (known: %s)", t, strings.Join(Tasks, ", "))
		}
	}
	switch {
	case p.Corpus == "" && len(p.Tasks) == 0:
		return fmt.Errorf("nothing to do: give --corpus and/or --tasks")
	case len(p.Tasks) > 0 && len(p.Depths) == 0:
		return fmt.Errorf("--depths: retrieval tasks need at least one depth")
	case len(p.Tasks) > 0 && p.Trials < 1:
		return fmt.Errorf("--trials %d: want ≥ 1", p.Trials)
	case p.Corpus != "" && p.PPLWindows < 1:
		return fmt.Errorf("--ppl-windows %d: want ≥ 1", p.PPLWindows)
	case p.PPLTail < 0:
		return fmt.Errorf("--ppl-tail %d: want ≥ 0 (0: the second half of each window)", p.PPLTail)
	}
	for _, d := range p.Depths {
		if !(d >= 0 && d <= 1) {
			return fmt.Errorf("--depths: %v outside [0, 1]", d)
		}
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

// RunAccuracy runs perplexity and the retrieval tasks for every method on
// the same windows and samples.
func RunAccuracy(ctx context.Context, p AccuracyParams) (*Report, error) {
	if p.PPLWindows == 0 {
		p.PPLWindows = 1
	}
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
	maxLen := slices.Max(p.Lens)
	res := &AccuracyResults{Model: p.Model}
	var (
		rep     *Report
		corpus  []int
		filler  []string
		samples []TaskSpec
	)
	if p.Corpus != "" {
		b, err := os.ReadFile(p.Corpus)
		if err != nil {
			return nil, fmt.Errorf("--corpus: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) != "" {
				filler = append(filler, l)
			}
		}
	}
	for _, method := range p.Methods {
		logf("accuracy: loading %s for %s (context %d)", p.Model, method, maxLen)
		m, err := p.open(ctx, method, maxLen, nil)
		if err != nil {
			if rep == nil && !isMethodError(err) {
				return nil, err
			}
			res.Skipped = append(res.Skipped, Skip{What: "method " + method, Reason: err.Error()})
			logf("accuracy: %s skipped: %v", method, err)
			continue
		}
		err = func() error {
			defer m.Close()
			if rep == nil {
				rep = NewReport("accuracy", DeviceOf(m.Dev), p)
				rep.Results = res
				if p.Corpus != "" {
					if corpus, err = readCorpusTokens(m, p.Corpus); err != nil {
						return err
					}
				} else {
					rep.Notef("no --corpus: perplexity skipped; the secret task uses the passkey filler")
				}
				if samples, err = buildSamples(m, p, filler); err != nil {
					return err
				}
				rep.Notef("retrieval: greedy decoding; passkey/secret score the first integer of the output, kv the value among the output's words (InfiniteBench scoring)")
			}
			if len(corpus) > 0 {
				for _, n := range p.Lens {
					row, skip, err := perplexity(ctx, m, corpus, n, p)
					if err != nil {
						return fmt.Errorf("perplexity %s n=%d: %w", method, n, err)
					}
					if skip != "" {
						res.Skipped = append(res.Skipped, Skip{What: "perplexity " + method, N: n, Reason: skip})
						continue
					}
					row.Method = method
					logf("accuracy: %s n=%d: nll %.4f (density %.3f)", method, n, row.NLL, row.Density)
					res.Perplexity = append(res.Perplexity, row)
				}
			}
			for _, s := range samples {
				out, dens, err := greedy(ctx, m, s.ids, p.MaxNew[s.Task])
				if err != nil {
					return fmt.Errorf("%s %s n=%d depth %g: %w", s.Task, method, s.N, s.Depth, err)
				}
				ok := Score(s.Task, out, s.Answer)
				logf("accuracy: %s %s n=%d depth %.2f: %q → %q %v", method, s.Task, s.N, s.Depth, s.Answer, out, ok)
				res.Samples = append(res.Samples, Sample{TaskSpec: s, Method: method, Output: out, Correct: ok, Density: dens})
			}
			return nil
		}()
		if err != nil {
			return rep, err
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("bench accuracy: no method could be loaded: %v", res.Skipped)
	}
	finishAccuracy(res)
	return rep, nil
}

func finishAccuracy(res *AccuracyResults) {
	dense := map[int]float64{}
	for _, r := range res.Perplexity {
		if r.Method == "dense" {
			dense[r.N] = r.NLL
		}
	}
	for i := range res.Perplexity {
		if d, ok := dense[res.Perplexity[i].N]; ok {
			x := res.Perplexity[i].NLL - d
			res.Perplexity[i].DeltaNLL = &x
		}
	}
	type key struct {
		task, method string
		n            int
	}
	idx := map[key]int{}
	for _, s := range res.Samples {
		k := key{s.Task, s.Method, s.N}
		i, ok := idx[k]
		if !ok {
			i = len(res.Summary)
			idx[k] = i
			res.Summary = append(res.Summary, TaskSummary{Task: s.Task, Method: s.Method, N: s.N})
		}
		t := &res.Summary[i]
		t.Total++
		if s.Correct {
			t.Correct++
		}
		t.Density += s.Density
	}
	for i := range res.Summary {
		t := &res.Summary[i]
		t.Accuracy = float64(t.Correct) / float64(t.Total)
		t.Density /= float64(t.Total)
	}
}

// buildSamples makes every retrieval sample once (the same prompts for
// every method).
func buildSamples(m *shareprefill.Model, p AccuracyParams, filler []string) ([]TaskSpec, error) {
	enc := func(s string) []int { return m.Tok.Encode(s, true) }
	var out []TaskSpec
	for _, task := range p.Tasks {
		for _, n := range p.Lens {
			budget := n - p.MaxNew[task]
			for _, d := range p.Depths {
				for t := 0; t < p.Trials; t++ {
					var (
						s   TaskSpec
						err error
					)
					switch task {
					case "passkey":
						s, err = buildPasskey(enc, p.Seed, n, budget, d, t)
					case "kv":
						s, err = buildKV(enc, p.Seed, n, budget, d, t)
					case "secret":
						s, err = buildSecret(enc, filler, p.Seed, n, budget, d, t)
					}
					if err != nil {
						return nil, fmt.Errorf("%s n=%d: %w", task, n, err)
					}
					out = append(out, s)
				}
			}
		}
	}
	return out, nil
}

// greedy prefills ids on an empty cache and decodes up to maxNew tokens
// greedily (stopping at EOS); it returns the text and the prefill's
// attention density.
func greedy(ctx context.Context, m *shareprefill.Model, ids []int, maxNew int) (string, float64, error) {
	m.Engine.Reset()
	logits, err := m.Engine.Prefill(ctx, ids)
	if err != nil {
		return "", 0, err
	}
	sum, err := attnSummary(m)
	if err != nil {
		return "", 0, err
	}
	stop := map[int]bool{}
	if e := m.Tok.EOS(); e >= 0 {
		stop[e] = true
	}
	for _, e := range m.Config.EOSTokenIDs {
		stop[e] = true
	}
	var out []int
	for len(out) < maxNew {
		id := argmax(logits)
		if stop[id] {
			break
		}
		out = append(out, id)
		if len(out) == maxNew || m.Engine.Pos() >= m.Engine.Context() {
			break
		}
		if logits, err = m.Engine.Decode(ctx, id); err != nil {
			return "", 0, err
		}
	}
	return m.Tok.Decode(out), sum.Density, nil
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

// perplexity scores PPLWindows windows of n tokens spread evenly over the
// corpus, each one prefill on an empty cache.
func perplexity(ctx context.Context, m *shareprefill.Model, corpus []int, n int, p AccuracyParams) (PPLRow, string, error) {
	if len(corpus) < n {
		return PPLRow{}, fmt.Sprintf("the corpus has %d tokens, fewer than the window of %d", len(corpus), n), nil
	}
	tail := p.PPLTail
	if tail <= 0 || tail > n-1 {
		tail = min(n-1, max(1, n/2))
	}
	w := p.PPLWindows
	row := PPLRow{N: n}
	var sum, dens float64
	for i := 0; i < w; i++ {
		start := 0
		if w > 1 {
			start = i * (len(corpus) - n) / (w - 1)
		}
		win := corpus[start : start+n]
		m.Engine.Reset()
		first := n - 1 - tail // the first position whose logits are scored
		err := m.Engine.PrefillAll(ctx, win, func(pos int, logits []float32) {
			if pos >= first && pos+1 < n {
				sum -= model.LogProb(logits, win[pos+1])
				row.Scored++
			}
		})
		if err != nil {
			return row, "", err
		}
		s, err := attnSummary(m)
		if err != nil {
			return row, "", err
		}
		dens += s.Density
		row.Windows++
	}
	row.NLL = sum / float64(row.Scored)
	row.PPL = math.Exp(row.NLL)
	row.Density = dens / float64(row.Windows)
	return row, "", nil
}
