package tokenizer

import "fmt"

// FromFiles builds a Tokenizer from the contents of tokenizer.json and,
// when configJSON is not empty, tokenizer_config.json (BOS/EOS names and
// add_bos_token). Use it for models held in memory or in an fs.FS.
func FromFiles(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	t, err := FromJSON(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	if len(configJSON) > 0 {
		if err := t.applyConfig(configJSON); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	return t, nil
}
