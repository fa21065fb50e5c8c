package vaultplugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/leakforms"
)

// TestIntegration_revokeLeakedFindsEscapedKeys: revoke/leaked on the real
// server, given a log in which live keys appear in every escaped and
// encoded form of internal/leakforms (JSON \n \t \" \u0022, access-log
// %20 %3D %22, HTML entities, escaped underscores, ...), revokes every one
// of them, each once, and counts each glued look-alike once.
func TestIntegration_revokeLeakedFindsEscapedKeys(t *testing.T) {
	e := newEngine(t)
	e.vault("write", e.path("roles/leak"), "environment=prod", "max_active_keys=0")

	var text strings.Builder
	text.WriteString("2026-11-30T10:00:00Z service log export\n")
	keys := map[string]string{} // key_id -> form
	var apiKeys []string
	lookalikes := 0
	for _, f := range leakforms.All {
		k := e.issue("leak")
		keys[k.keyID] = f.Name
		apiKeys = append(apiKeys, k.apiKey)
		text.WriteString(f.Write(k.apiKey) + "\n")
		if f.Glue {
			// A live key with its last character changed: a look-alike
			// whose key_id exists, so miscounting it would show.
			other := e.issue("leak")
			last := other.apiKey[len(other.apiKey)-1]
			text.WriteString(f.Write(other.apiKey[:len(other.apiKey)-1]+flip(last)) + "\n")
			lookalikes++
		}
	}
	// The first key again, plain: it is in the text twice but revoked once.
	text.WriteString("again: " + apiKeys[0] + "\n")

	file := t.TempDir() + "/leak.log"
	if err := os.WriteFile(file, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.vault("write", "-format=json", e.path("revoke/leaked"), "text=@"+file, "reason=INC-18")
	for _, k := range apiKeys {
		if strings.Contains(out, k) {
			t.Fatal("revoke/leaked echoed a key")
		}
	}
	var resp struct{ Data map[string]any }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	d := resp.Data
	if got, want := fmt.Sprint(d["revoked_count"], d["already_revoked_count"], d["unknown_count"], d["bad_checksum_count"]),
		fmt.Sprint(len(keys), 0, 0, lookalikes); got != want {
		t.Errorf("revoked, already revoked, unknown, bad checksum = %s, want %s", got, want)
	}
	revoked := map[string]bool{}
	for _, id := range d["revoked"].([]any) {
		if revoked[id.(string)] {
			t.Errorf("key_id %s revoked twice", id)
		}
		revoked[id.(string)] = true
	}
	var missed []string
	for id, form := range keys {
		if !revoked[id] {
			missed = append(missed, form)
		}
	}
	slices.Sort(missed)
	if len(missed) > 0 {
		t.Errorf("keys written in these forms were not revoked: %q", missed)
	}
	for _, k := range apiKeys {
		if d := e.verify(k); d["code"] != "REVOKED" {
			t.Errorf("a leaked key verifies %v after revoke/leaked", d["code"])
		}
	}
}
