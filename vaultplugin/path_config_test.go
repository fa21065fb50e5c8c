package vaultplugin

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfig_defaults(t *testing.T) {
	e := newTestEnv(t)
	got := e.ok(logical.ReadOperation, "config", nil).Data
	if got["key_prefix"] != "ck" || got["retention"] != int64(30*24*3600) || got["max_ttl"] != int64(0) {
		t.Fatalf("defaults: %v", got)
	}
}

func TestConfig_writeReadAndPartialUpdate(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{
		"key_prefix": "mx", "default_ttl": "1h", "max_ttl": "720h",
		"scopes": "read,trade,withdraw", "environments": "prod,dev", "signed_scopes": "withdraw",
	})
	e.ok(logical.UpdateOperation, "config", map[string]any{"default_ttl": 7200})
	got := e.ok(logical.ReadOperation, "config", nil).Data
	want := map[string]any{
		"key_prefix": "mx", "default_ttl": int64(7200), "max_ttl": int64(720 * 3600),
		"scopes": []string{"read", "trade", "withdraw"}, "environments": []string{"dev", "prod"},
		"signed_scopes": []string{"withdraw"},
	}
	for k, v := range want {
		if asJSON(got[k]) != asJSON(v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestConfig_pepperNeverReturned(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"key_prefix": "ck"})
	cfg, err := e.b.getConfig(t.Context(), e.storage)
	if err != nil || len(cfg.Pepper) != pepperLen {
		t.Fatalf("pepper not generated: %v", err)
	}
	resp := e.ok(logical.ReadOperation, "config", nil)
	body := asJSON(resp.Data)
	for _, enc := range []string{hex.EncodeToString(cfg.Pepper), base64.StdEncoding.EncodeToString(cfg.Pepper), "pepper"} {
		if strings.Contains(body, enc) {
			t.Fatalf("config read reveals the pepper (%q)", enc)
		}
	}
	// The pepper does not change when config is written again.
	e.ok(logical.UpdateOperation, "config", map[string]any{"scopes": "read"})
	cfg2, _ := e.b.getConfig(t.Context(), e.storage)
	if string(cfg2.Pepper) != string(cfg.Pepper) {
		t.Fatal("pepper changed on config update: existing keys would stop verifying")
	}
}

func TestConfig_validation(t *testing.T) {
	cases := []struct {
		name        string
		data        map[string]any
		field, rule string
	}{
		{"prefix too short", map[string]any{"key_prefix": "c"}, "key_prefix", "[a-z][a-z0-9]{1,7}"},
		{"prefix upper", map[string]any{"key_prefix": "CK"}, "key_prefix", "must match"},
		{"prefix underscore", map[string]any{"key_prefix": "c_k"}, "key_prefix", "must match"},
		{"default over max", map[string]any{"default_ttl": "2h", "max_ttl": "1h"}, "default_ttl", "must not exceed max_ttl"},
		{"negative ttl", map[string]any{"max_ttl": -5}, "max_ttl", "negative"},
		{"bad environment", map[string]any{"environments": "prod,Staging"}, "environments", "[a-z][a-z0-9]{0,15}"},
		{"bad scope", map[string]any{"scopes": "read,Trade!"}, "scopes", "must match"},
		{"signed scope outside catalog", map[string]any{"scopes": "read", "signed_scopes": "withdraw"}, "signed_scopes", "not in the scope catalog"},
		{"unknown field", map[string]any{"max_tll": "1h"}, "max_tll", "unknown field"},
		{"wrong type", map[string]any{"max_ttl": "forever"}, "max_ttl", "error converting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config", map[string]any{"scopes": "read,trade"})
			before := e.dump()
			e.badRequest(logical.UpdateOperation, "config", c.data, c.field, c.rule)
			e.assertUnchanged(before)
		})
	}
}

func TestConfig_prefixFixedOnceKeysExist(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"key_prefix": "ab"})
	e.ok(logical.UpdateOperation, "config", map[string]any{"key_prefix": "cd"})
	e.role("r", map[string]any{"environment": "prod"})
	e.issue("r", nil)
	e.badRequest(logical.UpdateOperation, "config", map[string]any{"key_prefix": "ef"}, "key_prefix", "cannot change once keys have been issued")
	// Re-stating the same prefix is fine.
	e.ok(logical.UpdateOperation, "config", map[string]any{"key_prefix": "cd"})
}

// TestBounds_configEnvironmentsAndVerifyScopes: the lists security.md says
// are bounded at 64 entries are: config environments, verify scopes (issue
// 22 item 8).
func TestBounds_configEnvironmentsAndVerifyScopes(t *testing.T) {
	e := newTestEnv(t)
	many := func(n int, f string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(f, i)
		}
		return out
	}
	e.ok(logical.UpdateOperation, "config", map[string]any{"environments": many(wire.MaxScopes, "env%d")})
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "config", map[string]any{"environments": many(wire.MaxScopes+1, "env%d")}, "environments", "at most 64")
	e.assertUnchanged(before)

	e.role("r", map[string]any{"environment": "env1", "scopes": "read"})
	d, _ := e.issue("r", nil)
	e.wantCode(map[string]any{"api_key": d["api_key"], "scopes": many(wire.MaxScopes, "s%d")}, wire.CodeInsufficientScope)
	e.badRequest(logical.UpdateOperation, "verify", map[string]any{"api_key": d["api_key"], "scopes": many(wire.MaxScopes+1, "s%d")}, "scopes", "at most 64")
	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.ReadOperation, Path: "verify", Storage: e.storage,
		Headers: map[string][]string{wire.VerifyHeader: {d["api_key"].(string)}},
		Data:    map[string]any{"scopes": strings.Join(many(wire.MaxScopes+1, "s%d"), ",")},
	})
	if err == nil && (resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "scopes")) {
		t.Fatalf("verify read with 65 scopes: %v %v", resp, err)
	}
}
