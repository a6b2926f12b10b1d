// Command tokenizer benchmarks the shareprefill tokenizer: it encodes a
// text (by default the King James Bible) with a tokenizer.json (by default
// Llama 3's) on one core and prints MB/s.
//
// Usage:
//
//	go run ./bench/tokenizer [-tok tokenizer.json[.gz]] [-text file] [-runs 3] [-out ids.txt]
//
// The default paths come from $SHAREPREFILL_SHARED or ../shared/data
// relative to the repository root.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/shareprefill/shareprefill/tokenizer"
)

func sharedData() string {
	if env := os.Getenv("SHAREPREFILL_SHARED"); env != "" {
		if st, err := os.Stat(filepath.Join(env, "data")); err == nil && st.IsDir() {
			return filepath.Join(env, "data")
		}
		return env
	}
	for _, c := range []string{"../shared/data", "../../shared/data", "../../../shared/data"} {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return "../shared/data"
}

func main() {
	data := sharedData()
	tokPath := flag.String("tok", filepath.Join(data, "tokenizers/llama3/tokenizer.json.gz"), "tokenizer.json (or .json.gz)")
	textPath := flag.String("text", filepath.Join(data, "corpora/kjv/kjv.txt"), "text to encode")
	runs := flag.Int("runs", 3, "timed runs (the best is reported)")
	out := flag.String("out", "", "write the ids, one per line, to this file")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)

	t0 := time.Now()
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	load := time.Since(t0)
	raw, err := os.ReadFile(*textPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	text := string(raw)
	mb := float64(len(raw)) / 1e6
	var ids []int
	best, bestCPU := time.Duration(1<<62), time.Duration(1<<62)
	for r := 0; r < *runs; r++ {
		c := cpuTime()
		s := time.Now()
		ids = tok.Encode(text, false)
		d := time.Since(s)
		cpu := cpuTime() - c
		best, bestCPU = min(best, d), min(bestCPU, cpu)
		fmt.Printf("go run %d: wall %.3f s (%.2f MB/s), cpu %.3f s (%.2f MB/s)\n",
			r+1, d.Seconds(), mb/d.Seconds(), cpu.Seconds(), mb/cpu.Seconds())
	}
	fmt.Printf("go: load %d ms, %.2f MB -> %d ids, best wall %.2f MB/s, best cpu %.2f MB/s (GOMAXPROCS=%d)\n",
		load.Milliseconds(), mb, len(ids), mb/best.Seconds(), mb/bestCPU.Seconds(), runtime.GOMAXPROCS(0))
	fmt.Printf("RESULT go wall %.3f cpu %.3f\n", mb/best.Seconds(), mb/bestCPU.Seconds())
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var buf []byte
		for _, id := range ids {
			buf = strconv.AppendInt(buf[:0], int64(id), 10)
			buf = append(buf, '\n')
			w.Write(buf)
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Close()
	}
}

// cpuTime returns the user+system CPU time of the process (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
