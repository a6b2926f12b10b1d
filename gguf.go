package shareprefill

import (
	"context"
	"fmt"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// loadGGUF is Load for a GGUF file: the configuration, the tokenizer and
// the weights all come from the one file.
func loadGGUF(ctx context.Context, dev *runtime.Device, opts Options) (*Model, error) {
	name := opts.Model
	cfg, ck, err := model.OpenGGUF(name)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	defer ck.Close()
	if err := checkContext(opts, cfg, name); err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(ck.GGUF())
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	return start(ctx, dev, opts, name, cfg, tok, ck)
}
