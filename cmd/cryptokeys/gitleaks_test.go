package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/leakforms"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

const gitleaksConfig = "../../examples/gitleaks/gitleaks.toml"

// gitleaksBin is the real gitleaks that `make gitleaks` builds from
// tools/gitleaks (CK_GITLEAKS_BIN overrides). Like the Vault server, it
// is required: only `make unit` (CK_INTEGRATION_SKIP=1) skips without it.
func gitleaksBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CK_GITLEAKS_BIN")
	if bin == "" {
		bin = "../../bin/gitleaks"
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil { // #nosec G703 -- the test's own gitleaks path (bin/ or CK_GITLEAKS_BIN), only checked for existence
		if os.Getenv("CK_INTEGRATION_SKIP") == "1" {
			t.Skipf("CK_INTEGRATION_SKIP=1 and no gitleaks at %s", abs)
		}
		t.Fatalf("no gitleaks at %s: run `make gitleaks`", abs)
	}
	return abs
}

type gitleaksFinding struct {
	RuleID, Secret, File, Commit string
	StartLine                    int
}

// runGitleaks runs `gitleaks <mode> <dir>` with the shipped rule and
// returns the findings of the cryptokeys rule (the built-in rules it
// extends are gitleaks' business).
func runGitleaks(t *testing.T, mode, dir string) []gitleaksFinding {
	t.Helper()
	cfg, err := filepath.Abs(gitleaksConfig)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(gitleaksBin(t), mode, "--no-banner", "--no-color", "--log-level", "warn",
		"--config", cfg, "--report-format", "json", "--report-path", report, dir) // #nosec G204 -- the gitleaks built by make gitleaks, fixed arguments and temp paths
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 { // 1: leaks found
		t.Fatalf("gitleaks %s: %v (want exit 1, leaks found)\n%s", mode, err, out)
	}
	b, err := os.ReadFile(report) // #nosec G304 -- the report gitleaks wrote into this test's temp dir
	if err != nil {
		t.Fatal(err)
	}
	var all, ours []gitleaksFinding
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatalf("gitleaks report: %v", err)
	}
	for _, f := range all {
		if f.RuleID == "cryptokeys-api-key" {
			ours = append(ours, f)
		}
	}
	return ours
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	// #nosec G204 -- git with the test's own arguments, in the test's temp repository
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// keyIDs names keys by key_id, so a failure never prints a secret.
func keyIDs(secrets []string) []string {
	var ids []string
	for _, s := range secrets {
		if k, err := keyformat.Parse(s); err == nil {
			ids = append(ids, k.KeyID)
		} else if len(s) > keyformat.BodyLen {
			ids = append(ids, "look-alike "+s[len(s)-keyformat.BodyLen:][:keyformat.KeyIDLen])
		} else {
			ids = append(ids, "not key-shaped")
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// TestGitleaksRealBinary runs the real gitleaks with the shipped rule over a
// planted repository: keys in files, in history only (added, then
// deleted), on another branch, glued to escapes; plus a look-alike and the
// documented test vector. gitleaks must report every key, exactly (the
// rule's secret group, not a glued letter), and the vector not. It cannot
// check checksums, so it reports the look-alike too; cryptokeys scan,
// over the same repository, reports the keys and not the look-alike.
func TestGitleaksRealBinary(t *testing.T) {
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	inHistory := genKey(t, "ck", "prod")
	onBranch := genKey(t, "ck", "staging")
	inFile := genKey(t, "ck", "dev")
	untracked := genKey(t, "ck", "live")
	bad := lookalike(t, genKey(t, "ck", "prod"))
	const vector = "ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh"

	// Glued forms gitleaks can see: all but keys glued to letters or
	// digits (no word boundary) and HTML entities (gitleaks decodes
	// percent and \u escapes, not HTML).
	var logText strings.Builder
	var glued []string
	for _, f := range leakforms.All {
		if !f.Glue && (strings.HasPrefix(f.Name, "HTML") || strings.HasPrefix(f.Name, "glued to letters")) {
			continue
		}
		k := genKey(t, "ck", "prod").Raw()
		glued = append(glued, k)
		logText.WriteString(f.Write(k) + "\n")
	}

	writeFile(t, filepath.Join(repo, "config/app.env"), "# app\nAPI_KEY="+inHistory.Raw()+"\n")
	writeFile(t, filepath.Join(repo, "README.md"), "test vector: "+vector+"\n")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "config")
	writeFile(t, filepath.Join(repo, "config/app.env"), "# app\nAPI_KEY=${CK_API_KEY}\n")
	writeFile(t, filepath.Join(repo, "logs/app.log"), logText.String())
	writeFile(t, filepath.Join(repo, "src/client.go"), "package client\n\nconst key = \""+inFile.Raw()+"\"\nconst notAKey = \""+bad+"\"\n")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "key out of config; logs")
	git(t, repo, "checkout", "-q", "-b", "feature")
	writeFile(t, filepath.Join(repo, "feature.txt"), "token "+onBranch.Raw()+"\n")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "feature")
	git(t, repo, "checkout", "-q", "main")
	writeFile(t, filepath.Join(repo, "scratch.txt"), "untracked "+untracked.Raw()+"\n")

	all := append([]string{inHistory.Raw(), onBranch.Raw(), inFile.Raw(), untracked.Raw(), bad, vector}, glued...)
	secrets := func(fs []gitleaksFinding) []string {
		var s []string
		for _, f := range fs {
			s = append(s, f.Secret)
		}
		slices.Sort(s)
		return slices.Compact(s)
	}
	sorted := func(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

	// History: every commit of every branch, untracked files not.
	hist := runGitleaks(t, "git", repo)
	want := sorted(append([]string{inHistory.Raw(), onBranch.Raw(), inFile.Raw(), bad}, glued...)...)
	if got := secrets(hist); !slices.Equal(got, want) {
		t.Errorf("gitleaks git found %v, want %v", keyIDs(got), keyIDs(want))
	}
	for _, f := range hist {
		if f.Secret == inHistory.Raw() && (f.File != "config/app.env" || f.StartLine != 2 || f.Commit == "") {
			t.Errorf("the key only in history is reported at %s:%d in commit %q", f.File, f.StartLine, f.Commit)
		}
	}

	// Files: what the work tree holds now, untracked included.
	files := runGitleaks(t, "dir", repo)
	want = sorted(append([]string{inFile.Raw(), untracked.Raw(), bad}, glued...)...)
	if got := secrets(files); !slices.Equal(got, want) {
		t.Errorf("gitleaks dir found %v, want %v", keyIDs(got), keyIDs(want))
	}

	// cryptokeys scan --git over the same history: the same keys, the
	// look-alike not (it checks the checksum), the vector too (it is a
	// valid key; only gitleaks' allowlist knows it from docs).
	stdout, stderr, code := runCLI(t, nil, "scan", "--git", repo)
	if code != exitFindings {
		t.Fatalf("cryptokeys scan --git: exit %d\n%s", code, stderr)
	}
	for _, k := range append([]string{inHistory.Raw(), onBranch.Raw(), inFile.Raw(), vector}, glued...) {
		p, _ := keyformat.Parse(k)
		if !strings.Contains(stdout, p.String()) {
			t.Errorf("cryptokeys scan --git missed key_id %s", p.KeyID)
		}
	}
	if !strings.Contains(stderr, "1 look-alike(s)") {
		t.Errorf("cryptokeys scan did not count the look-alike:\n%s", stderr)
	}
	assertNoSecrets(t, stdout+stderr, all...)
}
