package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// runCLI runs the command in-process with env as its whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), code
}

func genKey(t *testing.T, prefix, env string) keyformat.Key {
	t.Helper()
	k, err := keyformat.Generate(prefix, env)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lookalike returns k with a checksum that does not hold: same shape, so
// the design regex (and gitleaks) match it, but it is not a key.
func lookalike(t *testing.T, k keyformat.Key) string {
	t.Helper()
	raw := k.Raw()
	last := raw[len(raw)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	s := raw[:len(raw)-1] + string(repl)
	if _, err := keyformat.Parse(s); err != keyformat.ErrBadChecksum {
		t.Fatalf("test setup: look-alike parses as %v", err)
	}
	return s
}

// secretOf is the part of a key-shaped string that must never be printed.
func secretOf(raw string) string {
	return raw[len(raw)-keyformat.SecretLen-keyformat.ChecksumLen : len(raw)-keyformat.ChecksumLen]
}

func assertNoSecrets(t *testing.T, output string, raws ...string) {
	t.Helper()
	for _, raw := range raws {
		if strings.Contains(output, secretOf(raw)) {
			t.Fatalf("output contains a secret:\n%s", output)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func want(where string, line int, k keyformat.Key) string {
	return finding{where: where, line: line, key: k}.String()
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestScanTree(t *testing.T) {
	root := t.TempDir()
	k1 := genKey(t, "ck", "prod")
	k2 := genKey(t, "ck", "staging")
	k3 := genKey(t, "acme9", "dev")
	k4 := genKey(t, "ck", "live")
	k5 := genKey(t, "ck", "prod")
	hidden := genKey(t, "ck", "prod") // only in places the scanner must skip
	bad1, bad2 := lookalike(t, genKey(t, "ck", "prod")), lookalike(t, genKey(t, "ck", "dev"))
	nearBody := genKey(t, "ck", "prod").Raw()[len("ck_prod_"):]
	nearMisses := []string{
		"CK_prod_" + nearBody,                            // upper-case prefix
		"ck_prod_" + nearBody[1:],                        // body 49
		"ck_prod_x" + nearBody,                           // body 51 (a key glued to letters on the right is found: leakforms)
		"ck_abcdefghijklmnopq_" + nearBody,               // environment too long
		"ck_prod_" + nearBody[:20] + "-" + nearBody[21:], // not base62
		"x_" + nearBody,                                  // one-letter prefix, no environment
	}

	writeFile(t, filepath.Join(root, "app/config/.env"), "# settings\nDEBUG=0\nCK_API_KEY="+k1.Raw()+"\n")
	writeFile(t, filepath.Join(root, "app/src/client.go"), strings.Repeat("// filler\n", 9)+
		`	c := New("`+k2.Raw()+`", "`+bad1+`") // two on one line`+"\n"+
		`	d := New("`+k3.Raw()+`")`+"\n")
	writeFile(t, filepath.Join(root, "deep/a/b/c/d/e/notes with spaces.md"), "windows\r\nline\r\n"+k4.Raw())
	writeFile(t, filepath.Join(root, "deep/near.txt"), strings.Join(nearMisses, "\n")+"\n"+bad2+"\n")
	writeFile(t, filepath.Join(root, "logs/app.log"), `{"msg":"auth","key":"`+k5.Raw()+`"}`+"\n"+`{"msg":"auth","key":"`+k1.Raw()+`"}`+"\n")
	writeFile(t, filepath.Join(root, ".git/config"), "token = "+hidden.Raw()+"\n")
	writeFile(t, filepath.Join(root, "sub/.git/objects/x"), hidden.Raw()+"\n")
	writeFile(t, filepath.Join(root, "bin/tool"), "\x7fELF\x00\x00\x00"+hidden.Raw()+"\n")
	if err := os.Symlink(filepath.Join(root, "app/config/.env"), filepath.Join(root, "link.env")); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := runCLI(t, nil, "scan", root)
	if code != exitFindings {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFindings, stderr)
	}
	wantLines := []string{
		want(filepath.Join(root, "app/config/.env"), 3, k1),
		want(filepath.Join(root, "app/src/client.go"), 10, k2),
		want(filepath.Join(root, "app/src/client.go"), 11, k3),
		want(filepath.Join(root, "deep/a/b/c/d/e/notes with spaces.md"), 3, k4),
		want(filepath.Join(root, "logs/app.log"), 1, k5),
		want(filepath.Join(root, "logs/app.log"), 2, k1),
	}
	if got := lines(stdout); !slices.Equal(got, wantLines) {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	if !strings.Contains(stderr, "6 key(s) found (5 distinct)") || !strings.Contains(stderr, "2 look-alike(s)") {
		t.Errorf("summary on stderr is wrong:\n%s", stderr)
	}
	for _, l := range lines(stdout) {
		if !strings.HasSuffix(l, "… (redacted)") {
			t.Errorf("finding not marked redacted: %q", l)
		}
	}
	assertNoSecrets(t, stdout+stderr, k1.Raw(), k2.Raw(), k3.Raw(), k4.Raw(), k5.Raw(), hidden.Raw(), bad1, bad2)

	// A single file named on the command line is scanned on its own, and a
	// .git directory named explicitly is scanned too: the user asked.
	stdout, _, code = runCLI(t, nil, "scan", filepath.Join(root, "logs/app.log"), filepath.Join(root, ".git"))
	if code != exitFindings || len(lines(stdout)) != 3 || !strings.Contains(stdout, hidden.KeyID) {
		t.Fatalf("explicit paths: exit %d, output:\n%s", code, stdout)
	}
}

func TestScanClean(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.txt"), "nothing here\n"+lookalike(t, genKey(t, "ck", "prod"))+"\n")
	writeFile(t, filepath.Join(root, "empty"), "")
	stdout, stderr, code := runCLI(t, nil, "scan", root)
	if code != exitClean || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "1 look-alike(s)") {
		t.Errorf("look-alike not counted: %q", stderr)
	}
}

func TestScanMaxSize(t *testing.T) {
	root := t.TempDir()
	k := genKey(t, "ck", "prod")
	writeFile(t, filepath.Join(root, "big.txt"), strings.Repeat("x", 500)+"\n"+k.Raw()+"\n")
	writeFile(t, filepath.Join(root, "small.txt"), k.Raw()+"\n")

	stdout, stderr, code := runCLI(t, nil, "scan", root, "--max-size", "200")
	if code != exitFindings || len(lines(stdout)) != 1 || !strings.Contains(stdout, "small.txt:1 ") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
	if !strings.Contains(stderr, "big.txt: skipped") {
		t.Errorf("skipped file not reported: %s", stderr)
	}
	stdout, _, _ = runCLI(t, nil, "scan", root)
	if len(lines(stdout)) != 2 {
		t.Fatalf("default cap skipped a small file:\n%s", stdout)
	}
}

func TestExitCodesAndUsage(t *testing.T) {
	root := t.TempDir()
	k := genKey(t, "ck", "prod")
	writeFile(t, filepath.Join(root, "k.txt"), k.Raw())

	tests := []struct {
		name string
		args []string
		code int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{"no args", nil, exitError, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, exitError, "", `unknown command "frobnicate"`},
		{"no path", []string{"scan"}, exitError, "", "no PATH given"},
		{"unknown flag", []string{"scan", "--nope", root}, exitError, "", "flag provided but not defined"},
		{"bad max-size", []string{"scan", "--max-size", "0", root}, exitError, "", "--max-size"},
		{"empty mount", []string{"scan", "--mount", "/", root}, exitError, "", "--mount"},
		{"missing path", []string{"scan", filepath.Join(root, "nope")}, exitError, "", "no such file"},
		// grep's rule: trouble wins over findings, so a partial scan is never
		// mistaken for a complete one; the findings are still printed.
		{"missing path and a key", []string{"scan", root, filepath.Join(root, "nope")}, exitError, k.KeyID, "no such file"},
		{"flags after paths", []string{"scan", root, "--mount", "x"}, exitFindings, k.KeyID, ""},
		{"double dash", []string{"scan", "--", root}, exitFindings, k.KeyID, ""},
		{"help", []string{"scan", "-h"}, exitClean, "", "Flags:"},
		{"top help", []string{"--help"}, exitClean, "cryptokeys scan", ""},
		{"version", []string{"-version"}, exitClean, "cryptokeys " + version, ""},
		{"version long", []string{"--version"}, exitClean, "cryptokeys " + version, ""},
		{"revoke without VAULT_ADDR", []string{"scan", "--revoke", root}, exitError, k.KeyID, "VAULT_ADDR is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.out) || !strings.Contains(stderr, tt.err) {
				t.Fatalf("stdout %q should contain %q, stderr %q should contain %q", stdout, tt.out, stderr, tt.err)
			}
			assertNoSecrets(t, stdout+stderr, k.Raw())
		})
	}
}

// With nothing found, --revoke must not need (or contact) a Vault at all.
func TestRevokeNothingFound(t *testing.T) {
	stdout, stderr, code := runCLI(t, nil, "scan", "--revoke", t.TempDir())
	if code != exitClean || stdout != "" || !strings.Contains(stderr, "nothing to revoke") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestScanSkippedReported: files not scanned (over --max-size, binary; in
// a tree and in git history) are named on stderr and counted, and
// --fail-on-skipped turns them into exit 2, even when keys were found.
func TestScanSkippedReported(t *testing.T) {
	dir := t.TempDir()
	k, hidden := genKey(t, "ck", "prod"), genKey(t, "ck", "prod")
	writeFile(t, filepath.Join(dir, "ok.txt"), k.Raw()+"\n")
	writeFile(t, filepath.Join(dir, "big.log"), strings.Repeat("x", 300)+hidden.Raw()+"\n")
	writeFile(t, filepath.Join(dir, "blob.bin"), "\x00\x01"+hidden.Raw())

	stdout, stderr, code := runCLI(t, nil, "scan", "--max-size", "200", dir)
	if code != exitFindings || len(lines(stdout)) != 1 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, s := range []string{
		filepath.Join(dir, "big.log") + ": skipped, 359 bytes is over --max-size",
		filepath.Join(dir, "blob.bin") + ": skipped, binary",
		"1 file(s) over --max-size skipped; 1 binary file(s) skipped",
		"2 file(s) were not scanned; --fail-on-skipped makes that fail the run",
	} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	stdout, stderr, code = runCLI(t, nil, "scan", "--max-size", "200", "--fail-on-skipped", dir)
	if code != exitError || len(lines(stdout)) != 1 || !strings.Contains(stderr, "failing: 2 file(s) were not scanned (--fail-on-skipped)") {
		t.Fatalf("--fail-on-skipped: exit %d\n%s%s", code, stdout, stderr)
	}
	// Nothing skipped: the flag changes nothing.
	if _, stderr, code := runCLI(t, nil, "scan", "--fail-on-skipped", filepath.Join(dir, "ok.txt")); code != exitFindings || strings.Contains(stderr, "skipped") {
		t.Fatalf("nothing skipped: exit %d\n%s", code, stderr)
	}

	// In history, git shows no lines of a binary file: said, by commit.
	repo := t.TempDir()
	writeFile(t, filepath.Join(repo, "blob.bin"), "\x00\x01"+hidden.Raw())
	writeFile(t, filepath.Join(repo, "notes.txt"), "nothing\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "add"}, {"rm", "-q", "blob.bin"}, {"commit", "-q", "-m", "rm"}} {
		git(t, repo, args...)
	}
	stdout, stderr, code = runCLI(t, nil, "scan", "--git", repo)
	if code != exitClean || stdout != "" || strings.Count(stderr, ":blob.bin: skipped, binary") != 1 || !strings.Contains(stderr, "1 binary file(s) skipped") {
		t.Fatalf("--git: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, _, code = runCLI(t, nil, "scan", "--git", "--fail-on-skipped", repo); code != exitError {
		t.Fatalf("--git --fail-on-skipped: exit %d", code)
	}
}
