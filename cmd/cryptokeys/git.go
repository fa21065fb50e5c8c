package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// gitLogArgs lists every line any commit added, once, with enough context
// to locate it. The options pin down output that user or repository config
// could otherwise change (prefixes, quoting, colour, signatures, external
// diff or textconv programs, which would also run code from the repo).
var gitLogArgs = []string{
	"-c", "core.quotePath=false", "-c", "diff.suppressBlankEmpty=false",
	"log", "--all", "--reflog",
	"-p", "-U0", "--no-color", "--no-ext-diff", "--no-textconv",
	// Without renames a moved file counts as added at its new path, so the
	// key is reported where it now lives too.
	"--no-renames", "--no-relative", "--submodule=short",
	// First-parent merge diffs catch evil merges and stash WIP commits;
	// the duplicates they bring are dropped by (key, file).
	"--diff-merges=first-parent",
	"--src-prefix=a/", "--dst-prefix=b/", "--no-show-signature",
	// A NUL cannot occur in a path or a message line, so these markers
	// cannot be forged by repository content.
	"--format=%x00%H%n%B%x00",
}

// scanGit scans every commit reachable from any ref or reflog entry of the
// repository at dir: the lines each commit added and its message. A key is
// reported once per file, at the oldest commit seen to add it (git log lists
// newest first), which is where it leaked.
func (s *scanner) scanGit(ctx context.Context, dir string) {
	// #nosec G204 -- fixed program and options; dir is one argument (no shell), the value of -C
	if out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--git-dir").CombinedOutput(); err != nil {
		s.fail("%s: not a git repository: %s", dir, bytes.TrimSpace(out))
		return
	}
	// #nosec G204 -- fixed program and options (gitLogArgs); dir is one argument (no shell), the value of -C
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, gitLogArgs...)...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.fail("%v", err)
		return
	}
	if err := cmd.Start(); err != nil {
		s.fail("running git: %v", err)
		return
	}

	type place struct{ key, file string }
	var order []place
	oldest := map[place]finding{}
	collect := &scanner{maxSize: s.maxSize, stderr: s.stderr, emit: func(f finding) {
		p := place{f.key.Raw(), f.where[strings.IndexByte(f.where, ':')+1:]}
		if _, ok := oldest[p]; !ok {
			order = append(order, p)
		}
		oldest[p] = f
	}}
	perr := parseGitLog(out, collect)
	if perr != nil {
		// Drain so git is not blocked writing to a pipe nobody reads.
		_, _ = io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	s.lookalikes += collect.lookalikes
	s.binary += collect.binary
	for _, p := range order {
		f := oldest[p]
		s.report(f.where, f.line, f.key)
	}
	switch {
	case perr != nil:
		s.fail("%s: reading git log: %v", dir, perr)
	case werr != nil:
		s.fail("%s: git log: %v: %s", dir, werr, bytes.TrimSpace(errBuf.Bytes()))
	}
}

// parseGitLog reads the output of git log with gitLogArgs and hands each
// added line and message line to s.scanText, located as commit:file.
func parseGitLog(r io.Reader, s *scanner) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var (
		commit, file     string
		inMessage        bool
		msgLine          int
		newLine          int
		oldLeft, newLeft int
		buf              []byte
	)
	for {
		line, err := readLine(br, &buf)
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		switch {
		case oldLeft > 0 || newLeft > 0:
			switch line[0:min(1, len(line))] {
			case "+":
				s.scanText(commit+":"+file, []byte(line[1:]), newLine)
				newLine++
				newLeft--
			case "-":
				oldLeft--
			case " ", "":
				newLine++
				oldLeft--
				newLeft--
			case "\\": // "\ No newline at end of file"
			default:
				return fmt.Errorf("commit %s: unexpected line in hunk of %s", commit, file)
			}
		case inMessage:
			if line == "\x00" {
				inMessage = false
				continue
			}
			msgLine++
			s.scanText(commit+":(commit message)", []byte(line), msgLine)
		case strings.HasPrefix(line, "\x00"):
			commit, file, inMessage, msgLine = line[1:], "", true, 0
		case strings.HasPrefix(line, "diff --git "):
			file = ""
		case strings.HasPrefix(line, "Binary files ") && strings.HasSuffix(line, " differ"):
			// git shows no lines of a binary change; a deletion adds nothing.
			if added := binaryPath(line); added != "" {
				s.skip(&s.binary, commit+":"+added, "binary")
			}
		case strings.HasPrefix(line, "+++ "):
			file = diffPath(line[4:])
		case strings.HasPrefix(line, "@@ "):
			var perr error
			oldLeft, newLine, newLeft, perr = parseHunkHeader(line)
			if perr != nil {
				return fmt.Errorf("commit %s: %v", commit, perr)
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line without its newline, however long.
func readLine(br *bufio.Reader, buf *[]byte) (string, error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		*buf = append(*buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return strings.TrimSuffix(string(*buf), "\n"), err
	}
}

// diffPath turns the argument of a "+++ " line into a path: "" for
// /dev/null, C-style quoted names unquoted, and the tab git appends to
// names with spaces removed.
func diffPath(s string) string {
	if s == "/dev/null" {
		return ""
	}
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
	} else {
		s = strings.TrimSuffix(s, "\t")
	}
	return strings.TrimPrefix(s, "b/")
}

// binaryPath returns the new path of "Binary files A and B differ", or ""
// when B is /dev/null (the file was deleted).
func binaryPath(line string) string {
	pair := strings.TrimSuffix(strings.TrimPrefix(line, "Binary files "), " differ")
	i := strings.LastIndex(pair, " and ")
	if i < 0 {
		return ""
	}
	return diffPath(pair[i+len(" and "):])
}

// parseHunkHeader reads "@@ -a[,b] +c[,d] @@": it returns the count of old
// lines b, the first new line number c and the count of new lines d.
func parseHunkHeader(h string) (oldCount, newStart, newCount int, err error) {
	fields := strings.Fields(h)
	if len(fields) < 4 || !strings.HasPrefix(fields[1], "-") || !strings.HasPrefix(fields[2], "+") {
		return 0, 0, 0, fmt.Errorf("bad hunk header %q", h)
	}
	_, oldCount, err = parseRange(fields[1][1:])
	if err != nil {
		return 0, 0, 0, err
	}
	newStart, newCount, err = parseRange(fields[2][1:])
	return oldCount, newStart, newCount, err
}

func parseRange(r string) (start, count int, err error) {
	startS, countS, hasCount := strings.Cut(r, ",")
	if start, err = strconv.Atoi(startS); err != nil {
		return 0, 0, fmt.Errorf("bad hunk range %q", r)
	}
	count = 1
	if hasCount {
		if count, err = strconv.Atoi(countS); err != nil {
			return 0, 0, fmt.Errorf("bad hunk range %q", r)
		}
	}
	return start, count, nil
}
