package vaultplugin

import (
	"slices"
	"testing"

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
