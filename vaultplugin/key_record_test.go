package vaultplugin

import (
	"slices"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
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
	e.wantCode(map[string]any{"api_key": cur["api_key"]}, wire.CodeValid)
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
