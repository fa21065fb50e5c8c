package vaultplugin

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// Finding 8: once a scope is signed, no bearer key may be granted it.
// Decision: a config write that would make a scope signed while bearer
// roles grant it is refused, naming the roles.
func TestConfig_signedScopesRefusedWhileBearerRolesGrantThem(t *testing.T) {
	e := newTestEnv(t)
	e.role("a", map[string]any{"environment": "prod", "scopes": "read,withdraw"})
	e.role("b", map[string]any{"environment": "prod", "scopes": "withdraw"})
	e.role("c", map[string]any{"environment": "prod", "scopes": "withdraw", "key_type": "hmac"})
	e.role("d", map[string]any{"environment": "prod", "scopes": "read"})
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"}, "signed_scopes", "a (withdraw), b (withdraw)")
	resp := e.do(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw,trade"})
	if msg := resp.Error().Error(); strings.Contains(msg, "c (") || strings.Contains(msg, "d (") {
		t.Fatalf("names roles that do not break the rule: %s", msg)
	}
	e.assertUnchanged(before)

	e.role("a", map[string]any{"scopes": "read"})
	e.role("b", map[string]any{"key_type": "ed25519"})
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	// Afterwards no bearer role can take it, by create or update.
	e.badRequest(logical.UpdateOperation, "roles/e", map[string]any{"environment": "prod", "scopes": "withdraw"}, "scopes", "key_type must be hmac or ed25519")
	e.badRequest(logical.UpdateOperation, "roles/a", map[string]any{"scopes": "read,withdraw"}, "scopes", "key_type must be hmac or ed25519")
	e.badRequest(logical.UpdateOperation, "roles/c", map[string]any{"key_type": "bearer"}, "scopes", "key_type must be hmac or ed25519")
	// Re-stating what is already signed is not checked again.
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
}

// A bearer role that holds a signed scope (left by an earlier build,
// which checked only role writes) never issues it, says so on read, and
// is updated only by a write that fixes it (issue 21 item 13).
func TestRoles_legacyBearerRoleWithSignedScope(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	legacy, err := logical.StorageEntryJSON(roleStoragePrefix+"old", &role{Environment: "prod", Scopes: []string{"read", "withdraw"}, KeyType: keyTypeBearer, RecvWindow: defaultRecvWindow, OnAnomaly: anomalyNone})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Put(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	resp := e.ok(logical.ReadOperation, "roles/old", nil)
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "signed_scopes") {
		t.Fatalf("read of an inconsistent role: warnings %v", resp.Warnings)
	}
	before := e.dump()
	e.badRequest(logical.ReadOperation, "creds/old", nil, "scopes", `scope "withdraw" needs a signed request`)
	e.badRequest(logical.UpdateOperation, "creds/old", map[string]any{"scopes": "withdraw"}, "scopes", "bearer key")
	e.badRequest(logical.UpdateOperation, "roles/old", map[string]any{"description": "just a note"}, "scopes", "drop the scope or change key_type in this write")
	e.assertUnchanged(before)
	// Narrowing the request around it works; so does fixing the role.
	d, _ := e.issue("old", map[string]any{"scopes": "read"})
	if asJSON(d["scopes"]) != `["read"]` {
		t.Fatalf("scopes %v", d["scopes"])
	}
	e.role("old", map[string]any{"scopes": "read", "description": "fixed"})
	if resp := e.ok(logical.ReadOperation, "roles/old", nil); len(resp.Warnings) != 0 {
		t.Fatalf("warnings after the fix: %v", resp.Warnings)
	}
}

// A bearer key issued before its scope became signed keeps the scope in
// its record, but verify refuses it unsigned, and its successor takes only
// what the role grants now (rotation follows the role's current policy).
func TestVerify_signedScopeRefusedToBearerKey(t *testing.T) {
	e := newTestEnv(t)
	e.role("legacy", map[string]any{"environment": "prod", "scopes": "read,withdraw"})
	d, _ := e.issue("legacy", nil)
	e.wantCode(map[string]any{"api_key": d["api_key"], "scopes": "withdraw"}, wire.CodeValid)
	e.role("legacy", map[string]any{"scopes": "read"})
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	got := e.wantCode(map[string]any{"api_key": d["api_key"], "scopes": "withdraw"}, wire.CodeInsufficientScope)
	if !strings.Contains(got["message"].(string), "signed") {
		t.Fatalf("message should say why: %v", got["message"])
	}
	e.wantCode(map[string]any{"api_key": d["api_key"], "scopes": "read"}, wire.CodeValid)
	succ := e.ok(logical.UpdateOperation, "keys/"+d["key_id"].(string)+"/rotate", nil).Data
	if asJSON(succ["scopes"]) != `["read"]` {
		t.Fatalf("successor scopes %v, want only read", succ["scopes"])
	}
	e.wantCode(map[string]any{"api_key": succ["api_key"], "scopes": "withdraw"}, wire.CodeInsufficientScope)
}

// slowRoleStorage delays role writes, widening the window between a role
// write's check and its storage write.
type slowRoleStorage struct {
	logical.Storage
	delay time.Duration
}

func (s *slowRoleStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, roleStoragePrefix) {
		time.Sleep(s.delay)
	}
	return s.Storage.Put(ctx, e)
}

// A role write and a config write racing cannot between them leave a
// bearer role holding a signed scope.
func TestRoles_roleWriteRacingSignedScopes(t *testing.T) {
	e := newTestEnv(t)
	s := &slowRoleStorage{Storage: e.storage, delay: 30 * time.Millisecond}
	do := func(path string, data map[string]any) *logical.Response {
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: path, Data: data, Storage: s})
		if err != nil && resp == nil {
			t.Error(err)
		}
		return resp
	}
	var wg sync.WaitGroup
	wg.Go(func() { do("roles/racer", map[string]any{"environment": "prod", "scopes": "withdraw"}) })
	time.Sleep(10 * time.Millisecond)
	wg.Go(func() { do("config", map[string]any{"signed_scopes": "withdraw"}) })
	wg.Wait()
	cfg := e.ok(logical.ReadOperation, "config", nil).Data
	r := e.ok(logical.ReadOperation, "roles/racer", nil)
	if asJSON(cfg["signed_scopes"]) == `["withdraw"]` && r != nil && r.Data["key_type"] == keyTypeBearer && asJSON(r.Data["scopes"]) == `["withdraw"]` {
		t.Fatal("the race left a bearer role holding a signed scope")
	}
}

// A config write naming signed_scopes or the catalog tells every local
// verifier to drop its cached approvals (a "flush" on the feed); other
// config writes do not.
func TestConfig_scopeChangesFlushLocalVerifiers(t *testing.T) {
	e := newTestEnv(t)
	_, cursor, _ := e.feed("")
	e.ok(logical.UpdateOperation, "config", map[string]any{"default_ttl": "1h"})
	if evs, _, _ := e.feed(cursor); len(evs) != 0 {
		t.Fatalf("a write naming neither field: %v", evs)
	}
	for _, field := range []map[string]any{{"signed_scopes": "withdraw"}, {"scopes": "read,trade,withdraw"}} {
		e.ok(logical.UpdateOperation, "config", field)
		evs, next, _ := e.feed(cursor)
		if len(evs) != 1 || evs[0]["kind"] != eventFlush || evs[0]["key_id"] != "" {
			t.Fatalf("after a write of %v: feed %v", field, evs)
		}
		cursor = next
	}
}
