package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// TestScanRevokeOverTLS runs scan --revoke against a real Vault that
// speaks only HTTPS, with a certificate from a CA of its own: the scanner
// trusts it through VAULT_CACERT, refuses it without (or with another CA)
// and sends nothing, and accepts it unverified only with VAULT_SKIP_VERIFY.
func TestScanRevokeOverTLS(t *testing.T) {
	srv := vaulttest.StartTLS(t)
	mount := srv.Mount(t)
	c := srv.Client
	if _, err := c.Logical().Write(mount+"/roles/tls", map[string]any{"environment": "prod"}); err != nil {
		t.Fatal(err)
	}
	keys := []issued{issueKey(t, c, mount, "tls"), issueKey(t, c, mount, "tls"), issueKey(t, c, mount, "tls")}
	var secrets []string
	dirs := make([]string, len(keys))
	for i, k := range keys {
		secrets = append(secrets, k.apiKey)
		dirs[i] = t.TempDir()
		writeFile(t, filepath.Join(dirs[i], "app.env"), "API_KEY="+k.apiKey+"\n")
	}
	base := map[string]string{"VAULT_ADDR": srv.Addr, "VAULT_TOKEN": srv.Token}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	revoke := func(env map[string]string, dir string) (string, string, int) {
		t.Helper()
		stdout, stderr, code := runCLI(t, env, "scan", "--revoke", "--mount", mount, dir)
		assertNoSecrets(t, stdout+stderr, secrets...)
		return stdout, stderr, code
	}

	// Untrusted: no CA, another CA, verification explicitly on.
	for name, env := range map[string]map[string]string{
		"no CA":               base,
		"another CA":          with("VAULT_CACERT", vaulttest.OtherCAFile(t)),
		"VAULT_SKIP_VERIFY=0": with("VAULT_SKIP_VERIFY", "false"),
	} {
		stdout, stderr, code := revoke(env, dirs[0])
		if code != exitError {
			t.Fatalf("%s: exit %d, want %d\n%s%s", name, code, exitError, stdout, stderr)
		}
		if !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "VAULT_CACERT") {
			t.Errorf("%s: the error does not say the certificate is untrusted and how to fix it:\n%s", name, stderr)
		}
		if got := verifyCode(t, c, mount, keys[0].apiKey); got != "VALID" {
			t.Fatalf("%s: the key was revoked (%s) over a connection the scanner should have refused", name, got)
		}
	}
	// A CA file that does not exist is a configuration error, said as such.
	if _, stderr, code := revoke(with("VAULT_CACERT", filepath.Join(t.TempDir(), "missing.pem")), dirs[0]); code != exitError || !strings.Contains(stderr, "missing.pem") {
		t.Fatalf("missing CA file: exit %d\n%s", code, stderr)
	}

	// Trusted through the CA file.
	stdout, stderr, code := revoke(with("VAULT_CACERT", srv.CAFile), dirs[0])
	if code != exitFindings || !strings.Contains(stdout, "revoked_count=1 unknown_count=0") {
		t.Fatalf("VAULT_CACERT: exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "VAULT_SKIP_VERIFY") {
		t.Errorf("verified TLS, yet a warning about VAULT_SKIP_VERIFY:\n%s", stderr)
	}
	// Unverified, on request, and said so: keys may be going to anyone.
	stdout, stderr, code = revoke(with("VAULT_SKIP_VERIFY", "true"), dirs[1])
	if code != exitFindings || !strings.Contains(stdout, "revoked_count=1 unknown_count=0") {
		t.Fatalf("VAULT_SKIP_VERIFY=true: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "warning: VAULT_SKIP_VERIFY is set: the TLS certificate of "+srv.Addr+" is not verified") {
		t.Errorf("VAULT_SKIP_VERIFY=true: no warning on stderr:\n%s", stderr)
	}
	for i, want := range []string{"REVOKED", "REVOKED", "VALID"} {
		if got := verifyCode(t, c, mount, keys[i].apiKey); got != want {
			t.Errorf("key %d verifies %s, want %s", i, got, want)
		}
	}
}
