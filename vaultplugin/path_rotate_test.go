package vaultplugin

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRotate_graceOverlapThenOnlySuccessor(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read", "ttl": "1h", "metadata": "customer=acme"})
	old, _ := e.issue("r", map[string]any{"name": "gw"})
	resp := e.ok(logical.UpdateOperation, "keys/"+old["key_id"].(string)+"/rotate", map[string]any{"grace": "2s"})
	if resp.Secret == nil {
		t.Fatal("rotate must return the successor as a leased secret")
	}
	succ := resp.Data
	if succ["previous_key_id"] != old["key_id"] || succ["name"] != "gw" || asJSON(succ["metadata"]) != `{"customer":"acme"}` || asJSON(succ["scopes"]) != `["read"]` {
		t.Fatalf("successor does not copy its predecessor: %v", succ)
	}
	e.wantCode(map[string]any{"api_key": old["api_key"]}, codeValid)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, codeValid)
	e.clock.Add(2 * time.Second)
	e.wantCode(map[string]any{"api_key": old["api_key"]}, codeRevoked)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, codeValid)

	rec := e.ok(logical.ReadOperation, "keys/"+old["key_id"].(string), nil).Data
	if rec["rotated_to"] != succ["key_id"] {
		t.Fatalf("old key does not point at its successor: %v", rec)
	}
}

func TestRotate_defaultGraceRevokesNowAndGraceNeverExtends(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1m"})
	old, _ := e.issue("r", nil)
	e.ok(logical.UpdateOperation, "keys/"+old["key_id"].(string)+"/rotate", nil)
	e.wantCode(map[string]any{"api_key": old["api_key"]}, codeRevoked)
	e.badRequest(logical.UpdateOperation, "keys/"+old["key_id"].(string)+"/rotate", nil, "key_id", "is revoked")

	other, _ := e.issue("r", nil)
	resp := e.ok(logical.UpdateOperation, "keys/"+other["key_id"].(string)+"/rotate", map[string]any{"grace": "1h"})
	if resp.Data["previous_expires_at"] != other["expires_at"] {
		t.Fatalf("grace past the old key's expiry extended it: %v vs %v", resp.Data["previous_expires_at"], other["expires_at"])
	}
	e.badRequest(logical.UpdateOperation, "keys/"+other["key_id"].(string)+"/rotate", map[string]any{"grace": -1}, "grace", "negative")
}

func TestRotate_bringYourOwnEd25519(t *testing.T) {
	e := newTestEnv(t)
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519"})
	old, _ := e.issue("ed", map[string]any{"public_key": vectorEd25519Public})
	resp := e.ok(logical.UpdateOperation, "keys/"+old["key_id"].(string)+"/rotate", map[string]any{"public_key": vectorEd25519Public})
	if _, has := resp.Data["private_key"]; has || resp.Data["public_key"] != vectorEd25519Public {
		t.Fatalf("BYO rotation: %v", resp.Data)
	}
	b := newTestEnv(t)
	b.role("bearer", map[string]any{"environment": "prod"})
	k, _ := b.issue("bearer", nil)
	b.badRequest(logical.UpdateOperation, "keys/"+k["key_id"].(string)+"/rotate", map[string]any{"public_key": vectorEd25519Public}, "public_key", "only ed25519")
}
