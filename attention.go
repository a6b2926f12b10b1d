package shareprefill

import (
	"fmt"

	"github.com/shareprefill/shareprefill/model"
)

// newSparseAttention builds a sparse prefill attention backend.
func newSparseAttention(kind string, opts Options, cfg *model.Config) (model.Attention, attentionStats, error) {
	switch kind {
	case "vs", "flex", "share":
		return nil, nil, fmt.Errorf("--attn %s: sparse attention is not wired into this build yet", kind)
	}
	return nil, nil, fmt.Errorf("unknown attention %q (dense, vs, flex or share)", kind)
}
