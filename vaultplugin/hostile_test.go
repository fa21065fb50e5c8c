package vaultplugin

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestHostileInput sends bad requests to every path: each must be refused
// with a 4xx whose message names the field, and storage must be byte for
// byte what it was.
func TestHostileInput(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"scopes": "read,trade", "environments": "dev,prod", "max_ttl": "720h"})
	e.role("prod", map[string]any{"environment": "prod", "scopes": "read", "ttl": "1h", "max_ttl": "2h", "allowed_cidrs": "10.0.0.0/8"})
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519"})
	d, _ := e.issue("prod", nil)
	id := d["key_id"].(string)
	mib := strings.Repeat("x", 1<<20)
	var upd, rd, del logical.Operation = logical.UpdateOperation, logical.ReadOperation, logical.DeleteOperation

	cases := []struct {
		op          logical.Operation
		path        string
		data        map[string]any
		field, rule string
	}{
		// config
		{upd, "config", map[string]any{"key_prefix": "ck_"}, "key_prefix", "must match"},
		{upd, "config", map[string]any{"key_prefix": "ключ"}, "key_prefix", "must match"},
		{upd, "config", map[string]any{"key_prefix": mib}, "key_prefix", "must match"},
		{upd, "config", map[string]any{"default_ttl": -1}, "default_ttl", "negative"},
		{upd, "config", map[string]any{"max_ttl": "9999999999999h"}, "max_ttl", "error converting"},
		{upd, "config", map[string]any{"max_ttl": []any{1, 2}}, "max_ttl", "error converting"},
		{upd, "config", map[string]any{"environments": "prod\x00"}, "environments", "must match"},
		{upd, "config", map[string]any{"scopes": strings.Repeat("a,", 100)}, "scopes", "at most 64"},
		{upd, "config", map[string]any{"pepper": "00"}, "pepper", "unknown field"},
		// roles
		{upd, "roles/../../sys/raw", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{upd, "roles/%2e%2e", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{upd, "roles/rôle", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{upd, "roles/a\x1b[2Jb", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{upd, "roles/" + strings.Repeat("r", 300), map[string]any{"environment": "prod"}, "name", "at most 64"},
		{upd, "roles/x", map[string]any{"environment": mib}, "environment", "must match"},
		{upd, "roles/x", map[string]any{"environment": "staging"}, "environment", "not an allowed environment"},
		{upd, "roles/x", map[string]any{"environment": "prod", "ttl": "-5m"}, "ttl", "negative"},
		{upd, "roles/x", map[string]any{"environment": "prod", "ttl": "100000h"}, "ttl", "mount config's max_ttl"},
		{upd, "roles/x", map[string]any{"environment": "prod", "max_ttl": "8760h"}, "max_ttl", "mount config's max_ttl"},
		{upd, "roles/x", map[string]any{"environment": "prod", "ttl": true}, "ttl", "error converting"},
		{upd, "roles/x", map[string]any{"environment": "prod", "allowed_cidrs": "10.0.0.0/8,300.1.1.1/8"}, "allowed_cidrs", "not a CIDR block"},
		{upd, "roles/x", map[string]any{"environment": "prod", "allowed_cidrs": "::/129"}, "allowed_cidrs", "not a CIDR block"},
		{upd, "roles/x", map[string]any{"environment": "prod", "scopes": "read,trade,Wírë"}, "scopes", "must match"},
		{upd, "roles/x", map[string]any{"environment": "prod", "key_type": "RSA"}, "key_type", "must be one of"},
		{upd, "roles/x", map[string]any{"environment": "prod", "rate_limit": "NaN"}, "rate_limit", "between 0"},
		{upd, "roles/x", map[string]any{"environment": "prod", "rate_limit": 1e300}, "rate_limit", "between 0"},
		{upd, "roles/x", map[string]any{"environment": "prod", "max_active_keys": 1 << 40}, "max_active_keys", "between 0"},
		{upd, "roles/x", map[string]any{"environment": "prod", "recv_window": "-1s"}, "recv_window", "more than 0"},
		{upd, "roles/x", map[string]any{"environment": "prod", "labels": map[string]any{strings.Repeat("k", 65): "v"}}, "labels", "key"},
		{upd, "roles/x", map[string]any{"environment": "prod", "labels": map[string]any{"k": mib}}, "labels", "at most 512"},
		{upd, "roles/x", map[string]any{"environment": "prod", "description": mib}, "description", "at most 1024"},
		{upd, "roles/x", map[string]any{"environment": "prod", "evil": "1"}, "evil", "unknown field"},
		// creds
		{upd, "creds/prod", map[string]any{"ttl": "3h"}, "ttl", "must not exceed"},
		{upd, "creds/prod", map[string]any{"ttl": -1}, "ttl", "negative"},
		{upd, "creds/prod", map[string]any{"scopes": "trade"}, "scopes", "only narrow"},
		{upd, "creds/prod", map[string]any{"allowed_cidrs": "0.0.0.0/0"}, "allowed_cidrs", "not inside"},
		{upd, "creds/prod", map[string]any{"name": "a\x00b"}, "name", "printable"},
		{upd, "creds/prod", map[string]any{"name": mib}, "name", "at most"},
		{upd, "creds/ed", map[string]any{"public_key": mib}, "public_key", "PEM"},
		{upd, "creds/../config", nil, "role", "letters, digits"},
		{rd, "creds/missing", nil, "role", "does not exist"},
		// keys, rotate, resume
		{rd, "keys/" + id + "x", nil, "key_id", "12 base62"},
		{del, "keys/" + id, map[string]any{"reason": mib}, "reason", "at most 512"},
		{upd, "keys/" + id + "/rotate", map[string]any{"grace": -10}, "grace", "negative"},
		{upd, "keys/" + id + "/rotate", map[string]any{"public_key": "-----BEGIN PUBLIC KEY-----"}, "public_key", "only ed25519"},
		{upd, "keys/AAAAAAAAAAAA/rotate", nil, "key_id", "no key"},
		{upd, "keys/AAAAAAAAAAAA/resume", nil, "key_id", "no key"},
		// verify, incident paths, usage, feed
		{upd, "verify", map[string]any{"api_key": d["api_key"], "scope": "withdraw"}, "scope", "unknown field"},
		{upd, "verify", map[string]any{"api_key": []any{"a"}}, "api_key", "error converting"},
		{upd, "revoke/role/../x", nil, "role", "letters, digits"},
		{upd, "revoke/environment/Prod", nil, "environment", "must match"},
		{upd, "revoke/leaked", map[string]any{"text": mib + mib + mib + mib + "x"}, "text", "at most"},
		{upd, "revoke/leaked", map[string]any{"text": "x", "reason": "\x07"}, "reason", "control characters"},
		{upd, "usage", map[string]any{"reports": []any{"not an object"}}, "reports", "must be an object"},
		{rd, "revocations", map[string]any{"since": "'; DROP TABLE keys"}, "since", "cursor"},
		{upd, "tidy", map[string]any{"retention": "1s"}, "retention", "unknown field"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	before := e.dump()
	for _, c := range cases {
		resp := e.do(c.op, c.path, c.data)
		if resp == nil || !resp.IsError() {
			t.Errorf("%s %.60q: accepted", c.op, c.path)
			continue
		}
		msg := resp.Error().Error()
		if !strings.Contains(msg, c.field) || !strings.Contains(msg, c.rule) {
			t.Errorf("%s %.60q: %.200q should name %q and say %q", c.op, c.path, msg, c.field, c.rule)
		}
		if len(msg) > 2048 {
			t.Errorf("%s %.60q: a %d-byte error echoes the input", c.op, c.path, len(msg))
		}
	}
	e.assertUnchanged(before)
}
