package vaultplugin

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

var keyRE = regexp.MustCompile(`^` + keyformat.Pattern + `$`)

func TestCreds_issuesLeasedWellFormedKey(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod-trader", map[string]any{"environment": "prod", "scopes": "read,trade", "ttl": "1h", "max_ttl": "3h", "labels": "customer=acme"})
	data, secret := e.issue("prod-trader", nil)
	apiKey := data["api_key"].(string)
	if !keyRE.MatchString(apiKey) || !strings.HasPrefix(apiKey, "ck_prod_") {
		t.Fatalf("api_key %q does not have the design's shape", apiKey)
	}
	k, err := keyformat.Parse(apiKey)
	if err != nil || k.KeyID != data["key_id"] {
		t.Fatalf("key_id %v not inside the key (%v)", data["key_id"], err)
	}
	if secret.TTL != time.Hour || secret.MaxTTL != 3*time.Hour || !secret.Renewable {
		t.Fatalf("lease ttl=%s max=%s renewable=%v", secret.TTL, secret.MaxTTL, secret.Renewable)
	}
	if secret.InternalData["key_id"] != k.KeyID {
		t.Fatalf("lease internal data lacks key_id: %v", secret.InternalData)
	}
	if data["expires_at"] != e.clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("expires_at %v", data["expires_at"])
	}
	if asJSON(data["scopes"]) != `["read","trade"]` || asJSON(data["labels"]) != `{"customer":"acme"}` {
		t.Fatalf("scopes/metadata: %v %v", data["scopes"], data["labels"])
	}
	// Accountability: who and when.
	rec := e.ok(logical.ReadOperation, "keys/"+k.KeyID, nil).Data
	if rec["created_by"] != "token-tester" || rec["created_by_entity_id"] != "entity-1234" || rec["created_at"] != e.clock.Now().Format(time.RFC3339) {
		t.Fatalf("accountability fields: %v", rec)
	}
}

func TestCreds_ttlDefaultsAndBounds(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"default_ttl": "2h", "max_ttl": "10h"})
	e.role("plain", map[string]any{"environment": "dev"})
	_, s := e.issue("plain", nil)
	if s.TTL != 2*time.Hour || s.MaxTTL != 10*time.Hour {
		t.Fatalf("config defaults not applied: ttl=%s max=%s", s.TTL, s.MaxTTL)
	}
	e.role("short", map[string]any{"environment": "dev", "ttl": "30m", "max_ttl": "1h"})
	_, s = e.issue("short", map[string]any{"ttl": "10m"})
	if s.TTL != 10*time.Minute {
		t.Fatalf("a request may ask for less: got %s", s.TTL)
	}
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "creds/short", map[string]any{"ttl": "2h"}, "ttl", "must not exceed the role's max_ttl")
	e.assertUnchanged(before)
	// A role without max_ttl is bounded by the mount's (system view: 48h).
	e.role("nomax", map[string]any{"environment": "dev"})
	e.ok(logical.UpdateOperation, "config", map[string]any{"max_ttl": 0})
	before = e.dump()
	e.badRequest(logical.UpdateOperation, "creds/nomax", map[string]any{"ttl": "100h"}, "ttl", "must not exceed this mount's max_lease_ttl")
	e.assertUnchanged(before)
	// A role that says more than the mount allows is told so when written,
	// and a refusal names the mount's limit, not the role's max_ttl.
	resp := e.ok(logical.UpdateOperation, "roles/long", map[string]any{"environment": "dev", "ttl": "720h", "max_ttl": "2160h"})
	if len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[0], "max_ttl (2160h0m0s) exceeds this mount's max_lease_ttl (48h0m0s)") || !strings.Contains(resp.Warnings[1], "ttl (720h0m0s) exceeds") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	e.badRequest(logical.UpdateOperation, "creds/long", map[string]any{"ttl": "100h"}, "ttl", "must not exceed this mount's max_lease_ttl (Vault's lease maximum")
	if resp := e.ok(logical.UpdateOperation, "roles/short", map[string]any{"description": "within the mount"}); resp != nil && len(resp.Warnings) > 0 {
		t.Fatalf("a role within the mount's limit: warnings %v", resp.Warnings)
	}
}

func TestCreds_narrowingOnly(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade", "allowed_cidrs": "10.0.0.0/8"})
	data, _ := e.issue("r", map[string]any{"scopes": "read", "allowed_cidrs": "10.1.0.0/16", "name": "bot-1", "labels": "team=quant"})
	if asJSON(data["scopes"]) != `["read"]` || asJSON(data["allowed_cidrs"]) != `["10.1.0.0/16"]` || data["name"] != "bot-1" {
		t.Fatalf("narrowed key: %v", data)
	}
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "creds/r", map[string]any{"scopes": "withdraw"}, "scopes", "only narrow")
	e.badRequest(logical.UpdateOperation, "creds/r", map[string]any{"allowed_cidrs": "0.0.0.0/0"}, "allowed_cidrs", "not inside the role's allowed_cidrs")
	e.badRequest(logical.UpdateOperation, "creds/r", map[string]any{"public_key": "x"}, "public_key", "only ed25519 roles")
	e.badRequest(logical.UpdateOperation, "creds/r", map[string]any{"colour": "red"}, "colour", "unknown field")
	e.badRequest(logical.UpdateOperation, "creds/nope", nil, "role", "does not exist")
	e.badRequest(logical.UpdateOperation, "creds/r", map[string]any{"name": "a\nb"}, "name", "printable")
	e.assertUnchanged(before)
}

func TestCreds_storesOnlyAKeyedHash(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	var keys []string
	for range 5 {
		d, _ := e.issue("r", nil)
		keys = append(keys, d["api_key"].(string))
	}
	for k, v := range e.dump() {
		for _, apiKey := range keys {
			body := apiKey[len("ck_prod_"):]
			if strings.Contains(v, apiKey) || strings.Contains(v, body[keyformat.KeyIDLen:keyformat.KeyIDLen+keyformat.SecretLen]) {
				t.Fatalf("storage entry %q holds key material", k)
			}
		}
	}
}

func TestCreds_maxActiveKeysUnderConcurrency(t *testing.T) {
	e := newTestEnv(t)
	e.role("capped", map[string]any{"environment": "prod", "max_active_keys": 10})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 50 {
		wg.Go(func() {
			resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/capped", Storage: e.storage})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && resp != nil && !resp.IsError():
				ok++
			case resp != nil && resp.IsError() && strings.Contains(resp.Error().Error(), "max_active_keys"):
				refused++
			default:
				t.Errorf("unexpected result %v %v", resp, err)
			}
		})
	}
	wg.Wait()
	if ok != 10 || refused != 40 {
		t.Fatalf("%d issued, %d refused; want exactly 10 and 40", ok, refused)
	}
	// Revoking one frees a slot; an expired key frees one too.
	ids := e.ok(logical.ListOperation, "keys/", map[string]any{"role": "capped"}).Data["keys"].([]string)
	e.ok(logical.DeleteOperation, "keys/"+ids[0], nil)
	e.issue("capped", nil)
	e.badRequest(logical.ReadOperation, "creds/capped", nil, "max_active_keys", "already has 10 live keys")
}

func TestCreds_signingKeyTypes(t *testing.T) {
	e := newTestEnv(t)
	e.role("h", map[string]any{"environment": "prod", "key_type": "hmac"})
	d, _ := e.issue("h", nil)
	if s, _ := d["secret_key"].(string); len(s) != hmacSecretLen {
		t.Fatalf("hmac key lacks a secret_key: %v", d)
	}
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519"})
	d, _ = e.issue("ed", nil)
	if !strings.Contains(d["private_key"].(string), "BEGIN PRIVATE KEY") || !strings.Contains(d["public_key"].(string), "BEGIN PUBLIC KEY") {
		t.Fatalf("generated ed25519 pair missing: %v", d)
	}
	// The engine keeps the public key only.
	for k, v := range e.dump() {
		if strings.Contains(v, "PRIVATE KEY") {
			t.Fatalf("storage entry %q holds a private key", k)
		}
	}
}

// Regression: concurrent first issues on a fresh mount (no config written)
// from different roles must share one pepper, or some keys never verify.
func TestCreds_concurrentFirstIssuesShareOnePepper(t *testing.T) {
	for round := range 20 {
		e := newTestEnv(t)
		for i := range 8 {
			e.role(fmt.Sprintf("r%d", i), map[string]any{"environment": "prod"})
		}
		keys := make([]string, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: fmt.Sprintf("creds/r%d", i), Storage: e.storage})
				if err == nil && resp != nil && !resp.IsError() {
					keys[i] = resp.Data["api_key"].(string)
				}
			})
		}
		wg.Wait()
		for i, k := range keys {
			if got := e.verify(map[string]any{"api_key": k})["code"]; got != wire.CodeValid {
				t.Fatalf("round %d: key of r%d verifies %v", round, i, got)
			}
		}
	}
}

// Issue 21 item 1: a role written without scopes grants none; a request
// cannot add any (on a mount without a catalog the request used to get any
// string it named).
func TestCreds_roleWithoutScopesGrantsNone(t *testing.T) {
	e := newTestEnv(t)
	e.role("none", map[string]any{"environment": "prod"})
	e.ok(logical.UpdateOperation, "config", map[string]any{"max_ttl": "48h"}) // the pepper exists: a refusal writes nothing
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "creds/none", map[string]any{"scopes": "read,trade,admin"}, "scopes", "the role grants no scopes, so none can be requested")
	e.assertUnchanged(before)
	// The same with a catalog that holds the scopes asked for.
	e.ok(logical.UpdateOperation, "config", map[string]any{"scopes": "read,trade,admin"})
	before = e.dump()
	e.badRequest(logical.UpdateOperation, "creds/none", map[string]any{"scopes": "admin"}, "scopes", "the role grants no scopes")
	e.assertUnchanged(before)
	d, _ := e.issue("none", map[string]any{"name": "plain"})
	if asJSON(d["scopes"]) != `[]` {
		t.Fatalf("a key of a role without scopes has scopes %v", d["scopes"])
	}
	e.wantCode(map[string]any{"api_key": d["api_key"], "scopes": "read"}, wire.CodeInsufficientScope)
}

// Finding 10: request metadata adds keys, never changes the role's.
func TestCreds_requestMetadataMayNotOverrideTheRole(t *testing.T) {
	e := newTestEnv(t)
	e.role("tenant", map[string]any{"environment": "prod", "labels": map[string]any{"customer_id": "acme", "tier": "gold"}})
	e.ok(logical.UpdateOperation, "config", map[string]any{"max_ttl": "48h"}) // the pepper exists: a refusal writes nothing
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "creds/tenant", map[string]any{"labels": "customer_id=other"}, "labels", `key "customer_id" is set by the role`)
	e.badRequest(logical.UpdateOperation, "creds/tenant", map[string]any{"labels": map[string]any{"team": "quant", "tier": "free"}}, "labels", `"tier"`)
	e.assertUnchanged(before)
	// Repeating the role's value is fine, and new keys are added.
	d, _ := e.issue("tenant", map[string]any{"labels": map[string]any{"customer_id": "acme", "team": "quant"}})
	if got := asJSON(d["labels"]); got != `{"customer_id":"acme","team":"quant","tier":"gold"}` {
		t.Fatalf("metadata %s", got)
	}
	if got := asJSON(e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid)["labels"]); got != `{"customer_id":"acme","team":"quant","tier":"gold"}` {
		t.Fatalf("verify metadata %s", got)
	}
}

// TestConcurrency_keyPrefixChangeRacingTheFirstIssue: a config write that
// changes key_prefix checks that no key was issued yet; an issue that read
// the old prefix before that check and writes its record after it would
// hand out a key that never verifies. Either the change is refused or the
// key carries the new prefix (issue 22 item 8).
func TestConcurrency_keyPrefixChangeRacingTheFirstIssue(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"default_ttl": "1h"}) // the pepper exists
	e.role("r", map[string]any{"environment": "prod"})
	p := e.pauseAt("list", keyStoragePrefix)
	cfgWrite := e.inBackground(p, &logical.Request{Operation: logical.UpdateOperation, Path: "config", Data: map[string]any{"key_prefix": "xk"}, Storage: e.storage})
	issue := e.start(&logical.Request{Operation: logical.ReadOperation, Path: "creds/r", Storage: e.storage})
	// Give the issue the time to finish, if nothing holds it.
	deadline := time.Now().Add(2 * time.Second)
	for !issue.finished() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.release()
	waitFor(t, cfgWrite.what, cfgWrite.done) // success is no response
	if cfgWrite.err != nil {
		t.Fatal(cfgWrite.err)
	}
	cresp := cfgWrite.resp
	iresp := issue.wait(t)
	if iresp.IsError() {
		t.Fatalf("creds: %v", iresp.Error())
	}
	key := iresp.Data["api_key"].(string)
	prefix := e.ok(logical.ReadOperation, "config", nil).Data["key_prefix"]
	cfgOutcome := "ok"
	if cresp != nil {
		cfgOutcome = errorText(cresp)
	}
	t.Logf("config write: %s; key prefix %q, config prefix %v", cfgOutcome, key[:strings.Index(key, "_")], prefix)
	e.wantCode(map[string]any{"api_key": key}, wire.CodeValid)
}
