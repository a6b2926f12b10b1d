package share

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// ClusterFormat is the value of meta.format written by this package.
const ClusterFormat = "shareprefill-clusters/1"

// HeadRef names one query head of one layer, 0-based. In JSON it is the
// two-element array [layer, query_head].
type HeadRef struct {
	Layer int
	Head  int
}

// String formats the head as (layer,head).
func (h HeadRef) String() string { return fmt.Sprintf("(%d,%d)", h.Layer, h.Head) }

// MarshalJSON writes [layer, head].
func (h HeadRef) MarshalJSON() ([]byte, error) {
	return []byte("[" + strconv.Itoa(h.Layer) + "," + strconv.Itoa(h.Head) + "]"), nil
}

// UnmarshalJSON reads [layer, head]: exactly two non-negative integers.
func (h *HeadRef) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("head entry %s: want [layer, head]: %w", abbrev(b), err)
	}
	if len(raw) != 2 {
		return fmt.Errorf("head entry %s: want [layer, head], got %d elements", abbrev(b), len(raw))
	}
	var v [2]int
	for i, r := range raw {
		x, err := strconv.Atoi(string(bytes.TrimSpace(r)))
		if err != nil || x < 0 {
			return fmt.Errorf("head entry %s: element %d is not a non-negative integer", abbrev(b), i)
		}
		v[i] = x
	}
	h.Layer, h.Head = v[0], v[1]
	return nil
}

func abbrev(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// ClusterFile is the cluster file of docs/algorithm.md#cluster-file: the two official
// keys (clusters, shared_clusters) plus our optional meta object. Cluster
// ids are canonical decimal strings; unlisted heads are noise.
type ClusterFile struct {
	// Clusters maps a cluster id to its members in file order.
	Clusters map[string][]HeadRef
	// SharedClusters lists the clusters that may elect a pivot under
	// ScopeSharedClusters.
	SharedClusters []string
	// Meta is nil for the official file.
	Meta *ClusterMeta
}

// ClusterMeta is the optional provenance object of the cluster file.
// Unknown keys inside meta are ignored on read and dropped on write.
type ClusterMeta struct {
	Format         string                 `json:"format,omitempty"`
	Model          string                 `json:"model,omitempty"`
	ConfigSHA256   string                 `json:"config_sha256,omitempty"`
	NumLayers      int                    `json:"num_layers,omitempty"`
	NumQHeads      int                    `json:"num_q_heads,omitempty"`
	NumKVHeads     int                    `json:"num_kv_heads,omitempty"`
	HeadIndex      string                 `json:"head_index,omitempty"`
	Calibration    *ClusterCalibration    `json:"calibration,omitempty"`
	Representation *ClusterRepresentation `json:"representation,omitempty"`
	Clustering     *ClusteringParams      `json:"clustering,omitempty"`
	Selection      *ClusterSelection      `json:"selection,omitempty"`
	Noise          []HeadRef              `json:"noise,omitempty"`
}

// ClusterCalibration records the calibration prompts (docs/algorithm.md#map-collection).
type ClusterCalibration struct {
	Source       string   `json:"source,omitempty"`
	Prompts      int      `json:"prompts,omitempty"`
	Tokens       int      `json:"tokens,omitempty"`
	PromptSHA256 []string `json:"prompt_sha256,omitempty"`
}

// ClusterRepresentation records how maps were pooled and encoded
// (docs/algorithm.md#pooling, docs/algorithm.md#representation).
type ClusterRepresentation struct {
	Kind      string `json:"kind,omitempty"` // "autoencoder" or "pooled"
	Grid      int    `json:"grid,omitempty"` // pooled grid side
	MapSize   int    `json:"map_size,omitempty"`
	MapBlock  int    `json:"map_block,omitempty"`
	Scale     string `json:"scale,omitempty"`
	Sqrt      bool   `json:"sqrt,omitempty"`
	LatentDim int    `json:"latent_dim,omitempty"`
	Hidden    int    `json:"hidden,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	Epochs    int    `json:"epochs,omitempty"`
	// AELoss is the best validation (or training) reconstruction MSE.
	AELoss float64 `json:"ae_loss,omitempty"`
}

// ClusteringParams records the clustering run (docs/algorithm.md#clustering).
type ClusteringParams struct {
	Linkage        string  `json:"linkage,omitempty"`
	Threshold      float64 `json:"threshold,omitempty"`
	TargetClusters int     `json:"target_clusters,omitempty"`
	MinSize        int     `json:"min_size,omitempty"`
	L2Normalise    bool    `json:"l2_normalise,omitempty"`
	NumClusters    int     `json:"num_clusters,omitempty"`
	NumNoise       int     `json:"num_noise,omitempty"`
	// JaccardWithin/Across are the mean Jaccard similarities of the heads'
	// binary γ patterns within and across clusters (a sanity check).
	JaccardWithin float64 `json:"jaccard_within,omitempty"`
	JaccardAcross float64 `json:"jaccard_across,omitempty"`
}

// ClusterSelection records the shared-cluster selection
// (docs/algorithm.md#shared-cluster-selection).
type ClusterSelection struct {
	Gamma      float64                 `json:"gamma,omitempty"`
	Kappa      float64                 `json:"kappa,omitempty"`
	MinGain    float64                 `json:"min_gain,omitempty"`
	PerCluster map[string]ClusterScore `json:"per_cluster,omitempty"`
}

// ClusterScore holds the selection statistics of one cluster.
type ClusterScore struct {
	Keep float64 `json:"keep"`
	VS   float64 `json:"vs"`
	Dens float64 `json:"dens"`
}

// normalise maps empty optional lists and maps to nil, as Marshal omits
// them.
func (m *ClusterMeta) normalise() {
	if m == nil {
		return
	}
	if len(m.Noise) == 0 {
		m.Noise = nil
	}
	if m.Calibration != nil && len(m.Calibration.PromptSHA256) == 0 {
		m.Calibration.PromptSHA256 = nil
	}
	if m.Selection != nil && len(m.Selection.PerCluster) == 0 {
		m.Selection.PerCluster = nil
	}
}

// ParseID checks that id is a canonical decimal string (digits only, no
// sign, no leading zero except "0") and returns its value.
func ParseID(id string) (int, error) {
	if id == "" {
		return 0, fmt.Errorf("cluster id %q: empty", id)
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("cluster id %q: not a decimal string", id)
		}
	}
	if len(id) > 1 && id[0] == '0' {
		return 0, fmt.Errorf("cluster id %q: leading zero (ids are canonical decimal strings)", id)
	}
	v, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("cluster id %q: %w", id, err)
	}
	return v, nil
}

// rawFile is the top-level JSON shape.
type rawFile struct {
	Clusters       *clusterObject `json:"clusters"`
	SharedClusters []string       `json:"shared_clusters"`
	Meta           *ClusterMeta   `json:"meta"`
}

// clusterObject decodes the clusters object keeping duplicate-key detection.
type clusterObject struct {
	m map[string][]HeadRef
}

func (o *clusterObject) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("clusters: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("clusters: want an object of id → [[layer, head], …]")
	}
	o.m = map[string][]HeadRef{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("clusters: %w", err)
		}
		id, ok := tok.(string)
		if !ok {
			return fmt.Errorf("clusters: want a string key, got %v", tok)
		}
		if _, dup := o.m[id]; dup {
			return fmt.Errorf("clusters: cluster id %q appears twice", id)
		}
		var members []HeadRef
		if err := dec.Decode(&members); err != nil {
			return fmt.Errorf("clusters: cluster %q: %w", id, err)
		}
		if members == nil {
			members = []HeadRef{}
		}
		o.m[id] = members
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("clusters: %w", err)
	}
	return nil
}

// ParseClusters decodes and checks a cluster file (official or extended).
// It checks what needs no model config: ids are canonical decimal strings,
// every entry is [layer, head] with non-negative integers, no cluster is
// empty, a head appears at most once, shared_clusters name existing
// clusters once each, and meta's format, head_index and noise are
// consistent. Use Validate for the model's ranges.
func ParseClusters(data []byte) (*ClusterFile, error) {
	var raw rawFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("share: parse cluster file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("share: parse cluster file: trailing data after the JSON object")
	}
	if raw.Clusters == nil {
		return nil, fmt.Errorf("share: parse cluster file: missing \"clusters\" object")
	}
	f := &ClusterFile{Clusters: raw.Clusters.m, SharedClusters: raw.SharedClusters, Meta: raw.Meta}
	if f.SharedClusters == nil {
		f.SharedClusters = []string{}
	}
	f.Meta.normalise()
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("share: parse cluster file: %w", err)
	}
	return f, nil
}

// LoadClusters reads and parses a cluster file.
func LoadClusters(path string) (*ClusterFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("share: load clusters: %w", err)
	}
	f, err := ParseClusters(data)
	if err != nil {
		return nil, fmt.Errorf("share: load clusters %s: %w", path, err)
	}
	return f, nil
}

// check runs the model-independent checks of ParseClusters.
func (f *ClusterFile) check() error {
	seen := map[HeadRef]string{}
	for _, id := range f.IDs() {
		if _, err := ParseID(id); err != nil {
			return err
		}
		members := f.Clusters[id]
		if len(members) == 0 {
			return fmt.Errorf("cluster %q is empty", id)
		}
		for _, h := range members {
			if h.Layer < 0 || h.Head < 0 {
				return fmt.Errorf("cluster %q: negative head %v", id, h)
			}
			if prev, dup := seen[h]; dup {
				if prev == id {
					return fmt.Errorf("duplicate head %v: listed twice in cluster %q", h, id)
				}
				return fmt.Errorf("duplicate head %v: in clusters %q and %q", h, prev, id)
			}
			seen[h] = id
		}
	}
	sh := map[string]bool{}
	for _, id := range f.SharedClusters {
		if _, err := ParseID(id); err != nil {
			return fmt.Errorf("shared_clusters: %w", err)
		}
		if _, ok := f.Clusters[id]; !ok {
			return fmt.Errorf("shared_clusters: cluster %q does not exist", id)
		}
		if sh[id] {
			return fmt.Errorf("shared_clusters: cluster %q listed twice", id)
		}
		sh[id] = true
	}
	if m := f.Meta; m != nil {
		if m.Format != "" && m.Format != ClusterFormat {
			return fmt.Errorf("meta.format %q: want %q", m.Format, ClusterFormat)
		}
		if m.HeadIndex != "" && m.HeadIndex != "query" {
			return fmt.Errorf("meta.head_index %q: only \"query\" is supported", m.HeadIndex)
		}
		if m.NumLayers < 0 || m.NumQHeads < 0 || m.NumKVHeads < 0 {
			return fmt.Errorf("meta: negative num_layers/num_q_heads/num_kv_heads")
		}
		noise := map[HeadRef]bool{}
		for _, h := range m.Noise {
			if id, ok := seen[h]; ok {
				return fmt.Errorf("meta.noise: head %v is also in cluster %q", h, id)
			}
			if noise[h] {
				return fmt.Errorf("meta.noise: head %v listed twice", h)
			}
			noise[h] = true
		}
		if m.Selection != nil {
			for id := range m.Selection.PerCluster {
				if _, ok := f.Clusters[id]; !ok {
					return fmt.Errorf("meta.selection.per_cluster: cluster %q does not exist", id)
				}
			}
		}
	}
	return nil
}

// Validate checks the file against a model: every (layer, head) in the
// clusters and in meta.noise lies in [0, numLayers) × [0, numQHeads), and
// meta's num_layers / num_q_heads, when present, match. It also repeats the
// structural checks of ParseClusters (for files built in code).
func (f *ClusterFile) Validate(numLayers, numQHeads int) error {
	if numLayers < 1 || numQHeads < 1 {
		return fmt.Errorf("share: cluster file: model has %d layers and %d query heads", numLayers, numQHeads)
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("share: cluster file: %w", err)
	}
	inRange := func(h HeadRef) error {
		if h.Layer >= numLayers {
			return fmt.Errorf("layer %d out of range [0, %d)", h.Layer, numLayers)
		}
		if h.Head >= numQHeads {
			return fmt.Errorf("query head %d out of range [0, %d)", h.Head, numQHeads)
		}
		return nil
	}
	for _, id := range f.IDs() {
		for _, h := range f.Clusters[id] {
			if err := inRange(h); err != nil {
				return fmt.Errorf("share: cluster file: cluster %q head %v: %w", id, h, err)
			}
		}
	}
	if m := f.Meta; m != nil {
		if m.NumLayers != 0 && m.NumLayers != numLayers {
			return fmt.Errorf("share: cluster file: meta.num_layers = %d but the model has %d layers", m.NumLayers, numLayers)
		}
		if m.NumQHeads != 0 && m.NumQHeads != numQHeads {
			return fmt.Errorf("share: cluster file: meta.num_q_heads = %d but the model has %d query heads", m.NumQHeads, numQHeads)
		}
		for _, h := range m.Noise {
			if err := inRange(h); err != nil {
				return fmt.Errorf("share: cluster file: meta.noise head %v: %w", h, err)
			}
		}
	}
	return nil
}

// IDs returns the cluster ids in numeric order (ids that are not canonical
// decimals sort last, lexicographically).
func (f *ClusterFile) IDs() []string {
	ids := make([]string, 0, len(f.Clusters))
	for id := range f.Clusters {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

func compareIDs(a, b string) int {
	va, ea := ParseID(a)
	vb, eb := ParseID(b)
	switch {
	case ea == nil && eb == nil:
		return va - vb
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// Lookup returns the cluster id of every clustered head.
func (f *ClusterFile) Lookup() map[HeadRef]string {
	m := map[HeadRef]string{}
	for id, members := range f.Clusters {
		for _, h := range members {
			m[h] = id
		}
	}
	return m
}

// Marshal encodes the file with clusters in numeric id order, one cluster
// per line, shared_clusters always present and meta only when set.
func (f *ClusterFile) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n  \"clusters\": {")
	for i, id := range f.IDs() {
		if i > 0 {
			b.WriteString(",")
		}
		k, _ := json.Marshal(id)
		members := f.Clusters[id]
		if members == nil {
			members = []HeadRef{}
		}
		v, err := json.Marshal(members)
		if err != nil {
			return nil, fmt.Errorf("share: marshal cluster %q: %w", id, err)
		}
		b.WriteString("\n    ")
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
	}
	b.WriteString("\n  },\n  \"shared_clusters\": ")
	shared := f.SharedClusters
	if shared == nil {
		shared = []string{}
	}
	s, err := json.Marshal(shared)
	if err != nil {
		return nil, fmt.Errorf("share: marshal shared_clusters: %w", err)
	}
	b.Write(s)
	if f.Meta != nil {
		m, err := json.MarshalIndent(f.Meta, "  ", "  ")
		if err != nil {
			return nil, fmt.Errorf("share: marshal meta: %w", err)
		}
		b.WriteString(",\n  \"meta\": ")
		b.Write(m)
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// WriteClusters writes f to path atomically: it writes a temporary file in
// the same directory, syncs it and renames it over path.
func WriteClusters(path string, f *ClusterFile) (err error) {
	data, err := f.Marshal()
	if err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("share: write clusters %s: %w", path, err)
	}
	return nil
}
