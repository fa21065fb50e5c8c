package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/vault/api"
)

type issued struct{ apiKey, keyID, leaseID string }

func issueKey(t *testing.T, c *api.Client, mount, role string) issued {
	t.Helper()
	sec, err := c.Logical().Read(mount + "/creds/" + role)
	if err != nil {
		t.Fatal(err)
	}
	k := issued{leaseID: sec.LeaseID}
	k.apiKey, _ = sec.Data["api_key"].(string)
	k.keyID, _ = sec.Data["key_id"].(string)
	if k.apiKey == "" || k.keyID == "" || k.leaseID == "" {
		t.Fatalf("creds returned no api_key, key_id or lease")
	}
	return k
}

func verifyCode(t *testing.T, c *api.Client, mount, apiKey string) string {
	t.Helper()
	sec, err := c.Logical().Write(mount+"/verify", map[string]any{"api_key": apiKey})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := sec.Data["code"].(string)
	return code
}

// TestScanRevokeOnVault runs scan --revoke against a real Vault server with
// the real plugin: keys issued by the engine and planted in files are
// revoked through revoke/leaked, and verify refuses them afterwards.
func TestScanRevokeOnVault(t *testing.T) {
	srv := vaulttest.Start(t)
	mount := strings.Trim(srv.Mount(t), "/")
	c := srv.Client
	if _, err := c.Logical().Write(mount+"/roles/scanner", map[string]any{"environment": "prod"}); err != nil {
		t.Fatal(err)
	}
	live1 := issueKey(t, c, mount, "scanner")
	live2 := issueKey(t, c, mount, "scanner")
	dead := issueKey(t, c, mount, "scanner")
	if err := c.Sys().Revoke(dead.leaseID); err != nil {
		t.Fatal(err)
	}
	// sys/leases/revoke only queues the revocation; wait until the engine
	// has seen it so the counts below are deterministic.
	deadline := time.Now().Add(20 * time.Second)
	for verifyCode(t, c, mount, dead.apiKey) != "REVOKED" {
		if time.Now().After(deadline) {
			t.Fatal("lease revocation did not reach the engine")
		}
		time.Sleep(100 * time.Millisecond)
	}
	foreign := genKey(t, "ck", "prod") // well-formed, never issued here
	bad := lookalike(t, genKey(t, "ck", "prod"))

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "svc/.env"), "# service\nAPI_KEY="+live1.apiKey+"\n")
	writeFile(t, filepath.Join(dir, "logs/2024/app.log"), "revoked "+dead.apiKey+"\nfoo\nleaked "+live2.apiKey+"\nlookalike "+bad+"\nother vault "+foreign.Raw()+"\n")
	secrets := []string{live1.apiKey, live2.apiKey, dead.apiKey, foreign.Raw(), bad}

	// A rejected token must fail loudly (exit 2) and revoke nothing.
	env := map[string]string{"VAULT_ADDR": srv.Addr, "VAULT_TOKEN": "not-a-token"}
	stdout, stderr, code := runCLI(t, env, "scan", "--revoke", "--mount", mount, dir)
	if code != exitError || !strings.Contains(stderr, "revoke:") {
		t.Fatalf("bad token: exit %d\n%s%s", code, stdout, stderr)
	}
	assertNoSecrets(t, stdout+stderr, secrets...)
	if got := verifyCode(t, c, mount, live1.apiKey); got != "VALID" {
		t.Fatalf("after a failed revoke, live key verifies %s", got)
	}

	env["VAULT_TOKEN"] = srv.Token
	stdout, stderr, code = runCLI(t, env, "scan", "--revoke", "--mount", mount, "--reason", "found in logs by scanner test", dir)
	if code != exitFindings {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFindings, stdout, stderr)
	}
	assertNoSecrets(t, stdout+stderr, secrets...)
	out := lines(stdout)
	if len(out) != 4+1+2 {
		t.Fatalf("unexpected output:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if wantCounts := mount + "/revoke/leaked: revoked_count=2 unknown_count=1 already_revoked_count=1"; out[4] != wantCounts {
		t.Fatalf("counts line %q, want %q", out[4], wantCounts)
	}
	revoked := []string{strings.TrimPrefix(out[5], "revoked key_id "), strings.TrimPrefix(out[6], "revoked key_id ")}
	slices.Sort(revoked)
	wantIDs := []string{live1.keyID, live2.keyID}
	slices.Sort(wantIDs)
	if !slices.Equal(revoked, wantIDs) {
		t.Fatalf("revoked %v, want %v", revoked, wantIDs)
	}
	for _, k := range []issued{live1, live2} {
		if got := verifyCode(t, c, mount, k.apiKey); got != "REVOKED" {
			t.Errorf("key %s verifies %s after scan --revoke, want REVOKED", k.keyID, got)
		}
		sec, err := c.Logical().Read(mount + "/keys/" + k.keyID)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := sec.Data["revoke_reason"].(string); r != "found in logs by scanner test" {
			t.Errorf("key %s revoke_reason %q", k.keyID, r)
		}
	}

	// Running again is harmless: everything is already revoked.
	stdout, _, code = runCLI(t, env, "scan", "--revoke", "--mount", mount, dir)
	if code != exitFindings || !strings.Contains(stdout, "revoked_count=0 unknown_count=1 already_revoked_count=3") {
		t.Fatalf("second run: exit %d\n%s", code, stdout)
	}
}

// TestScanRevokeOnlyMountPrefix: --revoke sends only keys of the prefix
// the target mount issues (read from its config, or given as --prefix);
// keys of other prefixes stay on the machine and are named by key_id.
func TestScanRevokeOnlyMountPrefix(t *testing.T) {
	srv := vaulttest.Start(t)
	mount := strings.Trim(srv.Mount(t), "/")
	c := srv.Client
	for path, data := range map[string]map[string]any{
		mount + "/config":       {"key_prefix": "acme"},
		mount + "/roles/prefix": {"environment": "prod"},
		"sys/policy/leak-only":  {"policy": `path "` + mount + `/revoke/leaked" { capabilities = ["update"] }`},
	} {
		if _, err := c.Logical().Write(path, data); err != nil {
			t.Fatal(err)
		}
	}
	mine := issueKey(t, c, mount, "prefix")
	if !strings.HasPrefix(mine.apiKey, "acme_prod_") {
		t.Fatalf("test setup: key_prefix not applied")
	}
	other1, other2 := genKey(t, "ck", "prod"), genKey(t, "other", "prod")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "leak.txt"), "a "+other1.Raw()+"\nb "+mine.apiKey+"\nc "+other2.Raw()+"\n")
	secrets := []string{mine.apiKey, other1.Raw(), other2.Raw()}

	env := map[string]string{"VAULT_ADDR": srv.Addr, "VAULT_TOKEN": srv.Token}
	stdout, stderr, code := runCLI(t, env, "scan", "--revoke", "--mount", mount, dir)
	assertNoSecrets(t, stdout+stderr, secrets...)
	// unknown_count=0: had the other keys been sent, the engine would
	// have counted them as unknown.
	if code != exitFindings || !strings.Contains(stdout, "revoked_count=1 unknown_count=0 already_revoked_count=0") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `2 key(s) not sent to `+mount+`: their prefix is not the mount's "acme" (key_id `+other1.KeyID+", "+other2.KeyID+")") {
		t.Errorf("keys held back are not named on stderr:\n%s", stderr)
	}
	if got := verifyCode(t, c, mount, mine.apiKey); got != "REVOKED" {
		t.Errorf("the mount's key verifies %s", got)
	}
	// A token that may only write revoke/leaked cannot read the config:
	// the run fails and says what to do, and --prefix is the way round.
	tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"leak-only"}})
	if err != nil {
		t.Fatal(err)
	}
	env["VAULT_TOKEN"] = tok.Auth.ClientToken
	stdout, stderr, code = runCLI(t, env, "scan", "--revoke", "--mount", mount, dir)
	if code != exitError || !strings.Contains(stderr, "permission denied (grant the token read on "+mount+"/config, or pass --prefix)") {
		t.Fatalf("no config read: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, env, "scan", "--revoke", "--mount", mount, "--prefix", "acme", dir)
	if code != exitFindings || !strings.Contains(stdout, "revoked_count=0 unknown_count=0 already_revoked_count=1") {
		t.Fatalf("--prefix acme: exit %d\n%s%s", code, stdout, stderr)
	}
	// Nothing of the mount's prefix: nothing is sent, the run says so.
	stdout, stderr, code = runCLI(t, env, "scan", "--revoke", "--mount", mount, "--prefix", "zz", dir)
	if code != exitFindings || strings.Contains(stdout, "revoke/leaked") || !strings.Contains(stderr, `no key with the prefix "zz"`) {
		t.Fatalf("--prefix zz: exit %d\n%s%s", code, stdout, stderr)
	}
}
