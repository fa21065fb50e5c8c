package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// TestDemo runs scripts/demo.sh (what `make demo` runs after building)
// non-interactively, end to end, and checks what it shows and that it
// leaves nothing running and nothing outside the repository's ignored
// folders.
func TestDemo(t *testing.T) {
	if os.Getenv(vaulttest.SkipEnv) == "1" {
		t.Skip(vaulttest.SkipEnv + "=1")
	}
	root := vaulttest.RepoRoot()
	for _, b := range []string{"devvault", "vault", "vault-plugin-secrets-cryptokeys", "terraform-provider-cryptokeys"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			t.Fatalf("bin/%s missing: run `make build bin/devvault vault` (make test does)", b)
		}
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Fatal("terraform not on PATH")
	}
	home := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh")) // #nosec G204 -- this repository's own demo script
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HOME="+home, "DEMO_KEEP=0")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, text)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Apply complete! Resources: \d+ added`),
		regexp.MustCompile(`"prod" = "[0-9A-Za-z]{12}"`),
		regexp.MustCompile(`api_key\s+ck_prod_[0-9A-Za-z]{50}`),
		regexp.MustCompile(`code\s+VALID`),
		regexp.MustCompile(`code\s+ENVIRONMENT_MISMATCH`),
		regexp.MustCompile(`old [0-9A-Za-z]{12} -> new [0-9A-Za-z]{12}`),
		regexp.MustCompile(`old key now: VALID\s+new key: VALID`),
		regexp.MustCompile(`new key now: REVOKED`),
		regexp.MustCompile(`gateway: HTTP 200 .*X-Cryptokeys-Code: VALID`),
		regexp.MustCompile(`Stopping Vault`),
	} {
		if !want.MatchString(text) {
			t.Errorf("demo output lacks %s", want)
		}
	}
	// The gateway let the key through, then refused it within a second of
	// its revocation.
	if m := regexp.MustCompile(`gateway: HTTP (\d+) .*X-Cryptokeys-Code: (\w+).*\((\d+) ms after the revocation\)`).FindStringSubmatch(text); m == nil {
		t.Error("the demo does not show the gateway refusing the revoked key")
	} else if ms, _ := strconv.Atoi(m[3]); m[1] != "401" || m[2] != "REVOKED" || ms > 1000 {
		t.Errorf("the gateway answered %s %s %d ms after the revocation; want 401 REVOKED within 1000 ms", m[1], m[2], ms)
	}
	// Without DEMO_KEEP the demo stops its Vault, so it must not end by
	// telling the reader to use it.
	if strings.Contains(text, "export VAULT_ADDR=") {
		t.Error("the demo stops its Vault but tells the reader to export its address")
	}
	if !strings.Contains(text, "DEMO_KEEP=1 make demo") {
		t.Error("the demo does not say how to keep its Vault running")
	}
	addr := regexp.MustCompile(`VAULT_ADDR=(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	if addr == nil {
		t.Fatal("demo did not say where Vault ran")
	}
	// The server it started is gone.
	// #nosec G204 -- the address matched 127.0.0.1:<digits> above; pgrep gets it as one argument
	if err := exec.Command("pgrep", "-f", "dev-listen-address="+strings.TrimPrefix(addr[1], "http://")).Run(); err == nil {
		t.Error("the demo's Vault is still running")
	}
	// #nosec G204 -- a fixed pattern
	if err := exec.Command("pgrep", "-f", "cryptokeys gateway -config "+filepath.Join(root, ".dev", "demo")).Run(); err == nil {
		t.Error("the demo's gateway is still running")
	}
	if _, err := os.Stat(filepath.Join(root, ".dev", "demo")); !os.IsNotExist(err) {
		t.Error(".dev/demo was left behind")
	}
	// Nothing was written to the (stand-in) home directory.
	var left []string
	_ = filepath.Walk(home, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != home {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("the demo wrote into HOME: %v", left)
	}
}
