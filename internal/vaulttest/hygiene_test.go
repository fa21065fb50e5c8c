package vaulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

func TestLeakFindings(t *testing.T) {
	dir := t.TempDir()
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	raw := k.Raw()
	// A look-alike: same shape, checksum broken.
	last := raw[len(raw)-1]
	bad := raw[:len(raw)-1] + string(map[bool]byte{true: 'A', false: 'B'}[last != 'A'])
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("vault.log", "2026-11-29T00:00:00Z [INFO] nothing here\n")
	write("audit.log", `{"request":{"data":{"api_key":"hmac-sha256:abc"}},"note":"`+bad+`"}`)
	if got, err := LeakFindings(dir); err != nil || len(got) != 0 {
		t.Fatalf("clean files: findings %q, err %v", got, err)
	}

	write("plugins/bin", raw)                                      // the plugin directory is not swept
	write("tls/vault-key.pem", "-----BEGIN EC PRIVATE KEY-----\n") // nor the TLS server's own key
	if got, _ := LeakFindings(dir); len(got) != 0 {
		t.Fatalf("plugins/ swept: %q", got)
	}

	write("audit-2.log", `{"path":"cryptokeys/keys/`+raw+`"}`)
	write("sub/vault.log", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n")
	got, err := LeakFindings(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("want 2 findings (key, PEM), got %q", got)
	}
	if !strings.Contains(got[0], "audit-2.log") || !strings.Contains(got[0], k.KeyID) {
		t.Errorf("finding %q should name the file and key_id %s", got[0], k.KeyID)
	}
	if !strings.Contains(got[1], filepath.Join("sub", "vault.log")) || !strings.Contains(got[1], "PEM private key") {
		t.Errorf("finding %q should name the file and say PEM private key", got[1])
	}
	for _, f := range got {
		if strings.Contains(f, k.SecretPart()) {
			t.Fatalf("a finding repeats the secret: %q", f)
		}
	}
}
