package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreCommitHook installs examples/pre-commit/pre-commit in a temporary
// repository, with this package's cryptokeys built onto PATH, and commits:
// a staged key is refused (named by key_id, never its secret), a clean
// commit passes, and it is the staged version that counts, not the work
// tree's.
func TestPreCommitHook(t *testing.T) {
	bin := t.TempDir()
	// #nosec G204 -- builds this package into the test's temp dir
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "cryptokeys"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	hook, err := os.ReadFile("../../examples/pre-commit/pre-commit")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	if err := os.WriteFile(filepath.Join(repo, ".git/hooks/pre-commit"), hook, 0o700); err != nil { // #nosec G306 G703 -- a git hook must be executable; the path is in this test's temp repository
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1")
	commit := func(msg string) (string, error) {
		// #nosec G204 -- git commit in the test's temp repository, with the test's message
		cmd := exec.Command("git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", "commit", "-q", "-m", msg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	k := genKey(t, "ck", "prod")
	bad := lookalike(t, genKey(t, "ck", "prod"))

	// Clean, with a look-alike: allowed.
	writeFile(t, filepath.Join(repo, "README.md"), "hello\nexample: "+bad+"\n")
	git(t, repo, "add", ".")
	if out, err := commit("clean"); err != nil {
		t.Fatalf("clean commit refused: %v\n%s", err, out)
	}

	// A key staged, in a file whose name has spaces: refused.
	writeFile(t, filepath.Join(repo, "conf dir/app settings.env"), "X=1\nAPI_KEY="+k.Raw()+"\n")
	git(t, repo, "add", ".")
	out, err := commit("leak")
	if err == nil {
		t.Fatalf("a commit with a staged key was allowed:\n%s", out)
	}
	if !strings.Contains(out, "conf dir/app settings.env:2 "+k.String()) || !strings.Contains(out, "commit refused") {
		t.Errorf("refusal does not name the key where it is:\n%s", out)
	}
	assertNoSecrets(t, out, k.Raw())

	// Removed from the work tree but still staged: still refused.
	writeFile(t, filepath.Join(repo, "conf dir/app settings.env"), "X=1\n")
	if out, err := commit("leak, edited away unstaged"); err == nil {
		t.Fatalf("the staged key was committed because the work tree is clean:\n%s", out)
	}
	// Staged clean, the key only in the work tree: allowed.
	git(t, repo, "add", ".")
	writeFile(t, filepath.Join(repo, "conf dir/app settings.env"), "X=1\nAPI_KEY="+k.Raw()+"\n")
	if out, err := commit("clean staged"); err != nil {
		t.Fatalf("a clean staged file was refused for its unstaged edit: %v\n%s", err, out)
	}
}
