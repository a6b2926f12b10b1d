package tokenizer

import "strings"

// ChatFormat names a chat prompt format.
type ChatFormat int

const (
	// ChatNone: no known chat format.
	ChatNone ChatFormat = iota
	// ChatLlama3: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>.
	ChatLlama3
	// ChatML: <|im_start|>role\n...<|im_end|>\n (Qwen).
	ChatML
)

// String returns the format's name.
func (f ChatFormat) String() string {
	switch f {
	case ChatLlama3:
		return "llama3"
	case ChatML:
		return "chatml"
	}
	return "none"
}

// ChatFormat returns the chat format whose special tokens the vocabulary
// has: Llama 3 (<|start_header_id|>, <|end_header_id|>, <|eot_id|>) or
// ChatML (<|im_start|>, <|im_end|>).
func (t *Tokenizer) ChatFormat() ChatFormat {
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := t.tokenIDs[n]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		return ChatLlama3
	case has("<|im_start|>", "<|im_end|>"):
		return ChatML
	}
	return ChatNone
}

// ChatStopIDs returns the ids that end an assistant turn: EOS and, for the
// chat format, <|eot_id|> (Llama 3) or <|im_end|> and <|endoftext|>
// (ChatML).
func (t *Tokenizer) ChatStopIDs() []int {
	var out []int
	add := func(id int) {
		if id >= 0 && !containsInt(out, id) {
			out = append(out, id)
		}
	}
	switch t.ChatFormat() {
	case ChatLlama3:
		add(t.TokenID("<|eot_id|>"))
		add(t.TokenID("<|end_of_text|>"))
	case ChatML:
		add(t.TokenID("<|im_end|>"))
		add(t.TokenID("<|endoftext|>"))
	}
	add(t.eos)
	return out
}

// ChatPrompt returns the prompt text for one system message (omitted when
// empty) and one user message, ending with the opening of the assistant's
// turn, in the model's chat format, as the models' chat templates render
// it. For Llama 3 the text starts with <|begin_of_text|>; Encode it with
// or without addSpecial (a BOS is never doubled). It returns an error when
// the vocabulary has no known chat format.
func (t *Tokenizer) ChatPrompt(system, user string) (string, error) {
	var b strings.Builder
	switch t.ChatFormat() {
	case ChatLlama3:
		if t.bos >= 0 {
			b.WriteString(t.idToToken[t.bos])
		}
		msg := func(role, content string) {
			b.WriteString("<|start_header_id|>" + role + "<|end_header_id|>\n\n")
			b.WriteString(strings.TrimSpace(content))
			b.WriteString("<|eot_id|>")
		}
		if system != "" {
			msg("system", system)
		}
		msg("user", user)
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	case ChatML:
		if system != "" {
			b.WriteString("<|im_start|>system\n" + system + "<|im_end|>\n")
		}
		b.WriteString("<|im_start|>user\n" + user + "<|im_end|>\n")
		b.WriteString("<|im_start|>assistant\n")
	default:
		return "", errNoChat
	}
	return b.String(), nil
}
