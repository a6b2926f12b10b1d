// Package doccheck checks that the repository's documentation references
// resolve: relative Markdown links (and their #anchors) in every .md file,
// citations of the form docs/NAME.md#anchor in source files and Markdown,
// and that no file cites a design document the repository does not have.
//
// Anchors follow GitHub's rules for headings: the heading's text, lower-cased,
// with every character other than letters, digits, spaces, hyphens and
// underscores removed and spaces turned into hyphens; a repeated heading gets
// "-1", "-2", … appended. Explicit <a id="…"> or <a name="…"> anchors count
// too.
//
// The package is used by its own test (TestDocLinks), which runs Check on the
// repository.
package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Problem is one reference that does not resolve.
type Problem struct {
	File string // slash-separated path relative to the root
	Line int    // 1-based
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Retired lists names of design documents that were never part of the
// repository; no file may cite them (cite the pages under docs/ instead).
var Retired = []string{"shareprefill.md", "peers.md", "vulkan-notes.md", "shared/docs"}

// sourceExts are the files scanned for docs/…md citations and retired names,
// besides Markdown.
var sourceExts = []string{".go", ".comp", ".sh", ".py", ".mk", ".mjs", ".c", ".h"}

// skipDir reports whether a directory is outside the checked tree: hidden
// directories (.git, .tools, build carries), fuzz corpora and test data, and
// third-party packages.
func skipDir(name string) bool {
	return name != "." && strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules"
}

// Check walks root and returns every reference that does not resolve,
// sorted by file and line. Files whose base name is in ignore are not
// checked (the checker's own sources cite examples).
func Check(root string, ignore ...string) ([]Problem, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if slices.Contains(ignore, d.Name()) {
			return nil
		}
		if ext == ".md" || slices.Contains(sourceExts, ext) || d.Name() == "Makefile" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("doccheck: walking %s: %w", root, err)
	}
	c := &checker{root: root, anchors: map[string]map[string]bool{}}
	var probs []Problem
	for _, f := range files {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			return nil, fmt.Errorf("doccheck: %w", err)
		}
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("doccheck: %w", err)
		}
		ps, err := c.file(rel, data)
		if err != nil {
			return nil, err
		}
		probs = append(probs, ps...)
	}
	slices.SortFunc(probs, func(a, b Problem) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
	return probs, nil
}

type checker struct {
	root    string
	anchors map[string]map[string]bool // slash path relative to root → anchors
}

var (
	// mdLink matches an inline Markdown link or image target: [text](target)
	// with an optional "title".
	mdLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// docsCite matches a citation of a page under docs/, not preceded by a
	// path character (so ../docs/x.md and a/docs/x.md are links, not
	// citations).
	docsCite = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])(docs/[A-Za-z0-9_.-]+\.md)(#[A-Za-z0-9_-]*)?`)
	scheme   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// file checks one file.
func (c *checker) file(rel string, data []byte) ([]Problem, error) {
	var probs []Problem
	add := func(line int, format string, args ...any) {
		probs = append(probs, Problem{File: rel, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	isMD := strings.HasSuffix(rel, ".md")
	fenced := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		for _, name := range Retired {
			if strings.Contains(line, name) {
				add(n, "cites %q, which is not part of the repository (cite a page under docs/)", name)
			}
		}
		for _, m := range docsCite.FindAllStringSubmatch(line, -1) {
			if msg, err := c.resolve(m[1], strings.TrimPrefix(m[2], "#"), m[2] != ""); err != nil {
				return nil, err
			} else if msg != "" {
				add(n, "%s%s: %s", m[1], m[2], msg)
			}
		}
		if !isMD {
			continue
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if scheme.MatchString(target) {
				continue
			}
			path, anchor, hasAnchor := strings.Cut(target, "#")
			if path == "" {
				path = rel
			} else {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(rel), path))
			}
			if msg, err := c.resolve(path, anchor, hasAnchor); err != nil {
				return nil, err
			} else if msg != "" {
				add(n, "link %s: %s", target, msg)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("doccheck: %s: %w", rel, err)
	}
	return probs, nil
}

// resolve checks that path (slash-separated, relative to the root) exists
// and, when hasAnchor is set, that it is a Markdown file with that anchor.
// It returns a description of the problem, or "".
func (c *checker) resolve(path, anchor string, hasAnchor bool) (string, error) {
	if path == ".." || strings.HasPrefix(path, "../") {
		return "points outside the repository", nil
	}
	st, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(path)))
	if err != nil {
		return "no such file", nil
	}
	if !hasAnchor {
		return "", nil
	}
	if st.IsDir() || !strings.HasSuffix(path, ".md") {
		return "an anchor on a file that is not Markdown", nil
	}
	as, ok := c.anchors[path]
	if !ok {
		data, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(path)))
		if err != nil {
			return "", fmt.Errorf("doccheck: %w", err)
		}
		as = Anchors(data)
		c.anchors[path] = as
	}
	if !as[anchor] {
		return fmt.Sprintf("no heading or anchor %q in %s", anchor, path), nil
	}
	return "", nil
}

var (
	heading    = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	explicitID = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	inlineLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// Anchors returns the anchors of a Markdown document: the GitHub slug of
// every ATX heading outside fenced code blocks, and every explicit
// <a id="…"> or <a name="…">.
func Anchors(md []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(md), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range explicitID.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := Slug(m[2])
		if k := seen[s]; k > 0 {
			seen[s]++
			s = fmt.Sprintf("%s-%d", s, k)
		} else {
			seen[s] = 1
		}
		out[s] = true
	}
	return out
}

// Slug returns GitHub's anchor for a heading's Markdown text: links reduced
// to their text, backticks and asterisks dropped, lower-cased, characters
// other than letters, digits, spaces, hyphens and underscores removed, and
// spaces replaced by hyphens.
func Slug(text string) string {
	text = inlineLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
