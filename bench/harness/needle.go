package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// NeedleTasks are the retrieval tasks in bench-lm-8k's trained format (its
// README: synthetic documents of BOS, a window of real text as filler,
// needles "\nThe secret key for <word> is <5-digit number>.\n" at random
// depths — one pair in half the documents, 2–8 in the other half — then
// 1–3 queries "\nWhat is the secret key for <word>? The secret key for
// <word> is <number>."). Every variant stays inside that distribution:
//
//   - secret: one needle, one query;
//   - secret2: two needles with different words, one query ("which of two
//     keys": the other needle is a distractor);
//   - secret-multi: four needles, three queries in sequence; the sample is
//     right when all three answers are.
var NeedleTasks = []string{"secret", "secret2", "secret-multi"}

// needleShape is (needles, queries) per task.
var needleShape = map[string][2]int{"secret": {1, 1}, "secret2": {2, 1}, "secret-multi": {4, 3}}

// NeedleSample is one trained-format retrieval sample: the prompt (BOS, a
// filler window of held-out tokens with the needles inserted at token
// positions, the first query) and, per query, the answer tokens scored by
// exact match and the tokens fed after them (the answer's "." and the next
// query). Needle, filler, queries and answers are tokenised separately,
// as the training documents were, so no token spans two pieces.
type NeedleSample struct {
	Task  string `json:"task"`
	N     int    `json:"n"`     // the sample's total tokens are at most N
	Index int    `json:"index"` // stratum of the depth, 0…samples−1
	// Depth is the position of the first queried needle in the filler,
	// as a fraction of the filler tokens (stratified over [0.02, 0.98]).
	Depth  float64   `json:"depth"`
	Words  []string  `json:"words"`
	Keys   []string  `json:"keys"`
	Depths []float64 `json:"depths"` // per needle
	Asked  []int     `json:"asked"`  // needle index of each query, in order
	Tokens int       `json:"tokens"` // prompt tokens
	Filler int       `json:"filler"` // filler tokens
	Start  int       `json:"start"`  // filler window start in the held-out stream
	prompt []int
	answer [][]int // scored tokens per query
	then   [][]int // tokens fed after each answer (its "." and the next query)
}

// NeedleStratumDepth is the depth of stratum i of s: the midpoint of the
// i-th of s equal parts of [0.02, 0.98] (bench-lm-8k's eval used the same
// rule for 20 trials: 0.044 … 0.956).
func NeedleStratumDepth(i, s int) float64 {
	return 0.02 + 0.96*(float64(i)+0.5)/float64(s)
}

// needleRNG seeds one sample: the same (seed, task, n, index) gives the same
// sample in every run and for every method.
func needleRNG(seed uint64, task string, n, index int) *rand.Rand {
	var h uint64 = 1469598103934665603
	for _, c := range task {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed^h, uint64(n)<<32^uint64(index)))
}

// BuildNeedleSample builds sample index of task at length n from the
// held-out token stream and the needle words. enc tokenises a piece without
// BOS; bos < 0 means the model has none.
func BuildNeedleSample(enc func(string) []int, bos int, stream []int, words []string, task string, n, index, samples int, seed uint64) (NeedleSample, error) {
	shape, ok := needleShape[task]
	if !ok {
		return NeedleSample{}, fmt.Errorf("unknown trained-format task %q (known: %v)", task, NeedleTasks)
	}
	pairs, queries := shape[0], shape[1]
	if len(words) < pairs {
		return NeedleSample{}, fmt.Errorf("%s: %d needle words, need %d", task, len(words), pairs)
	}
	rng := needleRNG(seed, task, n, index)
	s := NeedleSample{Task: task, N: n, Index: index, Depth: NeedleStratumDepth(index, samples)}
	seen := map[string]bool{}
	for len(s.Words) < pairs {
		w := words[rng.IntN(len(words))]
		if !seen[w] {
			seen[w] = true
			s.Words = append(s.Words, w)
		}
	}
	keys := map[string]bool{}
	for len(s.Keys) < pairs {
		k := fmt.Sprint(10000 + rng.IntN(90000))
		if !keys[k] {
			keys[k] = true
			s.Keys = append(s.Keys, k)
		}
	}
	// Needle 0 is asked first, at the stratified depth; the others sit at
	// uniform depths in the same range and are asked in random order.
	s.Depths = []float64{s.Depth}
	for i := 1; i < pairs; i++ {
		s.Depths = append(s.Depths, 0.02+0.96*rng.Float64())
	}
	s.Asked = []int{0}
	others := rng.Perm(pairs - 1)
	for _, o := range others[:queries-1] {
		s.Asked = append(s.Asked, o+1)
	}
	// Pieces.
	needles := make([][]int, pairs)
	used := 0
	if bos >= 0 {
		used++
	}
	for i := range needles {
		needles[i] = enc("\nThe secret key for " + s.Words[i] + " is " + s.Keys[i] + ".\n")
		used += len(needles[i])
	}
	qs := make([][]int, queries)
	for j, a := range s.Asked {
		q := "\nWhat is the secret key for " + s.Words[a] + "? The secret key for " + s.Words[a] + " is"
		qs[j] = enc(q)
		full := enc(q + " " + s.Keys[a] + ".")
		if len(full) < len(qs[j])+2 || !slices.Equal(full[:len(qs[j])], qs[j]) {
			return NeedleSample{}, fmt.Errorf("%s: the query %q and its answer do not tokenise apart", task, q)
		}
		ans := full[len(qs[j]):]
		// The last token is the final "."; what precedes it is scored.
		s.answer = append(s.answer, ans[:len(ans)-1])
		s.then = append(s.then, ans[len(ans)-1:])
		used += len(full)
	}
	for j := 0; j+1 < queries; j++ {
		s.then[j] = append(s.then[j], qs[j+1]...)
	}
	s.then[queries-1] = nil // nothing is fed after the last answer
	s.Filler = n - used
	if s.Filler < 16 {
		return NeedleSample{}, fmt.Errorf("%s n=%d: the needles and queries need %d tokens, leaving %d for the filler", task, n, used, s.Filler)
	}
	if len(stream) < s.Filler {
		return NeedleSample{}, fmt.Errorf("%s n=%d: the held-out stream has %d tokens, fewer than the %d filler tokens", task, n, len(stream), s.Filler)
	}
	s.Start = rng.IntN(len(stream) - s.Filler + 1)
	filler := stream[s.Start : s.Start+s.Filler]
	// Insert the needles at their token positions (ties keep needle order).
	order := make([]int, pairs)
	for i := range order {
		order[i] = i
	}
	pos := func(i int) int { return int(math.Round(s.Depths[i] * float64(s.Filler))) }
	slices.SortStableFunc(order, func(a, b int) int { return pos(a) - pos(b) })
	p := make([]int, 0, n)
	if bos >= 0 {
		p = append(p, bos)
	}
	at := 0
	for _, i := range order {
		p = append(p, filler[at:pos(i)]...)
		p = append(p, needles[i]...)
		at = pos(i)
	}
	p = append(p, filler[at:]...)
	p = append(p, qs[0]...)
	s.prompt = p
	s.Tokens = len(p)
	return s, nil
}

// total is the number of tokens the sample puts in the KV cache: the
// prompt, every answer token but the last one's, and what is fed after
// each answer.
func (s *NeedleSample) total() int {
	t := len(s.prompt)
	for j := range s.answer {
		t += len(s.answer[j]) + len(s.then[j])
	}
	return t - 1
}
