package vaultplugin

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Issuing a key writes its record and one index entry, nothing more: each
// write is a round trip from the plugin to Vault's storage.
func TestIssue_writesTheRecordAndOneIndexEntry(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	e.issue("r", nil) // the first issue also writes the config and pepper
	before := e.storage.puts
	k, _ := e.issue("r", nil)
	if n := e.storage.puts - before; n != 2 {
		t.Fatalf("issuing wrote %d storage entries, want 2 (record, index)", n)
	}
	id := k["key_id"].(string)
	if got := e.storageList(t, keyIndexPrefix+"r/prod/"); !slices.Contains(got, id) {
		t.Fatalf("index %v lacks %s", got, id)
	}
}

// A role whose environment changes keeps its older keys indexed under the
// old one: listings and bulk revocation by environment follow each key's
// own environment.
func TestKeyIndex_roleMovedToAnotherEnvironment(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "staging"})
	old, _ := e.issue("r", nil)
	e.role("r", map[string]any{"environment": "prod"})
	cur, _ := e.issue("r", nil)
	e.role("other", map[string]any{"environment": "prod"})
	third, _ := e.issue("other", nil)

	ids := func(data map[string]any) []string {
		got, _ := e.ok(logical.ListOperation, "keys/", data).Data["keys"].([]string)
		return sortedCopy(got)
	}
	if got, want := ids(map[string]any{"role": "r"}), sortedCopy([]string{old["key_id"].(string), cur["key_id"].(string)}); !slices.Equal(got, want) {
		t.Fatalf("role r: %v, want %v", got, want)
	}
	if got, want := ids(map[string]any{"environment": "prod"}), sortedCopy([]string{cur["key_id"].(string), third["key_id"].(string)}); !slices.Equal(got, want) {
		t.Fatalf("environment prod: %v, want %v", got, want)
	}
	resp := e.ok(logical.UpdateOperation, "revoke/environment/staging", map[string]any{})
	if got, _ := resp.Data["key_ids"].([]string); !slices.Equal(got, []string{old["key_id"].(string)}) {
		t.Fatalf("revoke/environment/staging revoked %v, want only %s", got, old["key_id"])
	}
	e.wantCode(map[string]any{"api_key": cur["api_key"]}, codeValid)
}

// A mount upgraded from a version that wrote a role and an environment index
// entry per key needs no migration: listings, max_active_keys and bulk
// revocation take the old entries in, and tidy removes them.
func TestKeyIndex_legacyEntriesAreReadAndTidied(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.ok(logical.UpdateOperation, "config", map[string]any{"retention": "24h"})
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "1h"})
	legacy, _ := e.issue("r", nil)
	current, _ := e.issue("r", nil)
	// Rewrite the first key's index the way earlier builds wrote it.
	lid := legacy["key_id"].(string)
	if err := e.storage.Delete(ctx, indexEntry("r", "prod", lid)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{legacyRoleIndexPrefix + "r/" + lid, legacyEnvIndexPrefix + "prod/" + lid} {
		if err := e.storage.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte{}}); err != nil {
			t.Fatal(err)
		}
	}
	both := sortedCopy([]string{lid, current["key_id"].(string)})
	for _, filter := range []map[string]any{{"role": "r"}, {"environment": "prod"}} {
		got, _ := e.ok(logical.ListOperation, "keys/", filter).Data["keys"].([]string)
		if !slices.Equal(sortedCopy(got), both) {
			t.Fatalf("list %v: %v, want %v", filter, got, both)
		}
	}

	// The legacy key still takes its max_active_keys slot.
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_active_keys": 2})
	e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 2 live keys")

	resp := e.ok(logical.UpdateOperation, "revoke/role/r", map[string]any{})
	if got, _ := resp.Data["key_ids"].([]string); !slices.Equal(sortedCopy(got), both) {
		t.Fatalf("revoke/role/r revoked %v, want %v", got, both)
	}
	e.wantCode(map[string]any{"api_key": legacy["api_key"]}, codeRevoked)

	e.clock.Add(26 * time.Hour)
	if got := e.ok(logical.UpdateOperation, "tidy", nil).Data; got["removed"] != 2 {
		t.Fatalf("tidy: %v", got)
	}
	for _, prefix := range []string{keyIndexPrefix, legacyRoleIndexPrefix, legacyEnvIndexPrefix} {
		if left := e.storageList(t, prefix); len(left) > 0 {
			t.Errorf("tidy left %s%v", prefix, left)
		}
	}
}

// A key whose end took effect when it was written stays ended for a reader
// whose clock is behind the writer's (a standby, a clock stepped back); only
// a rotation's grace end is compared with the reader's clock.
func TestKeyRecord_endedNeverReadsAClock(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	behind := at.Add(-time.Minute)
	revoked := &keyRecord{RevokedAt: at, Ended: true, ExpiresAt: at.Add(time.Hour)}
	expired := &keyRecord{ExpiresAt: at, Ended: true}
	grace := &keyRecord{RevokedAt: at, ExpiresAt: at.Add(time.Hour)}
	if st := revoked.status(behind); st != statusRevoked {
		t.Errorf("revoked, read by a clock behind: %s", st)
	}
	if st := expired.status(behind); st != statusExpired {
		t.Errorf("expired, read by a clock behind: %s", st)
	}
	if st := grace.status(behind); st != statusActive {
		t.Errorf("in its grace: %s", st)
	}
	if st := grace.status(at); st != statusRevoked {
		t.Errorf("grace ended: %s", st)
	}
}

// The engine's clock holds at the latest time it has shown when the wall
// clock steps back, from the mount's start on.
func TestNeverBackwards(t *testing.T) {
	wall := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	now := neverBackwards(func() time.Time { return wall })
	wall = wall.Add(-time.Hour) // stepped back before the first request
	if got := now(); !got.Equal(wall.Add(time.Hour)) {
		t.Fatalf("after a step back: %s", got)
	}
	wall = wall.Add(2 * time.Hour)
	if got := now(); !got.Equal(wall) {
		t.Fatalf("moving on: %s", got)
	}
}
