package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/leakforms"
)

// TestScanLeakForms: cryptokeys scan finds a key in every escaped and
// encoded form of internal/leakforms (the table keyformat.Find and the
// engine's revoke/leaked are tested with), once each and on its own line,
// in files and in git history, and counts each glued look-alike once.
func TestScanLeakForms(t *testing.T) {
	dir := t.TempDir()
	var text strings.Builder
	var wantLines []string
	var keys []string
	lookalikes := 0
	line := 0
	for _, f := range leakforms.All {
		k := genKey(t, "ck", "prod")
		keys = append(keys, k.Raw())
		text.WriteString(f.Write(k.Raw()) + "\n")
		line++
		wantLines = append(wantLines, want(filepath.Join(dir, "app.log"), line, k))
		if f.Glue {
			bad := lookalike(t, genKey(t, "ck", "prod"))
			keys = append(keys, bad)
			text.WriteString(f.Write(bad) + "\n")
			line++
			lookalikes++
		}
	}
	writeFile(t, filepath.Join(dir, "app.log"), text.String())

	stdout, stderr, code := runCLI(t, nil, "scan", dir)
	if code != exitFindings {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFindings, stderr)
	}
	if got := lines(stdout); !slices.Equal(got, wantLines) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	if sum := fmt.Sprintf("%d key(s) found (%d distinct); %d look-alike(s)", len(wantLines), len(wantLines), lookalikes); !strings.Contains(stderr, sum) {
		t.Errorf("summary: want %q in\n%s", sum, stderr)
	}
	assertNoSecrets(t, stdout+stderr, keys...)

	// The same file committed: --git reports each key once, at the commit.
	for _, args := range [][]string{{"init", "-q"}, {"add", "app.log"}, {"commit", "-q", "-m", "logs"}} {
		git(t, dir, args...)
	}
	stdout, stderr, code = runCLI(t, nil, "scan", "--git", dir)
	got := lines(stdout)
	if code != exitFindings || len(got) != len(wantLines) {
		t.Fatalf("--git: exit %d, %d findings, want %d:\n%s\n%s", code, len(got), len(wantLines), stdout, stderr)
	}
	for i, l := range got {
		// COMMIT:app.log:LINE, same lines as in the file.
		if _, rest, _ := strings.Cut(l, ":"); rest != strings.TrimPrefix(wantLines[i], filepath.Join(dir, "")+"/") {
			t.Errorf("--git finding %d = %q, want ...:%s", i, l, strings.TrimPrefix(wantLines[i], dir+"/"))
		}
	}
}

// A file with no underscore at all can still hold a key: one whose
// underscores are escaped. (The scanner used to skip such text unread.)
func TestScanKeyWithoutUnderscore(t *testing.T) {
	dir := t.TempDir()
	k := genKey(t, "ck", "prod")
	writeFile(t, filepath.Join(dir, "access.log"), "GET /?key="+url.PathEscape(k.Raw()[:2])+"%5F"+k.Raw()[3:7]+"%5F"+k.Raw()[8:]+" 200\n")
	stdout, stderr, code := runCLI(t, nil, "scan", dir)
	if code != exitFindings || stdout != want(filepath.Join(dir, "access.log"), 1, k)+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
