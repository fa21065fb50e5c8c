package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// binarySniffLen is how much of a file is checked for a NUL byte, the same
// heuristic and length git uses to call a file binary.
const binarySniffLen = 8000

// finding is one key, located. It holds the parsed key, whose String() shows
// only prefix, environment and key_id, so printing a finding cannot leak.
type finding struct {
	where string // file, or commit:file with --git
	line  int
	key   keyformat.Key
}

func (f finding) String() string {
	return fmt.Sprintf("%s:%d %s (redacted)", f.where, f.line, f.key)
}

type scanner struct {
	maxSize int64
	stderr  io.Writer
	emit    func(finding)

	// keys are the distinct whole keys found, in order, for --revoke.
	keys []string
	seen map[string]bool

	findings, files, binary, tooLarge, lookalikes, errors int
}

// skip reports a file that was not scanned, by name, on stderr; the summary
// counts them and --fail-on-skipped makes them fail the run.
func (s *scanner) skip(counter *int, where, why string) {
	*counter++
	fmt.Fprintf(s.stderr, "cryptokeys scan: %s: skipped, %s\n", where, why)
}

func (s *scanner) skipped() int { return s.binary + s.tooLarge }

func (s *scanner) fail(format string, a ...any) {
	s.errors++
	fmt.Fprintf(s.stderr, "cryptokeys scan: "+format+"\n", a...)
}

func (s *scanner) report(where string, line int, k keyformat.Key) {
	s.findings++
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if !s.seen[k.Raw()] {
		s.seen[k.Raw()] = true
		s.keys = append(s.keys, k.Raw())
	}
	s.emit(finding{where: where, line: line, key: k})
}

func (s *scanner) summary() {
	var parts []string
	if s.findings > 0 {
		parts = append(parts, fmt.Sprintf("%d key(s) found (%d distinct)", s.findings, len(s.keys)))
	}
	if s.lookalikes > 0 {
		parts = append(parts, fmt.Sprintf("%d look-alike(s) with a bad checksum ignored", s.lookalikes))
	}
	if s.tooLarge > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) over --max-size skipped", s.tooLarge))
	}
	if s.binary > 0 {
		parts = append(parts, fmt.Sprintf("%d binary file(s) skipped", s.binary))
	}
	if len(parts) > 0 {
		fmt.Fprintf(s.stderr, "cryptokeys scan: %s\n", strings.Join(parts, "; "))
	}
}

// scanText reports the keys in text whose checksum holds; firstLine is the
// line number of text's first line.
func (s *scanner) scanText(where string, text []byte, firstLine int) {
	// No shortcut on '_' here: a key may be written with its underscores
	// escaped (%5F, \u005f), and Find is as quick as such a test.
	if len(text) < 2+1+1+1+keyformat.BodyLen {
		return
	}
	line, pos := firstLine, 0
	for _, m := range keyformat.Find(text) {
		line += bytes.Count(text[pos:m.Offset], []byte{'\n'})
		pos = m.Offset
		if !m.ChecksumOK {
			s.lookalikes++
			continue
		}
		s.report(where, line, m.Key)
	}
}

// scanPath scans a file or, recursively, a directory. Inside directories,
// .git folders, symlinks and special files are skipped: history is --git's
// job, links may loop or leave the tree, and a FIFO would block forever.
func (s *scanner) scanPath(root string) {
	info, err := os.Stat(root)
	if err != nil {
		s.fail("%v", err)
		return
	}
	if !info.IsDir() {
		// Named explicitly, even a pipe such as <(cmd) is read.
		s.scanFile(root, info)
		return
	}
	if li, err := os.Lstat(root); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		// WalkDir does not descend into a symlinked root; the user named it.
		root += string(filepath.Separator)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			s.fail("%v", err)
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			s.fail("%v", err)
			return nil
		}
		s.scanFile(path, info)
		return nil
	})
	if err != nil {
		s.fail("%v", err)
	}
}

func (s *scanner) scanFile(path string, info fs.FileInfo) {
	if info.Mode().IsRegular() && info.Size() > s.maxSize {
		s.skip(&s.tooLarge, path, fmt.Sprintf("%d bytes is over --max-size", info.Size()))
		return
	}
	f, err := os.Open(path) // #nosec G304 -- reading the files the user asked to scan is the scanner's job; it only reads them
	if err != nil {
		s.fail("%v", err)
		return
	}
	defer f.Close()
	// The file may have grown since Stat, and pipes have no size: read one
	// byte past the cap to notice.
	data, err := io.ReadAll(io.LimitReader(f, s.maxSize+1))
	if err != nil {
		s.fail("%s: %v", path, err)
		return
	}
	if int64(len(data)) > s.maxSize {
		s.skip(&s.tooLarge, path, "over --max-size")
		return
	}
	s.files++
	if bytes.IndexByte(data[:min(len(data), binarySniffLen)], 0) >= 0 {
		s.skip(&s.binary, path, "binary (a NUL byte in its first 8000 bytes)")
		return
	}
	s.scanText(path, data, 1)
}
