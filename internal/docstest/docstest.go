// Package docstest runs the guides' commands as written.
//
// A fenced block in a Markdown page takes part when the line right above
// its opening fence is a marker:
//
//	<!-- docs-test: NAME -->                      run the block with bash
//	<!-- docs-test: NAME skip="make dev" reason="..." -->
//	                                              run it, leaving out the lines
//	                                              that start with "make dev"
//	                                              (several prefixes: "a|b")
//	<!-- docs-test: NAME output -->               what the run block above it
//	                                              prints (see Matches)
//	<!-- docs-test: NAME file="main.tf" -->       append the block to main.tf
//	<!-- docs-test: NAME skip reason="..." -->    not run, and why
//
// The markers are HTML comments, so readers do not see them. Every run and
// file block of one NAME, in page order, makes one bash script (Script):
// shell variables set by one block are there for the next, as they are for
// a reader pasting the blocks into one terminal. In a page that has any
// marker, every shell block must carry one (Unmarked finds those that do
// not), so a new command cannot slip in untested.
package docstest

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Kinds of marked block.
const (
	Run    = "run"
	Output = "output"
	File   = "file"
	Skip   = "skip"
)

// Block is one marked fenced block.
type Block struct {
	Doc    string // the page it is in
	Line   int    // line of its first content line (1-based)
	Name   string // the flow it belongs to
	Kind   string // Run, Output, File or Skip
	Lang   string // the fence's info string
	Text   string // the content, without the fence's indentation
	File   string // File blocks: the file to append to
	Skip   []string
	Reason string
}

// Fence is a fenced block with or without a marker.
type Fence struct {
	Line   int
	Lang   string
	Marked bool
}

var (
	markerRE = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*([A-Za-z0-9_.-]+)((?:\s+[a-z]+(?:="[^"]*")?)*)\s*-->\s*$`)
	attrRE   = regexp.MustCompile(`([a-z]+)(?:="([^"]*)")?`)
)

// Parse returns the marked blocks of a page, in order, and every fence of it.
func Parse(doc string, src []byte) ([]Block, []Fence, error) {
	var (
		blocks  []Block
		fences  []Fence
		pending *Block // a marker waiting for its fence
		cur     *Block // inside a fence
		curMark bool
		indent  string
		body    []string
		ticks   string
		n       int
	)
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if strings.HasPrefix(trimmed, ticks) && strings.Trim(trimmed, "`") == "" {
				if curMark {
					cur.Text = strings.Join(body, "\n") + "\n"
					blocks = append(blocks, *cur)
				}
				cur, body = nil, nil
				continue
			}
			body = append(body, strings.TrimPrefix(line, indent))
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			ticks = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			indent = line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			lang := strings.TrimSpace(strings.TrimLeft(trimmed, "`"))
			fences = append(fences, Fence{Line: n, Lang: lang, Marked: pending != nil})
			if pending != nil {
				cur, curMark = pending, true
				cur.Line, cur.Lang = n+1, lang
			} else {
				cur, curMark = &Block{}, false
			}
			pending = nil
			continue
		}
		if pending != nil {
			return nil, nil, fmt.Errorf("%s:%d: a docs-test marker must be followed directly by a fenced block", doc, n-1)
		}
		if m := markerRE.FindStringSubmatch(line); m != nil {
			b := &Block{Doc: doc, Name: m[1], Kind: Run}
			for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
				switch key, val := a[1], a[2]; key {
				case "output":
					b.Kind = Output
				case "file":
					b.Kind, b.File = File, val
				case "skip":
					if val == "" {
						b.Kind = Skip
					} else {
						b.Skip = strings.Split(val, "|")
					}
				case "reason":
					b.Reason = val
				default:
					return nil, nil, fmt.Errorf("%s:%d: unknown docs-test attribute %q", doc, n, key)
				}
			}
			if (b.Kind == Skip || len(b.Skip) > 0) && b.Reason == "" {
				return nil, nil, fmt.Errorf("%s:%d: a docs-test skip needs a reason", doc, n)
			}
			if b.Kind == File && b.File == "" {
				return nil, nil, fmt.Errorf("%s:%d: file= needs a file name", doc, n)
			}
			pending = b
			continue
		}
		if strings.Contains(line, "<!--") && strings.Contains(line, "docs-test") {
			return nil, nil, fmt.Errorf("%s:%d: malformed docs-test marker: %s", doc, n, trimmed)
		}
	}
	if cur != nil {
		return nil, nil, fmt.Errorf("%s: unterminated fenced block", doc)
	}
	if pending != nil {
		return nil, nil, fmt.Errorf("%s: a docs-test marker at the end of the page", doc)
	}
	return blocks, fences, sc.Err()
}

// Unmarked returns the lines of the shell fences that carry no marker.
func Unmarked(fences []Fence) []int {
	var lines []int
	for _, f := range fences {
		if !f.Marked && (f.Lang == "sh" || f.Lang == "shell" || f.Lang == "bash" || f.Lang == "console") {
			lines = append(lines, f.Line)
		}
	}
	return lines
}

// Separator is what the script prints before block i's commands.
func Separator(i int) string { return fmt.Sprintf("@@docs-test block %d@@", i) }

// Step is one run block in a Script, with the output blocks that follow it.
type Step struct {
	Block
	Want []Block
}

// Script is the bash script that runs the run blocks in order, with the
// line map from script lines back to page lines (0 for lines of its own).
// A failing command makes the script exit with its status and print
// "docs-test: failed at script line N" on standard error. Lines a block
// skips are left out.
func Script(steps []Step) (string, []string) {
	var sb strings.Builder
	var where []string // where[i]: page position of script line i+1
	emit := func(line, at string) {
		sb.WriteString(line)
		sb.WriteByte('\n')
		where = append(where, at)
	}
	emit("set -euo pipefail", "")
	emit("exec 2>&1", "")
	emit(`trap 'echo "docs-test: failed at script line $LINENO (exit $?)"' ERR`, "")
	for i, s := range steps {
		emit("echo '"+Separator(i)+"'", "")
		for j, line := range strings.Split(strings.TrimSuffix(s.Text, "\n"), "\n") {
			if skipped(line, s.Skip) {
				emit("# (skipped by the docs test) "+line, "")
				continue
			}
			emit(line, fmt.Sprintf("%s:%d", s.Doc, s.Line+j))
		}
	}
	emit("echo '"+Separator(len(steps))+"'", "")
	return sb.String(), where
}

func skipped(line string, prefixes []string) bool {
	t := strings.TrimSpace(line)
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// SkipsUsed reports skip prefixes that match no line of their block, so a
// skip cannot outlive the command it was for.
func SkipsUsed(b Block) error {
	for _, p := range b.Skip {
		found := false
		for _, line := range strings.Split(b.Text, "\n") {
			if skipped(line, []string{p}) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s:%d: skip=%q matches no line of the block", b.Doc, b.Line, p)
		}
	}
	return nil
}

// Split cuts the script's output into each step's share.
func Split(out string, steps int) []string {
	parts := make([]string, steps)
	for i := 0; i < steps; i++ {
		start := strings.Index(out, Separator(i)+"\n")
		if start < 0 {
			break
		}
		start += len(Separator(i)) + 1
		rest := out[start:]
		if end := strings.Index(rest, Separator(i+1)); end >= 0 {
			rest = rest[:end]
		}
		parts[i] = rest
	}
	return parts
}

// SampleKeyID is the key_id the docs use in sample output. In an output
// block it stands for any key_id.
const SampleKeyID = "7Fq2LxR9aTbZ"

// Matches checks that every line of a sample output block, whitespace
// collapsed, is a line of what was printed. Lines that are "..." stand for
// lines left out of the sample; SampleKeyID matches any 12-character key_id.
// It returns the sample lines that were not printed.
func Matches(sample, got string) []string {
	var have []string
	for _, l := range strings.Split(got, "\n") {
		have = append(have, norm(l))
	}
	var missing []string
	for _, l := range strings.Split(sample, "\n") {
		want := norm(l)
		if want == "" || want == "..." {
			continue
		}
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(want), SampleKeyID, "[0-9A-Za-z]{12}") + "$")
		found := false
		for _, h := range have {
			if re.MatchString(h) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, l)
		}
	}
	return missing
}

func norm(s string) string { return strings.Join(strings.Fields(s), " ") }
