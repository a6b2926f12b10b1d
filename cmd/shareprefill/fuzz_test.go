package main

import (
	"errors"
	"flag"
	"io"
	"math"
	"strings"
	"testing"
)

// FuzzRunFlags parses arbitrary `run` command lines (arguments separated by
// NUL): parseRunFlags must never panic, and it returns either options that
// satisfy every documented range or a usage error (flag.ErrHelp for -h).
func FuzzRunFlags(f *testing.F) {
	for _, s := range []string{
		"", "--max-tokens\x000", "--temp\x00NaN", "--temp=Inf", "--top-p\x000", "--top-p=1", "--prompt\x00",
		"--prompt=hi\x00--prompt-file=x", "--attn\x00SHARE\x00--clusters\x00c.json", "--preset=release", "-h",
		"--context\x00-1", "--system\x00s\x00--chat", "--stats-json\x00s.json\x00--force", "--seed\x0018446744073709551615",
		"--max-tokens\x009223372036854775807", "x", "--", "--quiet=maybe", "--top-p\x00-0", "--temp\x001e309", "-\n", "--stats-json\x00a\nb/c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		o, err := parseRunFlags(args, io.Discard)
		if err != nil {
			var ue usageError
			if o != nil || (!errors.As(err, &ue) && !errors.Is(err, flag.ErrHelp)) {
				t.Fatalf("%q: options %v and error %T %v, want nil options and a usage error", args, o, err, err)
			}
			if ue.msg != "" && strings.Contains(ue.msg, "\n") {
				t.Fatalf("%q: the usage error is not one line: %q", args, ue.msg)
			}
			return
		}
		g := o.gen
		switch {
		case o == nil:
			t.Fatalf("%q: no options and no error", args)
		case g.MaxTokens < 1:
			t.Fatalf("%q: max tokens %d accepted", args, g.MaxTokens)
		case math.IsNaN(g.Temperature) || math.IsInf(g.Temperature, 0) || g.Temperature < 0:
			t.Fatalf("%q: temperature %v accepted", args, g.Temperature)
		case !(g.TopP > 0 && g.TopP <= 1):
			t.Fatalf("%q: top-p %v accepted", args, g.TopP)
		case o.promptSet && o.prompt == "":
			t.Fatalf("%q: an empty --prompt accepted", args)
		case o.promptSet && o.promptFile != "":
			t.Fatalf("%q: --prompt and --prompt-file accepted", args)
		case o.context < 0:
			t.Fatalf("%q: context %d accepted", args, o.context)
		case o.clusters != "" && !strings.EqualFold(o.attn, "share"):
			t.Fatalf("%q: --clusters without --attn share accepted", args)
		}
	})
}
