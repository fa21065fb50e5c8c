package vaultplugin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestRevoke_byRoleAndEnvironment(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod-a", map[string]any{"environment": "prod"})
	e.role("prod-b", map[string]any{"environment": "prod"})
	e.role("dev-a", map[string]any{"environment": "dev"})
	pa, _ := e.issue("prod-a", nil)
	pb, _ := e.issue("prod-b", nil)
	pb2, _ := e.issue("prod-b", nil)
	da, _ := e.issue("dev-a", nil)

	got := e.ok(logical.UpdateOperation, "revoke/role/prod-b", map[string]any{"reason": "incident 42"}).Data
	if got["revoked"] != 2 {
		t.Fatalf("revoke/role: %v", got)
	}
	e.wantCode(map[string]any{"api_key": pb["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": pb2["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": pa["api_key"]}, wire.CodeValid)
	rec := e.ok(logical.ReadOperation, "keys/"+pb["key_id"].(string), nil).Data
	if rec["revoke_reason"] != "incident 42" || rec["revoked_by"] == "" {
		t.Fatalf("bulk revocation not recorded: %v", rec)
	}

	got = e.ok(logical.UpdateOperation, "revoke/environment/prod", nil).Data
	if got["revoked"] != 1 || asJSON(got["key_ids"]) != asJSON([]string{pa["key_id"].(string)}) {
		t.Fatalf("revoke/environment counts only live keys: %v", got)
	}
	e.wantCode(map[string]any{"api_key": pa["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": da["api_key"]}, wire.CodeValid)

	// Works after the role is gone.
	e.ok(logical.DeleteOperation, "roles/dev-a", nil)
	if got := e.ok(logical.UpdateOperation, "revoke/role/dev-a", nil).Data; got["revoked"] != 1 {
		t.Fatalf("revoke of a deleted role's keys: %v", got)
	}
	e.badRequest(logical.UpdateOperation, "revoke/environment/PROD", nil, "environment", "must match")
}

func TestRevoke_leakedText(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	live1, _ := e.issue("p", nil)
	live2, _ := e.issue("p", nil)
	dead, _ := e.issue("p", nil)
	e.ok(logical.DeleteOperation, "keys/"+dead["key_id"].(string), nil)
	lookAlike := []byte(live1["api_key"].(string))
	// Still key-shaped, but the checksum no longer holds.
	if lookAlike[20] == 'A' {
		lookAlike[20] = 'B'
	} else {
		lookAlike[20] = 'A'
	}
	forged := forgeKey(t, "ck", "prod", live2["key_id"].(string)) // public key_id, wrong secret

	text := fmt.Sprintf("log line token=%s\nconfig: KEY=%q\n%s again %s\nold: %s\nnoise %s\nforged %s\n",
		live1["api_key"], live2["api_key"], live1["api_key"], "ck_prod_tooshort", dead["api_key"], lookAlike, forged)
	resp := e.ok(logical.UpdateOperation, "revoke/leaked", map[string]any{"text": text, "reason": "pasted in chat"})
	got := resp.Data
	if got["revoked_count"] != 2 || got["already_revoked_count"] != 1 || got["unknown_count"] != 1 || got["bad_checksum_count"] != 1 {
		t.Fatalf("counts: %v", got)
	}
	body := asJSON(resp)
	for _, k := range []any{live1["api_key"], live2["api_key"], dead["api_key"]} {
		if strings.Contains(body, k.(string)) {
			t.Fatal("revoke/leaked echoed key material")
		}
	}
	e.wantCode(map[string]any{"api_key": live1["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": live2["api_key"]}, wire.CodeRevoked)
	if r := e.ok(logical.ReadOperation, "keys/"+live1["key_id"].(string), nil).Data; r["revoke_reason"] != "pasted in chat" {
		t.Fatalf("reason: %v", r["revoke_reason"])
	}
	e.badRequest(logical.UpdateOperation, "revoke/leaked", map[string]any{"text": ""}, "text", "is required")
	e.badRequest(logical.UpdateOperation, "revoke/leaked", map[string]any{"text": strings.Repeat("x", maxLeakedText+1)}, "text", "at most")
}
