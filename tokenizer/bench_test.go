package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkLoadLlama3(b *testing.B) {
	dir := sharedDir(b)
	data, err := readMaybeGzip(filepath.Join(dir, llama3Path))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := FromJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, tokPath, corpus string) {
	tk := sharedTokenizer(b, tokPath)
	data, err := os.ReadFile(filepath.Join(sharedDir(b), "corpora", corpus))
	if err != nil {
		b.Fatal(err)
	}
	if len(data) > 1<<20 {
		data = data[:1<<20]
	}
	text := string(data)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.Encode(text, false)
	}
}

func BenchmarkEncodeLlama3KJV(b *testing.B) { benchEncode(b, llama3Path, "kjv/kjv.txt") }
func BenchmarkEncodeQwen3KJV(b *testing.B)  { benchEncode(b, qwen3Path, "kjv/kjv.txt") }
func BenchmarkEncodeLlama2KJV(b *testing.B) { benchEncode(b, llama2Path, "kjv/kjv.txt") }

func BenchmarkDecodeLlama3KJV(b *testing.B) {
	tk := sharedTokenizer(b, llama3Path)
	data, err := os.ReadFile(filepath.Join(sharedDir(b), "corpora", "kjv/kjv.txt"))
	if err != nil {
		b.Fatal(err)
	}
	ids := tk.Encode(string(data[:1<<20]), false)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.Decode(ids)
	}
}
