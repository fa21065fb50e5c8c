package vaultplugin

import (
	"slices"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestRotate_graceOverlapThenOnlySuccessor(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read", "ttl": "1h", "labels": "customer=acme"})
	old, _ := e.issue("r", map[string]any{"name": "gw"})
	resp := e.ok(logical.UpdateOperation, "keys/"+old["key_id"].(string)+"/rotate", map[string]any{"grace": "2s"})
	if resp.Secret == nil {
		t.Fatal("rotate must return the successor as a leased secret")
	}
	succ := resp.Data
	if succ["previous_key_id"] != old["key_id"] || succ["name"] != "gw" || asJSON(succ["labels"]) != `{"customer":"acme"}` || asJSON(succ["scopes"]) != `["read"]` {
		t.Fatalf("successor does not copy its predecessor: %v", succ)
	}
	e.wantCode(map[string]any{"api_key": old["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
	e.clock.Add(2 * time.Second)
	e.wantCode(map[string]any{"api_key": old["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)

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
	e.wantCode(map[string]any{"api_key": old["api_key"]}, wire.CodeRevoked)
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

func (e *testEnv) rotate(keyID string, data map[string]any) map[string]any {
	e.t.Helper()
	resp := e.ok(logical.UpdateOperation, "keys/"+keyID+"/rotate", data)
	if resp.Secret == nil {
		e.t.Fatal("rotate returned no lease")
	}
	return resp.Data
}

// Finding 5: a successor follows the role as it is now; the old key's
// narrowing still applies.
func TestRotate_followsTheRolesCurrentPolicy(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade", "allowed_cidrs": "10.0.0.0/8",
		"labels": "customer=acme", "ttl": "1h", "max_ttl": "2h"})
	old, _ := e.issue("r", map[string]any{"scopes": "read,trade", "allowed_cidrs": "10.1.0.0/16", "labels": "team=gw", "name": "gw"})
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,withdraw", "allowed_cidrs": "10.0.0.0/8",
		"labels": "customer=acme2", "ttl": "30m", "max_ttl": "1h"})
	succ := e.rotate(old["key_id"].(string), nil)
	if asJSON(succ["scopes"]) != `["read"]` {
		t.Fatalf("successor scopes %v: want the role's current scopes the old key had", succ["scopes"])
	}
	if asJSON(succ["allowed_cidrs"]) != `["10.1.0.0/16"]` || succ["name"] != "gw" {
		t.Fatalf("successor lost the old key's narrowing: %v", succ)
	}
	if asJSON(succ["labels"]) != `{"customer":"acme2","team":"gw"}` {
		t.Fatalf("successor labels %v: want the role's plus the key's own", succ["labels"])
	}
	if want := formatTime(e.clock.Now().Add(30 * time.Minute)); succ["expires_at"] != want {
		t.Fatalf("successor expires_at %v, want the role's ttl from now (%s)", succ["expires_at"], want)
	}
	rec, _ := e.b.loadKey(t.Context(), e.storage, succ["key_id"].(string))
	if !rec.MaxExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("successor max_expires_at %v: want the role's max_ttl from now", rec.MaxExpiresAt)
	}
	// Narrowed CIDRs no longer inside the role's: the role's apply.
	e.role("r", map[string]any{"environment": "prod", "scopes": "read", "allowed_cidrs": "192.168.0.0/16", "ttl": "30m", "max_ttl": "1h"})
	succ2 := e.rotate(succ["key_id"].(string), nil)
	if asJSON(succ2["allowed_cidrs"]) != `["192.168.0.0/16"]` || asJSON(succ2["labels"]) != `{"customer":"acme2","team":"gw"}` {
		t.Fatalf("second successor: %v", succ2)
	}
	// A role that grants none of the key's scopes any more: refused.
	e.role("r", map[string]any{"environment": "prod", "scopes": "withdraw"})
	e.badRequest(logical.UpdateOperation, "keys/"+succ2["key_id"].(string)+"/rotate", nil, "key_id", "no longer grants any of")
}

// A successor's max_ttl is the role's now, not the one its predecessor was
// issued under: lowering a role's max_ttl reaches every chain of rotations.
func TestRotate_chainedRotationsNeverOutliveTheRolesMaxTTL(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "720h"})
	k, _ := e.issue("r", nil)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "2h"})
	id := k["key_id"].(string)
	for range 3 {
		e.clock.Add(50 * time.Minute)
		id = e.rotate(id, nil)["key_id"].(string)
	}
	rec, _ := e.b.loadKey(t.Context(), e.storage, id)
	if got := rec.MaxExpiresAt.Sub(e.clock.Now()); got != 2*time.Hour {
		t.Fatalf("after chained rotations the key may live %s more; want the role's current max_ttl (2h)", got)
	}
}

func TestRotate_keyOfADeletedRoleIsRefused(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	e.ok(logical.DeleteOperation, "roles/r", nil)
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "keys/"+k["key_id"].(string)+"/rotate", nil, "key_id", `"r", no longer exists`)
	e.assertUnchanged(before)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
}

// Issue 22 item 2: a suspended key cannot be rotated into a fresh one.
func TestRotate_suspendedKeyIsRefused(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "anomaly_rate": 0.1})
	k, _ := e.issue("r", nil)
	id := k["key_id"].(string)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeSuspended)
	// Suspended on this node, not yet flushed.
	e.badRequest(logical.UpdateOperation, "keys/"+id+"/rotate", nil, "key_id", "is suspended")
	if err := e.b.flushUsage(t.Context(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	// Stored.
	e.badRequest(logical.UpdateOperation, "keys/"+id+"/rotate", nil, "key_id", "is suspended")
	e.ok(logical.UpdateOperation, "keys/"+id+"/resume", nil)
	e.rotate(id, nil)
}

// Issue 22 item 2: rotation can be pinned to a role with the role parameter.
func TestRotate_roleParameterMustBeTheKeysRole(t *testing.T) {
	e := newTestEnv(t)
	e.role("a", map[string]any{"environment": "prod"})
	e.role("b", map[string]any{"environment": "prod"})
	k, _ := e.issue("a", nil)
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "keys/"+k["key_id"].(string)+"/rotate", map[string]any{"role": "b"}, "role", "is not a key of role")
	e.assertUnchanged(before)
	e.rotate(k["key_id"].(string), map[string]any{"role": "a"})
}

// storedKeys lists key records and WAL entries.
func (e *testEnv) storedKeys() (records, wal []string) {
	e.t.Helper()
	records, err := e.storage.List(e.t.(*testing.T).Context(), keyStoragePrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	wal, err = e.storage.List(e.t.(*testing.T).Context(), "wal/")
	if err != nil {
		e.t.Fatal(err)
	}
	return records, wal
}

// Finding 4: a rotation whose old-key write fails leaves no successor (and
// so no max_active_keys slot) behind, however often it is retried.
func TestRotate_failedOldKeyWriteLeavesNothingBehind(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "max_active_keys": 2})
	k, _ := e.issue("r", nil)
	id := k["key_id"].(string)
	f := e.withFaults()
	f.failNext(keyStoragePrefix+id, -1, false)
	for range 3 {
		if resp, err := e.try(logical.UpdateOperation, "keys/"+id+"/rotate", nil); !failed(resp, err) {
			t.Fatalf("the fault was not reported: %v", resp)
		}
	}
	if records, wal := e.storedKeys(); len(records) != 1 || len(wal) != 0 {
		t.Fatalf("failed rotations left records %v and WAL entries %v", records, wal)
	}
	f.failNext("", 0, false)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	e.issue("r", nil) // the second slot is still free
}

// A write of the old key that fails after committing is a finished rotation.
func TestRotate_oldKeyWriteThatCommitsThenFailsFinishes(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	id := k["key_id"].(string)
	f := e.withFaults()
	f.failNext(keyStoragePrefix+id, 1, true)
	succ := e.rotate(id, nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
	if _, wal := e.storedKeys(); len(wal) != 0 {
		t.Fatalf("WAL entries left: %v", wal)
	}
}

// Finding 4: a rotation that stopped half way (its clean-up failed too, or
// the node died) is rolled back by Vault's rollback, and a retry of the
// rotation clears it first.
func TestRotate_halfWrittenRotationIsRolledBack(t *testing.T) {
	for _, how := range []string{"rollback", "retry"} {
		e := newTestEnv(t)
		e.role("r", map[string]any{"environment": "prod", "max_active_keys": 2})
		k, _ := e.issue("r", nil)
		id := k["key_id"].(string)
		f := e.withFaults()
		f.failNext(keyStoragePrefix+id, 1, false)
		f.failDeletes = keyStoragePrefix
		if resp, err := e.try(logical.UpdateOperation, "keys/"+id+"/rotate", nil); !failed(resp, err) {
			t.Fatalf("the fault was not reported: %v", resp)
		}
		if records, wal := e.storedKeys(); len(records) != 2 || len(wal) != 1 {
			t.Fatalf("setup: records %v wal %v", records, wal)
		}
		f.failDeletes = ""
		switch how {
		case "rollback":
			resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RollbackOperation, Path: "", Storage: e.storage, Data: map[string]any{"immediate": true}})
			if err != nil || (resp != nil && resp.IsError()) {
				t.Fatalf("rollback: %v %v", resp, err)
			}
			if records, wal := e.storedKeys(); len(records) != 1 || len(wal) != 0 {
				t.Fatalf("after rollback: records %v wal %v", records, wal)
			}
			if ids, _ := roleKeyIDs(t.Context(), e.storage, "r"); len(ids) != 1 {
				t.Fatalf("after rollback the index still has %v", ids)
			}
			e.issue("r", nil) // the slot is free again
		case "retry":
			succ := e.rotate(id, nil)
			if records, wal := e.storedKeys(); len(records) != 2 || len(wal) != 0 || !slices.Contains(records, succ["key_id"].(string)) {
				t.Fatalf("after a retry: records %v wal %v", records, wal)
			}
		}
	}
}

// The rollback of a log entry whose rotation finished keeps the successor.
func TestRotate_rollbackKeepsAFinishedRotation(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	succ := e.rotate(k["key_id"].(string), nil)
	if _, err := framework.PutWAL(t.Context(), e.storage, walRotationKind, &rotationWAL{OldKeyID: k["key_id"].(string), NewKeyID: succ["key_id"].(string), Role: "r", Environment: "prod"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage, Data: map[string]any{"immediate": true}}); err != nil {
		t.Fatal(err)
	}
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
	if _, wal := e.storedKeys(); len(wal) != 0 {
		t.Fatalf("WAL entries left: %v", wal)
	}
}

// A rotation whose feed event cannot be written is undone: the caller gets
// the error and no successor, the old key is as it was, and a retry works.
func TestRotate_failedFeedEventUndoesTheRotation(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	k, _ := e.issue("r", nil)
	id := k["key_id"].(string)
	f := e.withFaults()
	f.failNext(revocationPrefix, 1, false)
	if resp, err := e.try(logical.UpdateOperation, "keys/"+id+"/rotate", nil); !failed(resp, err) {
		t.Fatalf("the fault was not reported: %v", resp)
	}
	if records, wal := e.storedKeys(); len(records) != 1 || len(wal) != 0 {
		t.Fatalf("records %v wal %v", records, wal)
	}
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	succ := e.rotate(id, nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
}
