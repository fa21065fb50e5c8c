package vaultplugin_test

import (
	"strings"
	"testing"
	"time"
)

// Issue 21 item 4, as the README's tour does it: a role asking for more
// than Vault's mount maximum (768h unless tuned) is told so when written,
// and a key request over it is refused naming the mount's limit, not the
// role's max_ttl. Tuning the mount lifts both.
func TestIntegration_roleAboveTheMountsMaxLeaseTTL(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	w := e.vaultJSON("write", e.path("roles/prod-trader"), "environment=prod", "ttl=720h", "max_ttl=2160h").Warnings
	if len(w) != 1 || !strings.Contains(w[0], "max_ttl (2160h0m0s) exceeds this mount's max_lease_ttl (768h0m0s)") || !strings.Contains(w[0], "vault secrets tune -max-lease-ttl=2160h0m0s "+e.mount) {
		t.Fatalf("no warning naming the mount's limit: %q", w)
	}
	refusal := e.vaultFails("write", e.path("creds/prod-trader"), "ttl=1000h")
	if !strings.Contains(refusal, "this mount's max_lease_ttl") || strings.Contains(refusal, "the role's max_ttl") {
		t.Fatalf("the refusal blames the wrong limit:\n%s", refusal)
	}
	e.vault("secrets", "tune", "-max-lease-ttl=2160h", e.mount)
	time.Sleep(1100 * time.Millisecond) // the engine reads the mount's limits at most once a second
	if out := e.vault("write", "-format=json", e.path("roles/prod-trader"), "environment=prod", "ttl=720h", "max_ttl=2160h"); strings.Contains(out, "exceeds") {
		t.Fatalf("a warning after the tune:\n%s", out)
	}
	k := e.vaultJSON("write", e.path("creds/prod-trader"), "ttl=1000h")
	if k.LeaseDuration != 1000*3600 {
		t.Fatalf("lease %ds, want 1000h", k.LeaseDuration)
	}
}
