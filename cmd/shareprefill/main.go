// Command shareprefill runs Llama-family language models on any Vulkan GPU
// with SharePrefill sparse attention for long prompts.
//
// Subcommands:
//
//	shareprefill run [flags]        generate text from a prompt
//	shareprefill devices            list Vulkan devices and their capabilities
//	shareprefill inspect --model D  describe a model
//	shareprefill calibrate [flags]  make a SharePrefill cluster file
//	shareprefill bench SUB [flags]  benchmarks
//	shareprefill help               this text
//
// Every flag value and output path is checked before the work starts.
// Every user error is one line on stderr; the exit status is 2 for
// command-line misuse (a bad flag, flag value or output path) and 1 for any
// other error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// usageError marks errors caused by bad command-line use (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "generate text from a prompt (default: the embedded stories260K)", runRun},
		{"devices", "list Vulkan devices and their capabilities", runDevices},
		{"calibrate", "make a SharePrefill cluster file for a model from calibration texts", runCalibrate},
		{"inspect", "describe a model: architecture, parameters, dtypes, memory needed", runInspect},
		{"bench", "benchmarks: kernels, prefill, accuracy, gen-model, density, compare (JSON, Markdown, PNG)", runBench},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: shareprefill <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `shareprefill <command> -h` for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one invocation and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if err == nil {
			return 0
		}
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "shareprefill %s: %v\n", c.name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stderr, "shareprefill: unknown command %q (commands: ", args[0])
	for i, c := range commands() {
		if i > 0 {
			fmt.Fprint(stderr, ", ")
		}
		fmt.Fprint(stderr, c.name)
	}
	fmt.Fprintln(stderr, ")")
	return 2
}

// oneLine escapes the control characters of s (a flag name or value the
// user typed may hold a newline), so that an error stays one line.
func oneLine(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// flagSet is a FlagSet that reports a bad flag as one line (by run) and
// prints the usage only for -h.
type flagSet struct {
	*flag.FlagSet
	help io.Writer
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet("shareprefill "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on errors too
	return &flagSet{FlagSet: fs, help: stderr}
}

// parse parses flags and turns a flag error into a usage error.
func parse(fs *flagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(fs.help, "usage: %s [flags]\n\nflags:\n", fs.Name())
			fs.SetOutput(fs.help)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
			return err
		}
		return usageError{oneLine(err.Error()) + " (see -h)"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
