package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
)

// The InfiniteBench retrieval tasks (docs/benchmarks.md#accuracy), for models that follow
// instructions; the trained format of bench-lm-8k is in needle.go. Strings
// are verbatim from InfiniteBench (data/construct_synthetic_dataset.py and
// the yarn-mistral templates of src/prompt.py, a base-model completion
// format).
const (
	passkeyPrompt   = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.\n\n"
	passkeyNoise    = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
	passkeyNeedle   = "The pass key is {key}. Remember it. {key} is the pass key.\n"
	passkeyQuestion = "\n\nWhat is the pass key?\n\nThe pass key is"

	kvPrompt = "Extract the value corresponding to the specified key in the JSON object below.\n\nJSON data:\n{"
)

// Tasks are the InfiniteBench retrieval task names (NeedleTasks are the
// trained-format ones).
var Tasks = []string{"passkey", "kv"}

// TaskSpec is one generated retrieval sample, identical for every method.
type TaskSpec struct {
	Task   string  `json:"task"`
	N      int     `json:"n"`      // target prompt+answer length in tokens
	Tokens int     `json:"tokens"` // actual prompt tokens
	Depth  float64 `json:"depth"`
	Trial  int     `json:"trial"`
	Answer string  `json:"answer"`
	ids    []int
}

// encoder turns text into prompt ids (with BOS as the tokenizer adds it).
type encoder func(text string) []int

// fitUnits finds the largest u ≥ 1 with len(enc(build(u))) ≤ budget
// (build must grow with u): a first guess from the cost of 16 units, a
// doubling search for an upper end, then bisection.
func fitUnits(enc encoder, build func(u int) string, budget int) (int, []int, error) {
	ids := enc(build(1))
	if len(ids) > budget {
		return 0, nil, fmt.Errorf("even one filler unit needs %d tokens, over the budget of %d", len(ids), budget)
	}
	per := max(1, (len(enc(build(17)))-len(ids))/16)
	lo, best := 1, ids
	hi := max(2, (budget-len(ids))/per+2)
	for {
		t := enc(build(hi))
		if len(t) > budget {
			break
		}
		lo, best, hi = hi, t, hi*2
	}
	hi-- // hi does not fit
	for lo < hi {
		mid := (lo + hi + 1) / 2
		t := enc(build(mid))
		if len(t) <= budget {
			lo, best = mid, t
		} else {
			hi = mid - 1
		}
	}
	return lo, best, nil
}

// depthSplit puts the needle after round(depth·u) of u units.
func depthSplit(depth float64, u int) int { return int(math.Round(depth * float64(u))) }

func taskRNG(seed uint64, task string, n, trial int, depth float64) *rand.Rand {
	var h uint64 = 1469598103934665603
	for _, c := range task {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed^h, uint64(n)<<32^uint64(trial)<<16^uint64(math.Round(depth*1000))))
}

// buildPasskey is InfiniteBench passkey: noise·j + needle + noise·(u−j).
func buildPasskey(enc encoder, seed uint64, n, budget int, depth float64, trial int) (TaskSpec, error) {
	rng := taskRNG(seed, "passkey", n, trial, depth)
	key := fmt.Sprintf("%05d", rng.IntN(100000))
	needle := strings.ReplaceAll(passkeyNeedle, "{key}", key)
	build := func(u int) string {
		j := depthSplit(depth, u)
		return passkeyPrompt + strings.Repeat(passkeyNoise, j) + needle + strings.Repeat(passkeyNoise, u-j) + passkeyQuestion
	}
	_, ids, err := fitUnits(enc, build, budget)
	if err != nil {
		return TaskSpec{}, err
	}
	return TaskSpec{Task: "passkey", N: n, Tokens: len(ids), Depth: depth, Trial: trial, Answer: key, ids: ids}, nil
}

func uuid4(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// buildKV is InfiniteBench kv_retrieval with uuid4 keys and values: the
// queried pair sits at depth·(pairs−1).
func buildKV(enc encoder, seed uint64, n, budget int, depth float64, trial int) (TaskSpec, error) {
	rng := taskRNG(seed, "kv", n, trial, depth)
	var keys, vals []string
	pair := func(i int) (string, string) {
		for len(keys) <= i {
			keys = append(keys, uuid4(rng))
			vals = append(vals, uuid4(rng))
		}
		return keys[i], vals[i]
	}
	build := func(u int) string {
		var b strings.Builder
		b.WriteString(kvPrompt)
		for i := 0; i < u; i++ {
			k, v := pair(i)
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: %q", k, v)
		}
		q, _ := pair(depthSplit(depth, u-1))
		fmt.Fprintf(&b, "}\nKey: \"%s\"\nThe value associated with the specified key is: ", q)
		return b.String()
	}
	u, ids, err := fitUnits(enc, build, budget)
	if err != nil {
		return TaskSpec{}, err
	}
	_, v := pair(depthSplit(depth, u-1))
	return TaskSpec{Task: "kv", N: n, Tokens: len(ids), Depth: depth, Trial: trial, Answer: v, ids: ids}, nil
}

var firstInt = regexp.MustCompile(`\d+`)

// Score says whether output answers the task: passkey compares the first
// integer of the output with the key; kv looks for the value among the
// output's words after InfiniteBench's punctuation stripping.
func Score(task, output, answer string) bool {
	switch task {
	case "kv":
		for _, c := range []string{"\n", ":", "\"", "'", ".", ",", "?", "!", "{", "}"} {
			output = strings.ReplaceAll(output, c, " ")
		}
		for _, w := range strings.Fields(output) {
			if w == answer {
				return true
			}
		}
		return false
	default:
		return firstInt.FindString(output) == answer
	}
}
