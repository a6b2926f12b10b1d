package shareprefill_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/share"
)

func openEmbedded(t *testing.T, opts shareprefill.Options) *shareprefill.Model {
	t.Helper()
	dev := gputest.Device(t)
	m, err := shareprefill.Load(context.Background(), dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestCloseDuringGenerate: Close from another goroutine while Generate runs
// cancels it and waits for it (it used to free the device under the running
// call: SIGSEGV in the C shim). Generate returns an error wrapping
// context.Canceled, and every later call gets ErrClosed.
func TestCloseDuringGenerate(t *testing.T) {
	for round := 0; round < 3; round++ {
		m := openEmbedded(t, shareprefill.Options{})
		started := make(chan struct{})
		var once sync.Once
		var genErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, genErr = m.Generate(context.Background(), "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 400},
				func(string) error { once.Do(func() { close(started) }); return nil })
		}()
		<-started
		m.Close()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Generate did not return after Close")
		}
		if !errors.Is(genErr, context.Canceled) {
			t.Errorf("round %d: Generate interrupted by Close returned %v, want context.Canceled", round, genErr)
		}
		// Every call after Close: ErrClosed, no panic.
		if _, err := m.Generate(context.Background(), "Lily", shareprefill.GenerateOptions{MaxTokens: 2}, func(string) error { return nil }); !errors.Is(err, shareprefill.ErrClosed) {
			t.Errorf("Generate after Close: %v, want ErrClosed", err)
		}
		if err := m.Reset(); !errors.Is(err, shareprefill.ErrClosed) {
			t.Errorf("Reset after Close: %v, want ErrClosed", err)
		}
		if _, err := m.Prefill(context.Background(), []int{1, 2}); !errors.Is(err, shareprefill.ErrClosed) {
			t.Errorf("Prefill after Close: %v, want ErrClosed", err)
		}
		m.Close() // twice is fine
	}
}

// TestGenerateOverlapIsBusy: a second Generate while one runs gets ErrBusy
// and leaves the first intact.
func TestGenerateOverlapIsBusy(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{})
	var second error
	var text strings.Builder
	_, err := m.Generate(context.Background(), "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 10, Temperature: 0},
		func(s string) error {
			if second == nil {
				_, second = m.Generate(context.Background(), "Lily", shareprefill.GenerateOptions{MaxTokens: 2}, func(string) error { return nil })
			}
			text.WriteString(s)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(second, shareprefill.ErrBusy) {
		t.Errorf("overlapping Generate: %v, want ErrBusy", second)
	}
	if !strings.HasPrefix(text.String(), ", there was a little") {
		t.Errorf("the first call's text changed: %q", text.String())
	}
}

// TestAttentionJSONDuringGenerate: the statistics accessors are safe during a
// call (run under -race: they used to read the planner's statistics while
// the prefill wrote them), and report the last completed call.
func TestAttentionJSONDuringGenerate(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{Attention: "share"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := m.AttentionJSON(); err != nil {
				t.Error(err)
				return
			}
			_ = m.AttentionSummary()
		}
	}()
	prompt := strings.Repeat("Once upon a time there was a cat. ", 12) // longer than one 32-token block
	for i := 0; i < 2; i++ {
		if _, err := m.Generate(context.Background(), prompt, shareprefill.GenerateOptions{MaxTokens: 5}, func(string) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	data, err := m.AttentionJSON()
	if err != nil {
		t.Fatal(err)
	}
	var st share.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	ids, _ := m.Encode(prompt, false, "")
	if st.N != len(ids) {
		t.Errorf("statistics describe a call of %d tokens, want the prompt's %d (not a decode step)", st.N, len(ids))
	}
}

// TestStatsOfShortPrompt: a prompt shorter than one block falls back to
// dense attention, and the statistics describe that prefill, not the last
// decode step.
func TestStatsOfShortPrompt(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{Attention: "share"})
	if _, err := m.Generate(context.Background(), "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 8}, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	data, err := m.AttentionJSON()
	if err != nil {
		t.Fatal(err)
	}
	var st share.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.N != 5 || !strings.Contains(st.Note, "shorter than one block") {
		t.Errorf("statistics: n = %d, note %q; want the 5-token prompt's dense fallback", st.N, st.Note)
	}
}

// TestFirstWordKeepsItsSpace: the text Generate streams starts with the space
// that separates it from the prompt (the first word used to lose it: "Lily
// and Tomwere"; greedy stories260K continues both prompts with a word).
func TestFirstWordKeepsItsSpace(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{})
	for _, prompt := range []string{"Lily and Tom", "Once upon a"} {
		var text strings.Builder
		_, err := m.Generate(context.Background(), prompt, shareprefill.GenerateOptions{MaxTokens: 6, Temperature: 0},
			func(s string) error { text.WriteString(s); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text.String(), " ") {
			t.Errorf("%q: generated text %q does not start with the space that separates it from the prompt", prompt, text.String())
		}
	}
}

// TestContextHint: the context-full error names the lengths and suggests a
// longer context only when the model allows one.
func TestContextHint(t *testing.T) {
	long := strings.Repeat("Once upon a time there was a cat. ", 40)
	m := openEmbedded(t, shareprefill.Options{Context: 64})
	_, err := m.Generate(context.Background(), long, shareprefill.GenerateOptions{MaxTokens: 1}, func(string) error { return nil })
	if !errors.Is(err, model.ErrContextFull) || !strings.Contains(err.Error(), "longer context") {
		t.Errorf("context 64 of 512: %v; want ErrContextFull suggesting a longer context", err)
	}
	var notes []string
	m2 := openEmbedded(t, shareprefill.Options{Context: 1024, Logf: func(f string, a ...any) { notes = append(notes, f) }})
	_, err = m2.Generate(context.Background(), strings.Repeat(long, 3), shareprefill.GenerateOptions{MaxTokens: 1}, func(string) error { return nil })
	if !errors.Is(err, model.ErrContextFull) || strings.Contains(err.Error(), "longer context") {
		t.Errorf("context 1024 past the model's 512: %v; want ErrContextFull without suggesting a longer context", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "trained for") {
		t.Errorf("a context past the trained length: notes %q, want one saying so", notes)
	}
}

// TestModelFilesMustBeRegular: a model directory whose files are a symbolic
// link to /dev/zero or a FIFO is an error at once (it used to read forever
// or block).
func TestModelFilesMustBeRegular(t *testing.T) {
	dev := gputest.Device(t)
	src := t.TempDir()
	cfg := tinyConfig()
	if err := model.WriteRandomCheckpoint(src, cfg, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"model.safetensors", "config.json", "tokenizer.json"} {
		for _, kind := range []string{"devzero", "fifo"} {
			dir := t.TempDir()
			entries, _ := os.ReadDir(src)
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(src, e.Name()))
				if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			copyTokenizer(t, dir)
			p := filepath.Join(dir, name)
			os.Remove(p)
			if kind == "devzero" {
				if err := os.Symlink("/dev/zero", p); err != nil {
					t.Skip(err)
				}
			} else if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skip(err)
			}
			done := make(chan error, 1)
			go func() {
				m, err := shareprefill.Load(context.Background(), dev, shareprefill.Options{Model: dir})
				if err == nil {
					m.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Errorf("%s as %s: %v; want a 'not a regular file' error", name, kind, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s as %s: Load did not return", name, kind)
			}
		}
	}
}

// tinyConfig is a small Llama with the embedded tokenizer's vocabulary.
func tinyConfig() model.Config {
	return model.Config{
		Architecture: model.ArchLlama, HiddenSize: 32, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		IntermediateSize: 64, VocabSize: 512, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: true, BOSTokenID: 1, TorchDType: "float32",
	}
}

// copyTokenizer writes the embedded stories260K tokenizer into dir.
func copyTokenizer(t *testing.T, dir string) {
	t.Helper()
	for name, b := range stories260k.Files() {
		if strings.HasPrefix(name, "tokenizer") {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
