package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/share"
	"github.com/shareprefill/shareprefill/share/gpu"
)

// headView is what the viewer shows of one head of one layer.
type headView struct {
	Method  share.Method `json:"method"`
	Density float64      `json:"density"`
	Blocks  int          `json:"blocks"`
	Cluster string       `json:"cluster,omitempty"`
	// Mask is the nb×nb block pattern (row-major, true = computed); nil
	// when only statistics are known (--stats).
	Mask []bool `json:"mask,omitempty"`
}

// layerView is one layer.
type layerView struct {
	Layer       int        `json:"layer"`
	MeanDensity float64    `json:"mean_density"`
	Heads       []headView `json:"heads"`
}

// viewData is everything a frame shows; --dump writes it as JSON (the
// screenshot test reads it to know what each cell must show).
type viewData struct {
	Model     string      `json:"model"`
	Device    string      `json:"device"`
	Planner   string      `json:"planner"`
	Note      string      `json:"note,omitempty"`
	N         int         `json:"n"`
	NB        int         `json:"nb"`
	BlockSize int         `json:"block_size"`
	Layers    []layerView `json:"layers"`
	Prompt    string      `json:"prompt"`
	Text      string      `json:"text"`
	Summary   string      `json:"summary"`
}

// fromStats builds view data from planner statistics (no masks).
func fromStats(st *share.Stats) *viewData {
	v := &viewData{Planner: st.Planner, Note: st.Note, N: st.N, NB: st.NB, BlockSize: st.BlockSize, Summary: st.String()}
	for _, l := range st.Layers {
		lv := layerView{Layer: l.Layer, MeanDensity: l.MeanDensity}
		for _, h := range l.Heads {
			lv.Heads = append(lv.Heads, headView{Method: h.Method, Density: h.Density, Blocks: h.Blocks, Cluster: h.Cluster})
		}
		v.Layers = append(v.Layers, lv)
	}
	return v
}

// loadStats reads share.Stats JSON (shareprefill run --stats-json, or
// Model.AttentionJSON).
func loadStats(path string) (*viewData, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st share.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: not share.Stats JSON: %w", path, err)
	}
	if len(st.Layers) == 0 {
		return nil, fmt.Errorf("%s: no layers in the statistics", path)
	}
	v := fromStats(&st)
	v.Model = path
	return v, nil
}

// runOptions choose the model run whose prefill is shown.
type runOptions struct {
	Model     string
	Attn      string
	Clusters  string
	Preset    string
	Block     int
	Prompt    string
	Tokens    int // pad the prompt to about this many tokens (0: as given)
	MaxTokens int
}

// storiesClusters clusters head h of every layer of the embedded
// stories260K together (a demonstration file, not a calibrated one).
//
//go:embed clusters_stories260k.json
var storiesClusters []byte

const defaultStory = "Lily and Tom went to the park. They played with a red ball and saw a big dog. The dog was friendly and wagged its tail. "

// newPlanner builds the planner of o.Attn with block size o.Block (and a
// minimum budget of one block, so that short prompts of small models are
// sparse too).
func newPlanner(o runOptions) (share.Planner, error) {
	kind, err := share.ParsePlannerKind(o.Attn)
	if err != nil {
		return nil, fmt.Errorf("--attn: %w", err)
	}
	switch kind {
	case share.KindDense:
		return share.NewDense(o.Block)
	case share.KindVerticalSlash:
		c := share.DefaultVSConfig()
		c.BlockSize = o.Block
		c.VerticalSize, c.SlashSize, c.ForcedColumns, c.ForcedDiagonals = 4*o.Block, 4*o.Block, 4, 16
		return share.NewVerticalSlash(c)
	default: // flex or share
		cfg, err := share.Preset(o.Preset)
		if err != nil {
			return nil, err
		}
		cfg.BlockSize, cfg.MinBudget = o.Block, o.Block
		if kind == share.KindFlex {
			return share.NewFlexPrefill(cfg)
		}
		var cl *share.ClusterFile
		switch {
		case o.Clusters != "":
			cl, err = share.LoadClusters(o.Clusters)
		case o.Model == "" || o.Model == shareprefill.EmbeddedModel:
			cl, err = share.ParseClusters(storiesClusters)
		default:
			return share.NewFlexPrefill(cfg) // no cluster file: every head alone
		}
		if err != nil {
			return nil, err
		}
		return share.NewSharePrefill(cfg, cl)
	}
}

// collect loads the model onto dev, prefills the prompt with a planner
// whose every layer plan is recorded, generates greedily, and returns what
// the viewer shows.
func collect(ctx context.Context, dev *runtime.Device, o runOptions) (*viewData, error) {
	p, err := newPlanner(o)
	if err != nil {
		return nil, err
	}
	m, err := shareprefill.Load(ctx, dev, shareprefill.Options{Model: o.Model})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	masks := map[[2]int][]bool{}
	a, err := gpu.New(p, gpu.Options{OnPlan: func(lp *share.LayerPlan) {
		for h := range lp.Heads {
			if l := lp.Heads[h].List; l != nil {
				masks[[2]int{lp.Layer, h}] = l.Mask()
			}
		}
	}})
	if err != nil {
		return nil, err
	}
	if err := m.SetAttention(a); err != nil { // m.Close closes a
		a.Close()
		return nil, err
	}
	prompt := o.Prompt
	if o.Tokens > 0 {
		prompt = padPrompt(m, prompt, o.Tokens)
	}
	var text strings.Builder
	if _, err := m.Generate(ctx, prompt, shareprefill.GenerateOptions{MaxTokens: o.MaxTokens},
		func(s string) error { text.WriteString(s); return nil }); err != nil {
		return nil, err
	}
	st := a.PlannedStats()
	if st == nil {
		st = a.Stats()
	}
	if st == nil {
		return nil, fmt.Errorf("no attention statistics (was the prompt prefilled?)")
	}
	v := fromStats(st)
	for li := range v.Layers {
		for h := range v.Layers[li].Heads {
			if mk, ok := masks[[2]int{v.Layers[li].Layer, h}]; ok && len(mk) == v.NB*v.NB {
				v.Layers[li].Heads[h].Mask = mk
			}
		}
	}
	v.Model, v.Device, v.Prompt, v.Text = m.Name, dev.Info().Name, prompt, text.String()
	return v, nil
}

// padPrompt repeats a short story after prompt until it has about n tokens
// (and fits the context with room to generate).
func padPrompt(m *shareprefill.Model, prompt string, n int) string {
	if max := m.Context() - 64; n > max {
		n = max
	}
	s := prompt
	for {
		ids, err := m.Encode(s+" "+defaultStory, false, "")
		if err != nil || len(ids) > n {
			return s
		}
		s += " " + defaultStory
	}
}
