package vaultplugin_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Finding 5 of issue 15, on the real server through the real CLI: a
// successor is issued under its role's current policy, and a key whose role
// is gone is refused with a 400. Issue 22 item 2: a policy can pin rotation
// to one role with the role parameter.
func TestIntegration_rotationFollowsTheCurrentRole(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/trader"), "environment=prod", "scopes=read,trade", "labels=customer=acme", "ttl=1h", "max_ttl=2h")
	k := e.vaultJSON("write", e.path("creds/trader"), "labels=team=gw").Data
	id := k["key_id"].(string)

	// Narrow the role: the successor loses trade, takes the role's labels.
	e.vault("write", e.path("roles/trader"), "environment=prod", "scopes=read", "labels=customer=acme2", "ttl=30m", "max_ttl=1h")
	succ := e.vaultJSON("write", "-f", e.path("keys/"+id+"/rotate")).Data
	if got := fmt.Sprint(succ["scopes"]); got != "[read]" {
		t.Fatalf("successor scopes %s after the role was narrowed to read", got)
	}
	if got := fmt.Sprint(succ["labels"]); got != "map[customer:acme2 team:gw]" {
		t.Fatalf("successor labels %s", got)
	}
	succID, succKey := succ["key_id"].(string), succ["api_key"].(string)
	e.wantCode(succKey, "VALID")
	if code := e.srv.MustCLI(t, "write", "-field=code", e.path("verify"), "api_key="+succKey, "scopes=trade"); strings.TrimSpace(code) != "INSUFFICIENT_SCOPE" {
		t.Fatalf("the successor still has trade: %s", code)
	}
	if got := e.vaultJSON("read", e.path("keys/"+id)).Data["rotated_to"]; got != succID {
		t.Fatalf("old key rotated_to %v, want %s", got, succID)
	}

	// A token pinned to another role by policy cannot rotate this key.
	e.vault("write", e.path("roles/other"), "environment=prod")
	name := "rotate-other-" + e.mount
	policy := fmt.Sprintf(`path "%s/keys/+/rotate" {
  capabilities        = ["update"]
  required_parameters = ["role"]
  allowed_parameters  = { "role" = ["other"], "grace" = [] }
}`, e.mount)
	if err := e.srv.Client.Sys().PutPolicy(name, policy); err != nil {
		t.Fatal(err)
	}
	tok, err := e.srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := e.srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	pinned.SetToken(tok.Auth.ClientToken)
	for _, data := range []map[string]any{{"grace": 0}, {"role": "trader"}} {
		var re *api.ResponseError
		if _, err := pinned.Logical().Write(e.path("keys/"+succID+"/rotate"), data); !errors.As(err, &re) || re.StatusCode != 403 {
			t.Fatalf("a token pinned to role other rotated a trader key with %v: %v", data, err)
		}
	}
	var re *api.ResponseError
	if _, err := pinned.Logical().Write(e.path("keys/"+succID+"/rotate"), map[string]any{"role": "other"}); !errors.As(err, &re) || re.StatusCode != 400 || !strings.Contains(err.Error(), "is not a key of role") {
		t.Fatalf("role=other for a trader key: %v", err)
	}

	// The role is deleted: rotation is a 400 naming the key and the role,
	// and nothing changes.
	e.vault("delete", e.path("roles/trader"))
	out, err := e.srv.CLI(t, "write", "-f", e.path("keys/"+succID+"/rotate"))
	if err == nil || !strings.Contains(out, "Code: 400") || !strings.Contains(out, "key_id") || !strings.Contains(out, `"trader", no longer exists`) {
		t.Fatalf("rotation after the role was deleted: %v\n%s", err, out)
	}
	e.wantCode(succKey, "VALID")
	if got := e.vaultJSON("read", e.path("keys/"+succID)).Data["rotated_to"]; got != nil && got != "" {
		t.Fatalf("a refused rotation left rotated_to %v", got)
	}
}

// Issue 22 item 4 on the real server: after the mount's max-lease-ttl is
// tuned down, a renew is what Vault grants, and the key's record ends with
// the lease, not hours later.
func TestIntegration_renewAfterAMountTuneEndsWithTheLease(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/long"), "environment=dev", "ttl=1h", "max_ttl=2h")
	issuedAt := time.Now()
	k := e.issue("long")
	e.vault("secrets", "tune", "-max-lease-ttl=60s", e.mount)
	time.Sleep(1500 * time.Millisecond) // past the engine's one-second memo of the mount's limits
	s := e.vaultJSON("lease", "renew", k.leaseID)
	if s.LeaseDuration > 60 {
		t.Fatalf("renew after the tune: lease_duration %d, over the mount's 60s", s.LeaseDuration)
	}
	look := e.vaultJSON("lease", "lookup", k.leaseID).Data
	leaseExp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(look["expire_time"]))
	if err != nil {
		t.Fatalf("lease lookup: %v", look)
	}
	rec := e.vaultJSON("read", e.path("keys/"+k.keyID)).Data
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(rec["expires_at"]))
	if err != nil {
		t.Fatalf("keys/%s: expires_at %v", k.keyID, rec["expires_at"])
	}
	if exp.After(leaseExp.Add(time.Second)) || exp.After(issuedAt.Add(62*time.Second)) {
		t.Fatalf("the key's record expires %s, its lease %s (issued %s, mount max 60s)", exp.UTC(), leaseExp.UTC(), issuedAt.UTC())
	}
}
