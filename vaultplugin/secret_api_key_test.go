package vaultplugin

import (
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func (e *testEnv) leaseOp(op logical.Operation, s *logical.Secret) *logical.Response {
	e.t.Helper()
	resp, err := e.b.HandleRequest(e.t.Context(), &logical.Request{
		Operation: op, Path: "creds/x", Storage: e.storage, Secret: s,
	})
	if err != nil {
		e.t.Fatalf("%s: %v", op, err)
	}
	return resp
}

func TestSecret_renewUpToMaxTTL(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "10m", "max_ttl": "25m"})
	d, s := e.issue("r", nil)
	s.IssueTime = e.clock.Now()
	key := map[string]any{"api_key": d["api_key"]}

	e.clock.Add(8 * time.Minute)
	resp := e.leaseOp(logical.RenewOperation, s)
	if resp.IsError() || resp.Secret.TTL != 10*time.Minute {
		t.Fatalf("first renew: %v", resp)
	}
	e.clock.Add(9 * time.Minute) // 17m after issue; 8m left before max
	resp = e.leaseOp(logical.RenewOperation, s)
	if resp.IsError() || resp.Secret.TTL != 8*time.Minute {
		t.Fatalf("renew near max_ttl should be capped to 8m, got %v", resp.Secret.TTL)
	}
	e.wantCode(key, wire.CodeValid)
	e.clock.Add(8 * time.Minute) // at max_ttl
	e.wantCode(key, wire.CodeExpired)
	if resp := e.leaseOp(logical.RenewOperation, s); !resp.IsError() {
		t.Fatalf("renew past max_ttl succeeded: %v", resp.Secret)
	}
}

func TestSecret_revokeIsIdempotentAndNeedsOnlyLeaseData(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, s := e.issue("r", nil)
	e.ok(logical.DeleteOperation, "roles/r", nil) // revocation must not need the role
	if resp := e.leaseOp(logical.RevokeOperation, s); resp != nil && resp.IsError() {
		t.Fatalf("revoke: %v", resp.Error())
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeRevoked)
	rec := e.ok(logical.ReadOperation, "keys/"+d["key_id"].(string), nil).Data
	if rec["status"] != "revoked" || rec["revoke_reason"] != "lease revoked" || rec["revoked_at"] == "" {
		t.Fatalf("revocation not recorded: %v", rec)
	}
	// Again, and for a key that no longer exists at all.
	if resp := e.leaseOp(logical.RevokeOperation, s); resp != nil && resp.IsError() {
		t.Fatalf("second revoke: %v", resp.Error())
	}
	gone := &logical.Secret{InternalData: map[string]any{"key_id": "AAAAAAAAAAAA", "secret_type": secretAPIKeyType}}
	if resp := e.leaseOp(logical.RevokeOperation, gone); resp != nil && resp.IsError() {
		t.Fatalf("revoking an unknown key: %v", resp.Error())
	}
}

// Issue 21 item 2: a key that reaches its end is expired, never revoked,
// whoever notices first (here its lease ends late, as after Vault was down,
// and an operator and a bulk revocation come after the fact).
func TestSecret_leaseEndingAfterExpiryIsRecordedAsExpiry(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1m"})
	d, s := e.issue("r", nil)
	id := d["key_id"].(string)
	e.clock.Add(2 * time.Minute)
	e.leaseOp(logical.RevokeOperation, s)
	e.ok(logical.DeleteOperation, "keys/"+id, nil)
	e.ok(logical.UpdateOperation, "revoke/role/r", nil)
	rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	if rec["status"] != statusExpired || rec["revoked_at"] != "" || rec["revoke_reason"] != "" || rec["revoked_by"] != "" {
		t.Fatalf("expiry recorded as %v (revoked_at %v, reason %v, by %v)", rec["status"], rec["revoked_at"], rec["revoke_reason"], rec["revoked_by"])
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeExpired)
}

// Issue 21 item 3: a lease revocation records the requester when Vault
// names one, and the lease manager when it does not (Vault 1.13 never does).
func TestSecret_leaseRevocationRecordsWhoVaultNames(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	for _, c := range []struct{ name, entity, want string }{
		{"", "", leaseRevoker},
		{"token-owner", "entity-9", "token-owner (entity entity-9)"},
	} {
		d, s := e.issue("r", nil)
		if _, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RevokeOperation, Path: "creds/r", Secret: s, Storage: e.storage, DisplayName: c.name, EntityID: c.entity}); err != nil {
			t.Fatal(err)
		}
		if got := e.ok(logical.ReadOperation, "keys/"+d["key_id"].(string), nil).Data["revoked_by"]; got != c.want {
			t.Fatalf("revoked_by %v, want %q", got, c.want)
		}
	}
}

func TestSecret_leaseEndingJustBeforeTheKeyIsExpiry(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "10s"})
	d, s := e.issue("r", nil)
	e.clock.Add(9 * time.Second) // Vault's lease ends a second early
	e.leaseOp(logical.RevokeOperation, s)
	rec := e.ok(logical.ReadOperation, "keys/"+d["key_id"].(string), nil).Data
	if rec["status"] != "expired" || rec["revoked_at"] != "" {
		t.Fatalf("recorded as %v (revoked_at %v), want expired", rec["status"], rec["revoked_at"])
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeExpired)

	// Well before its end, the same lease revocation is a revocation.
	d2, s2 := e.issue("r", nil)
	e.clock.Add(5 * time.Second)
	e.leaseOp(logical.RevokeOperation, s2)
	e.wantCode(map[string]any{"api_key": d2["api_key"]}, wire.CodeRevoked)
}

// Issue 22 item 4: a renew after the mount's max_lease_ttl was lowered gets
// what Vault will grant, and the record ends with the lease, not later.
func TestSecret_renewAfterAMountTuneNeverOutlivesTheLease(t *testing.T) {
	sys := &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 48 * time.Hour}
	e := newTestEnvWith(t, sys)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "2h"})
	d, s := e.issue("r", nil)
	created := e.clock.Now()
	sys.MaxLeaseTTLVal = time.Minute // vault secrets tune -max-lease-ttl=60s
	e.clock.Add(16 * time.Second)
	resp := e.leaseOp(logical.RenewOperation, s)
	if resp == nil || resp.IsError() {
		t.Fatalf("renew: %v", resp)
	}
	if resp.Secret.TTL > 44*time.Second || resp.Secret.TTL < 43*time.Second {
		t.Fatalf("renewed for %s; the mount allows 44s more", resp.Secret.TTL)
	}
	rec, _ := e.b.loadKey(t.Context(), e.storage, d["key_id"].(string))
	if rec.ExpiresAt.After(created.Add(time.Minute)) || !rec.ExpiresAt.Equal(e.clock.Now().Add(resp.Secret.TTL)) {
		t.Fatalf("record expires %s, the lease %s", rec.ExpiresAt, e.clock.Now().Add(resp.Secret.TTL))
	}
	if rec.MaxExpiresAt.After(created.Add(time.Minute)) {
		t.Fatalf("record max_expires_at %s past the mount's maximum", rec.MaxExpiresAt)
	}
	e.clock.Add(45 * time.Second)
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeExpired)
}
