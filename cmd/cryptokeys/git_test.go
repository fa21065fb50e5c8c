package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gitRepo is a throwaway repository whose commits get increasing dates, so
// git log's order (and so which commit a key is attributed to) is fixed.
type gitRepo struct {
	t    *testing.T
	dir  string
	home string
	tick int
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required for the --git scanner tests: ", err)
	}
	r := &gitRepo{t: t, dir: t.TempDir(), home: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

// git runs git in the repository, isolated from the user's and system's
// config (a global commit.gpgsign or hooksPath must not break the test).
func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	r.tick++
	date := fmt.Sprintf("2024-01-01T00:%02d:00Z", r.tick)
	// #nosec G204 -- git with the test's own arguments, in the test's temp repository
	cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "HOME="+r.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *gitRepo) write(name, content string) { writeFile(r.t, filepath.Join(r.dir, name), content) }

func (r *gitRepo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func TestScanGitHistory(t *testing.T) {
	r := newGitRepo(t)
	kMain := genKey(t, "ck", "prod")
	kBranch := genKey(t, "ck", "staging")
	kAmended := genKey(t, "ck", "dev")
	kMsg := genKey(t, "ck", "live")
	kEvil := genKey(t, "ck", "test")
	bad := lookalike(t, genKey(t, "ck", "prod"))

	r.write("README", "hello\n")
	r.commit("initial")
	r.write("app/my config.py", "import os\n\nAPI_KEY = \""+kMain.Raw()+"\"\nOTHER = \""+bad+"\"\n")
	leak := r.commit("add config")
	r.write("app/my config.py", "import os\n\nAPI_KEY = os.environ[\"API_KEY\"]\n")
	r.commit("read the key from the environment")

	// A branch merged with the key still in it: the merge's diff adds the
	// key to main again, but it must be attributed once, to the branch
	// commit that leaked it.
	r.git("checkout", "-q", "-b", "feature")
	r.write("notes.txt", "todo\n"+kBranch.Raw()+"\n")
	branchCommit := r.commit("notes")
	r.git("checkout", "-q", "main")
	r.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
	r.write("notes.txt", "todo\n")
	r.commit("scrub notes")

	// An "evil" merge: the key exists only in the merge commit's own
	// changes, in no parent.
	r.git("checkout", "-q", "-b", "hotfix")
	r.write("fix.txt", "fixed\n")
	r.commit("fix")
	r.git("checkout", "-q", "main")
	r.git("merge", "-q", "--no-ff", "--no-commit", "hotfix")
	r.write("evil.txt", "x\ny\n"+kEvil.Raw()+"\n")
	evilMerge := r.commit("merge hotfix")
	r.write("evil.txt", "x\n")
	r.commit("tidy")

	// A commit amended away is reachable only from the reflog.
	r.write("tmp.txt", kAmended.Raw())
	amended := r.commit("oops")
	if err := os.Remove(filepath.Join(r.dir, "tmp.txt")); err != nil {
		t.Fatal(err)
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--amend", "--allow-empty", "-m", "no oops")

	msgCommit := r.commit("rotate\n\nold key was " + kMsg.Raw() + "\n")

	// The work tree is clean now.
	stdout, stderr, code := runCLI(t, nil, "scan", r.dir)
	if code != exitClean || stdout != "" {
		t.Fatalf("work tree scan: exit %d\n%s%s", code, stdout, stderr)
	}

	stdout, stderr, code = runCLI(t, nil, "scan", "--git", r.dir)
	if code != exitFindings {
		t.Fatalf("--git: exit %d, want %d\n%s%s", code, exitFindings, stdout, stderr)
	}
	wantLines := []string{
		want(msgCommit+":(commit message)", 3, kMsg),
		want(amended+":tmp.txt", 1, kAmended),
		want(branchCommit+":notes.txt", 2, kBranch),
		want(leak+":app/my config.py", 3, kMain),
		want(evilMerge+":evil.txt", 3, kEvil),
	}
	got := lines(stdout)
	slices.Sort(got)
	slices.Sort(wantLines)
	if !slices.Equal(got, wantLines) {
		t.Fatalf("--git findings:\n%s\nwant:\n%s\nstderr:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"), stderr)
	}
	if !strings.Contains(stderr, "1 look-alike(s)") {
		t.Errorf("look-alike in history not counted: %s", stderr)
	}
	assertNoSecrets(t, stdout+stderr, kMain.Raw(), kBranch.Raw(), kAmended.Raw(), kMsg.Raw(), kEvil.Raw(), bad)
}

func TestScanGitNotARepo(t *testing.T) {
	dir := t.TempDir()
	// A directory outside any repository; GIT_CEILING_DIRECTORIES is not
	// needed because TempDir is never inside the project's checkout.
	_, stderr, code := runCLI(t, nil, "scan", "--git", dir)
	if code != exitError || !strings.Contains(stderr, "not a git repository") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestScanGitEmptyRepo(t *testing.T) {
	r := newGitRepo(t)
	stdout, stderr, code := runCLI(t, nil, "scan", "--git", r.dir)
	if code != exitClean || stdout != "" {
		t.Fatalf("empty repository: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestParseGitLogOddPaths(t *testing.T) {
	k := genKey(t, "ck", "prod")
	log := "\x00abc123\nsubject\n\x00\n\n" +
		"diff --git \"a/tab\\tq\\\"uote\" \"b/tab\\tq\\\"uote\"\n" +
		"--- /dev/null\n" +
		"+++ \"b/tab\\tq\\\"uote\"\n" +
		"@@ -0,0 +7,2 @@\n" +
		"+first\n" +
		"+" + k.Raw() + "\n" +
		"diff --git a/x b/x\n" +
		"--- a/x\n" +
		"+++ /dev/null\n" +
		"@@ -1 +0,0 @@\n" +
		"-" + k.Raw() + "\n"
	var found []string
	s := &scanner{emit: func(f finding) { found = append(found, f.String()) }}
	if err := parseGitLog(strings.NewReader(log), s); err != nil {
		t.Fatal(err)
	}
	wantLines := []string{want("abc123:tab\tq\"uote", 8, k)}
	if !slices.Equal(found, wantLines) {
		t.Fatalf("found %q, want %q", found, wantLines)
	}
}
