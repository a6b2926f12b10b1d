package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// bpeModel is a BPE model as in Hugging Face tokenizers.
type bpeModel struct {
	vocab        map[string]int32
	merges       map[uint64]uint64 // a<<32|b -> rank<<32|merged id
	unk          int32             // -1 when none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteFB       [256]int32

	// Lazy byte-level mode: words are raw bytes that a ByteLevel
	// pre-tokenizer would have mapped to characters.
	byteIDs  [256]int32       // id of each byte's character, or -1
	rawVocab map[string]int32 // tokens as raw bytes
}

const noMerge = ^uint64(0)

func newBPE(jm *jsonModel, merges [][2]string) (*bpeModel, error) {
	m := &bpeModel{unk: -1, fuseUnk: jm.FuseUnk, byteFallback: jm.ByteFallback, ignoreMerges: jm.IgnoreMerges}
	m.vocab = make(map[string]int32, len(jm.Vocab))
	for tok, id := range jm.Vocab {
		m.vocab[tok] = int32(id)
	}
	if jm.UnkToken != nil {
		id, ok := m.vocab[*jm.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocabulary", *jm.UnkToken)
		}
		m.unk = id
	}
	if jm.ContinuingSubwordPrefix != nil {
		m.prefix = *jm.ContinuingSubwordPrefix
	}
	if jm.EndOfWordSuffix != nil {
		m.suffix = *jm.EndOfWordSuffix
	}
	for b := range m.byteFB {
		m.byteFB[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteFB[b] = id
		}
		m.byteIDs[b] = -1
	}
	m.merges = make(map[uint64]uint64, len(merges))
	for rank, mg := range merges {
		a, ok1 := m.vocab[mg[0]]
		b, ok2 := m.vocab[mg[1]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("model.merges: merge %d %q uses a token not in the vocabulary", rank+1, mg[0]+" "+mg[1])
		}
		right := mg[1]
		if m.prefix != "" && len(right) >= len(m.prefix) && right[:len(m.prefix)] == m.prefix {
			right = right[len(m.prefix):]
		}
		c, ok := m.vocab[mg[0]+right]
		if !ok {
			return nil, fmt.Errorf("model.merges: merged token of merge %d %q is not in the vocabulary", rank+1, mg[0]+" "+mg[1])
		}
		m.merges[uint64(uint32(a))<<32|uint64(uint32(b))] = uint64(rank)<<32 | uint64(uint32(c))
	}
	return m, nil
}

// enableLazyBytes switches the model to take raw bytes instead of
// byte-level characters. It reports whether that is possible.
func (m *bpeModel) enableLazyBytes() bool {
	if m.prefix != "" || m.suffix != "" {
		return false
	}
	for b := 0; b < 256; b++ {
		if id, ok := m.vocab[string(byteToRune[b])]; ok {
			m.byteIDs[b] = id
		}
	}
	m.rawVocab = make(map[string]int32, len(m.vocab))
	buf := make([]byte, 0, 64)
	for tok, id := range m.vocab {
		buf = buf[:0]
		ok := true
		for _, r := range tok {
			if r >= 0 && int(r) < len(runeToByte) && runeToByte[r] >= 0 {
				buf = append(buf, byte(runeToByte[r]))
			} else {
				ok = false
				break
			}
		}
		if ok {
			m.rawVocab[string(buf)] = id
		}
	}
	return true
}

func (m *bpeModel) pairRank(a, b int32) uint64 {
	if v, ok := m.merges[uint64(uint32(a))<<32|uint64(uint32(b))]; ok {
		return v
	}
	return noMerge
}

// Limits of the per-state word cache.
const (
	maxCachedWord   = 128
	maxCacheEntries = 1 << 16
)

// encodeWord appends the ids of one pre-token.
func (m *bpeModel) encodeWord(st *encState, out []int, w string, lazy bool) []int {
	if w == "" {
		return out
	}
	if m.ignoreMerges {
		vocab := m.vocab
		if lazy {
			vocab = m.rawVocab
		}
		if id, ok := vocab[w]; ok {
			return append(out, int(id))
		}
	}
	cacheable := len(w) <= maxCachedWord
	if cacheable {
		if v, ok := st.cache[w]; ok {
			for _, id := range st.arena[v>>32 : v>>32+v&0xffffffff] {
				out = append(out, int(id))
			}
			return out
		}
	}
	syms := m.initial(st, w, lazy)
	syms = m.merge(st, syms)
	if cacheable {
		if len(st.cache) >= maxCacheEntries {
			clear(st.cache)
			st.arena = st.arena[:0]
		}
		st.cache[strings.Clone(w)] = uint64(len(st.arena))<<32 | uint64(len(syms))
		st.arena = append(st.arena, syms...)
	}
	for _, id := range syms {
		out = append(out, int(id))
	}
	return out
}

// initial splits w into its first symbols, with byte fallback and unknown
// handling as in Hugging Face's BPE::merge_word.
func (m *bpeModel) initial(st *encState, w string, lazy bool) []int32 {
	syms := st.syms[:0]
	unkID, unkPending := int32(-1), false
	for i := 0; i < len(w); {
		var s string
		size := 1
		id := int32(-1)
		found := false
		if lazy {
			id = m.byteIDs[w[i]]
			found = id >= 0
			if !found {
				s = string(byteToRune[w[i]])
			}
		} else {
			if w[i] < utf8.RuneSelf {
				size = 1
			} else {
				_, size = utf8.DecodeRuneInString(w[i:])
			}
			s = w[i : i+size]
			if m.prefix != "" && i > 0 {
				s = m.prefix + s
			}
			if m.suffix != "" && i+size == len(w) {
				s += m.suffix
			}
			id, found = m.vocab[s]
		}
		i += size
		if found {
			if unkPending {
				syms = append(syms, unkID)
				unkPending = false
			}
			syms = append(syms, id)
			continue
		}
		if m.byteFallback {
			ok := true
			for j := 0; j < len(s); j++ {
				if m.byteFB[s[j]] < 0 {
					ok = false
					break
				}
			}
			if ok {
				for j := 0; j < len(s); j++ {
					syms = append(syms, m.byteFB[s[j]])
				}
				continue
			}
		}
		if m.unk >= 0 {
			if unkPending && !m.fuseUnk {
				syms = append(syms, unkID)
			}
			unkID, unkPending = m.unk, true
		}
	}
	if unkPending {
		syms = append(syms, unkID)
	}
	st.syms = syms
	return syms
}

// smallWord is the symbol count up to which merge uses a linear scan.
const smallWord = 48

// merge applies the merges, lowest rank first and leftmost first among
// equal ranks, which is what Hugging Face's priority queue does.
func (m *bpeModel) merge(st *encState, syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	if n > smallWord {
		return m.mergeHeap(st, syms)
	}
	ranks := st.ranks[:0]
	for i := 0; i+1 < n; i++ {
		ranks = append(ranks, m.pairRank(syms[i], syms[i+1]))
	}
	st.ranks = ranks
	for n > 1 {
		best, bi := noMerge, -1
		for i, r := range ranks[:n-1] {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		syms[bi] = int32(uint32(best))
		copy(syms[bi+1:n-1], syms[bi+2:n])
		if bi+2 < n {
			copy(ranks[bi+1:n-2], ranks[bi+2:n-1])
		}
		n--
		if bi+1 < n {
			ranks[bi] = m.pairRank(syms[bi], syms[bi+1])
		}
		if bi > 0 {
			ranks[bi-1] = m.pairRank(syms[bi-1], syms[bi])
		}
	}
	return syms[:n]
}

type mergeItem struct {
	rank uint32
	pos  int32
	id   int32
}

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

type symNode struct {
	id         int32
	prev, next int32
	dead       bool
}

func heapPush(h []mergeItem, it mergeItem) []mergeItem {
	h = append(h, it)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []mergeItem) (mergeItem, []mergeItem) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			c = r
		}
		if !h[c].less(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}

// mergeHeap is Hugging Face's Word::merge_all: a priority queue over a
// linked list of symbols, O(n log n).
func (m *bpeModel) mergeHeap(st *encState, syms []int32) []int32 {
	n := len(syms)
	nodes := st.nodes[:0]
	h := st.heap[:0]
	for i, id := range syms {
		nodes = append(nodes, symNode{id: id, prev: int32(i - 1), next: int32(i + 1)})
	}
	nodes[n-1].next = -1
	for i := 0; i+1 < n; i++ {
		if r := m.pairRank(syms[i], syms[i+1]); r != noMerge {
			h = heapPush(h, mergeItem{rank: uint32(r >> 32), pos: int32(i), id: int32(uint32(r))})
		}
	}
	for len(h) > 0 {
		var top mergeItem
		top, h = heapPop(h)
		cur := &nodes[top.pos]
		if cur.dead || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := nodes[nextPos]
		r := m.pairRank(cur.id, right.id)
		if r == noMerge || int32(uint32(r)) != top.id {
			continue // stale entry
		}
		cur.id = top.id
		cur.next = right.next
		nodes[nextPos].dead = true
		if right.next >= 0 {
			nodes[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if r := m.pairRank(nodes[cur.prev].id, cur.id); r != noMerge {
				h = heapPush(h, mergeItem{rank: uint32(r >> 32), pos: cur.prev, id: int32(uint32(r))})
			}
		}
		if cur.next >= 0 {
			if r := m.pairRank(cur.id, nodes[cur.next].id); r != noMerge {
				h = heapPush(h, mergeItem{rank: uint32(r >> 32), pos: top.pos, id: int32(uint32(r))})
			}
		}
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = nodes[i].next {
		out = append(out, nodes[i].id)
	}
	st.nodes, st.heap = nodes, h
	return out
}

// encState holds per-call scratch space and the word cache.
type encState struct {
	cache  map[string]uint64 // word -> offset<<32 | count in arena
	arena  []int32
	syms   []int32
	ranks  []uint64
	nodes  []symNode
	heap   []mergeItem
	pieces []string
}

func newEncState() *encState {
	return &encState{cache: make(map[string]uint64, 1024)}
}
