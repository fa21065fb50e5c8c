package vaultplugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// TestIntegration_leasePrefixRevocationReach: what `vault lease revoke
// -prefix <mount>/creds/<role>` reaches, as the incident playbook says (issue
// 22 item 3). Vault names a lease after the request path that made it, so
// the prefix reaches the keys creds issued and not their rotated
// successors, whose leases live under <mount>/keys/<key_id>/rotate/.
// revoke/role reaches both. Keys of other roles are untouched by either.
func TestIntegration_leasePrefixRevocationReach(t *testing.T) {
	e := newEngine(t)
	e.vault("write", e.path("roles/r"), "environment=prod", "ttl=1h")
	e.vault("write", e.path("roles/other"), "environment=prod", "ttl=1h")
	first := e.issue("r")
	plain := e.issue("r")
	other := e.issue("other")
	rotate := func(k issued) issued {
		t.Helper()
		s := e.vaultJSON("write", e.path("keys/"+k.keyID+"/rotate"), "grace=1h")
		n := issued{leaseID: s.LeaseID}
		n.apiKey, _ = s.Data["api_key"].(string)
		n.keyID, _ = s.Data["key_id"].(string)
		if want := e.mount + "/keys/" + k.keyID + "/rotate/"; !strings.HasPrefix(n.leaseID, want) {
			t.Fatalf("successor's lease %q, want it under %s", n.leaseID, want)
		}
		return n
	}
	succ := rotate(first)
	succ2 := rotate(succ) // a successor's successor
	if !strings.HasPrefix(first.leaseID, e.mount+"/creds/r/") {
		t.Fatalf("creds lease %q", first.leaseID)
	}

	out := e.vault("lease", "revoke", "-prefix", e.mount+"/creds/r")
	t.Logf("vault lease revoke -prefix %s/creds/r: %s", e.mount, strings.TrimSpace(out))
	// Queued: Vault revokes in the background.
	e.eventually(first.apiKey, 30*time.Second, "REVOKED")
	e.eventually(plain.apiKey, 30*time.Second, "REVOKED")
	// Not reached: the rotated successors, and the other role.
	for name, k := range map[string]issued{"successor": succ, "successor's successor": succ2, "other role's key": other} {
		if code := e.verify(k.apiKey)["code"]; code != "VALID" {
			t.Errorf("%s after the creds/r prefix revocation: %v, want VALID (the prefix does not reach it)", name, code)
		}
	}
	// The lease of the successor is still there, under keys/.
	if s := e.vaultJSON("write", "sys/leases/lookup", "lease_id="+succ.leaseID); s.Data["id"] != succ.leaseID {
		t.Errorf("successor's lease lookup: %v", s.Data)
	}

	// revoke/role reaches every key of the role, successors included.
	e.vault("write", e.path("revoke/role/r"), "reason=INC-22 prefix test")
	for name, k := range map[string]issued{"successor": succ, "successor's successor": succ2} {
		if code := e.verify(k.apiKey)["code"]; code != "REVOKED" {
			t.Errorf("%s after revoke/role: %v, want REVOKED", name, code)
		}
	}
	e.wantCode(other.apiKey, "VALID")
}

// TestIntegration_revokeWithThePluginMissing: Vault 1.13 with the plugin
// binary gone and its process dead (issue 22 item 5). `vault lease revoke`
// still answers success ("queued"), the engine's own paths fail loudly, and
// once the binary is back the key ends REVOKED both ways the playbook says:
// through Vault's retry of the queued revocation (its first retry comes
// 10-30 s after the failed attempt: revokeRetryBase 10 s, doubled per
// attempt, +-50%), or at once through the engine's synchronous
// `vault delete <mount>/keys/<key_id>`. A lease dropped with -force
// meanwhile leaves its key VALID until the engine's path revokes it.
func TestIntegration_revokeWithThePluginMissing(t *testing.T) {
	srv := vaulttest.Start(t)
	e := &engine{t: t, srv: srv, mount: srv.Mount(t)}
	e.vault("write", e.path("roles/r"), "environment=prod", "ttl=1h")
	byRetry := e.issue("r")
	bySyncPath := e.issue("r")
	forced := e.issue("r")
	e.wantCode(byRetry.apiKey, "VALID")

	// The binary goes, and the running process with it: Vault must start
	// the plugin again for the next request, and cannot.
	bin := filepath.Join(srv.PluginDir, vaulttest.PluginName)
	pids, err := srv.PluginPIDs()
	if err != nil || len(pids) == 0 {
		t.Fatalf("plugin processes: %v %v", pids, err)
	}
	if err := os.Rename(bin, bin+".gone"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := os.Rename(bin+".gone", bin); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(restore)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)

	// The engine is unreachable: its paths fail, loudly.
	if out, err := srv.CLI(t, "write", "-field=code", e.path("verify"), "api_key="+byRetry.apiKey); err == nil {
		t.Fatalf("verify answered with the plugin missing: %s", out)
	}
	if out, err := srv.CLI(t, "delete", e.path("keys/"+bySyncPath.keyID)); err == nil {
		t.Fatalf("keys/<id> delete succeeded with the plugin missing: %s", out)
	}
	// Vault's lease revocation answers success anyway.
	revokedAt := time.Now()
	for _, k := range []issued{byRetry, bySyncPath} {
		out := e.vault("lease", "revoke", k.leaseID)
		if !strings.Contains(out, "queued") {
			t.Errorf("vault lease revoke with the plugin missing: %q, want the queued message", out)
		}
	}
	// -force drops the lease without the engine hearing of it.
	if out, err := srv.CLI(t, "lease", "revoke", "-force", "-prefix", forced.leaseID); err != nil {
		t.Fatalf("vault lease revoke -force -prefix <lease_id> with the plugin missing: %v: %s", err, out)
	}
	// Vault tried once and failed; the lease is still there, due now.
	time.Sleep(time.Second)
	if s, err := srv.Client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": byRetry.leaseID}); err != nil || s == nil || s.Data["id"] != byRetry.leaseID {
		t.Fatalf("the lease after a failed revocation: %v %v", s, err)
	}
	if !strings.Contains(srv.ServerLog(t), "failed to revoke lease") {
		t.Errorf("the server log does not show the failed revocation attempt")
	}

	// The binary comes back.
	restore()
	// The synchronous path works again at once, and is final.
	e.vault("delete", e.path("keys/"+bySyncPath.keyID))
	e.wantCode(bySyncPath.apiKey, "REVOKED")
	if st := e.vaultJSON("read", e.path("keys/"+bySyncPath.keyID)).Data["status"]; st != "revoked" {
		t.Errorf("keys/<id> status %v after the synchronous revoke", st)
	}
	// The force-revoked key has no lease left and still verifies: only
	// the engine's own path ends it (the playbook's step 1).
	if s, err := srv.Client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": forced.leaseID}); err == nil && s != nil {
		t.Errorf("the force-revoked lease is still there: %v", s.Data)
	}
	e.wantCode(forced.apiKey, "VALID")
	e.vault("delete", e.path("keys/"+forced.keyID))
	e.wantCode(forced.apiKey, "REVOKED")
	// The other key verifies VALID until Vault's retry reaches the engine.
	if code := e.verify(byRetry.apiKey)["code"]; code != "VALID" && code != "REVOKED" {
		t.Fatalf("verify %v", code)
	}
	e.eventually(byRetry.apiKey, 90*time.Second, "REVOKED")
	t.Logf("the queued revocation reached the engine %s after vault lease revoke", time.Since(revokedAt).Round(time.Second))
	// And the lease is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := srv.Client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": byRetry.leaseID})
		if err != nil || s == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease still there after the revocation reached the engine: %v", s.Data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
