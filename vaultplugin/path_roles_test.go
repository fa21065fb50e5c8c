package vaultplugin

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoles_crud(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod-trader", map[string]any{
		"environment": "prod", "scopes": "trade,read", "ttl": "1h", "max_ttl": "24h",
		"allowed_cidrs": "10.0.0.0/8,192.168.1.7", "rate_limit": 5.5, "rate_burst": 10,
		"max_active_keys": 3, "recv_window": "2500", "labels": map[string]any{"tier": "gold"},
		"description": "prod trading bots",
	})
	got := e.ok(logical.ReadOperation, "roles/prod-trader", nil).Data
	want := map[string]any{
		"name": "prod-trader", "environment": "prod", "scopes": []string{"read", "trade"},
		"key_type": "bearer", "ttl": int64(3600), "max_ttl": int64(86400),
		"allowed_cidrs": []string{"10.0.0.0/8", "192.168.1.7/32"}, "rate_limit": 5.5, "rate_burst": 10,
		"max_active_keys": 3, "recv_window": int64(2500), "labels": map[string]string{"tier": "gold"},
		"description": "prod trading bots",
	}
	for k, v := range want {
		if asJSON(got[k]) != asJSON(v) {
			t.Errorf("%s = %v, want %v", k, asJSON(got[k]), asJSON(v))
		}
	}
	// Partial update keeps the other fields.
	e.role("prod-trader", map[string]any{"description": "changed", "recv_window": "10s"})
	got = e.ok(logical.ReadOperation, "roles/prod-trader", nil).Data
	if got["description"] != "changed" || got["recv_window"] != int64(10000) || got["environment"] != "prod" || asJSON(got["scopes"]) != `["read","trade"]` {
		t.Fatalf("partial update: %v", got)
	}
	e.role("dev-reader", map[string]any{"environment": "dev"})
	list := e.ok(logical.ListOperation, "roles/", nil).Data["keys"].([]string)
	if strings.Join(list, ",") != "dev-reader,prod-trader" {
		t.Fatalf("list = %v", list)
	}
	e.ok(logical.DeleteOperation, "roles/dev-reader", nil)
	if resp := e.do(logical.ReadOperation, "roles/dev-reader", nil); resp != nil {
		t.Fatalf("deleted role still readable: %v", resp.Data)
	}
}

func TestRoles_validation(t *testing.T) {
	cases := []struct {
		name        string
		path        string
		data        map[string]any
		field, rule string
	}{
		{"environment required", "roles/r", map[string]any{"scopes": "read"}, "environment", "is required"},
		{"environment shape", "roles/r", map[string]any{"environment": "Prod"}, "environment", "[a-z][a-z0-9]{0,15}"},
		{"environment too long", "roles/r", map[string]any{"environment": "abcdefghijklmnopq"}, "environment", "must match"},
		{"environment not allowed", "roles/r", map[string]any{"environment": "qa"}, "environment", "not an allowed environment"},
		{"scope outside catalog", "roles/r", map[string]any{"environment": "prod", "scopes": "read,admin"}, "scopes", "not in the mount's scope catalog"},
		{"ttl over max_ttl", "roles/r", map[string]any{"environment": "prod", "ttl": "2h", "max_ttl": "1h"}, "ttl", "must not exceed max_ttl"},
		{"max_ttl over config", "roles/r", map[string]any{"environment": "prod", "max_ttl": "800h"}, "max_ttl", "mount config's max_ttl"},
		{"negative ttl", "roles/r", map[string]any{"environment": "prod", "ttl": -1}, "ttl", "negative"},
		{"bad cidr", "roles/r", map[string]any{"environment": "prod", "allowed_cidrs": "10.0.0.0/33"}, "allowed_cidrs", "not a CIDR block"},
		{"cidr garbage", "roles/r", map[string]any{"environment": "prod", "allowed_cidrs": "banana"}, "allowed_cidrs", "not a CIDR block"},
		{"key type", "roles/r", map[string]any{"environment": "prod", "key_type": "rsa"}, "key_type", "must be one of"},
		{"rate limit negative", "roles/r", map[string]any{"environment": "prod", "rate_limit": -1}, "rate_limit", "between 0"},
		{"burst negative", "roles/r", map[string]any{"environment": "prod", "rate_burst": -1}, "rate_burst", "between 0"},
		{"max active negative", "roles/r", map[string]any{"environment": "prod", "max_active_keys": -3}, "max_active_keys", "between 0"},
		{"recv window too big", "roles/r", map[string]any{"environment": "prod", "recv_window": "60001"}, "recv_window", "at most 60000"},
		{"recv window garbage", "roles/r", map[string]any{"environment": "prod", "recv_window": "soon"}, "recv_window", "milliseconds"},
		{"recv window zero", "roles/r", map[string]any{"environment": "prod", "recv_window": "0"}, "recv_window", "more than 0"},
		{"metadata control chars", "roles/r", map[string]any{"environment": "prod", "labels": map[string]any{"k": "a\x1b[31m"}}, "labels", "control characters"},
		{"metadata bad key", "roles/r", map[string]any{"environment": "prod", "labels": map[string]any{"bad key": "v"}}, "labels", "key"},
		{"bearer with signed scope", "roles/r", map[string]any{"environment": "prod", "scopes": "withdraw"}, "scopes", "key_type must be hmac or ed25519"},
		{"bad name", "roles/bad name!", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{"traversal name", "roles/../config", map[string]any{"environment": "prod"}, "name", "letters, digits"},
		{"name too long", "roles/" + strings.Repeat("a", 65), map[string]any{"environment": "prod"}, "name", "at most 64"},
		{"unknown field", "roles/r", map[string]any{"environment": "prod", "scope": "read"}, "scope", "unknown field"},
		{"huge description", "roles/r", map[string]any{"environment": "prod", "description": strings.Repeat("x", 2000)}, "description", "at most 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config", map[string]any{
				"scopes": "read,trade,withdraw", "environments": "dev,prod", "signed_scopes": "withdraw", "max_ttl": "720h",
			})
			e.role("existing", map[string]any{"environment": "prod", "scopes": "read"})
			before := e.dump()
			e.badRequest(logical.UpdateOperation, c.path, c.data, c.field, c.rule)
			e.assertUnchanged(before)
		})
	}
}

func TestRoles_signedScopeNeedsSigningKeyType(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	e.role("ok", map[string]any{"environment": "prod", "scopes": "withdraw", "key_type": "hmac"})
	// Switching that role to bearer is refused too.
	e.badRequest(logical.UpdateOperation, "roles/ok", map[string]any{"key_type": "bearer"}, "scopes", "key_type must be hmac or ed25519")
}

// Issuing reads the role from memory after the first time: for an external
// plugin each storage read is a round trip to Vault. Every way a role
// changes must still reach the next issue at once.
func TestRoleCache_issueReadsStorageOnceAndSeesEveryChange(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read"})
	e.b.roles.drop("r") // start from a cold cache, as after a restart
	before := e.storage.readsOf(roleStoragePrefix + "r")
	for range 5 {
		e.issue("r", nil)
	}
	if n := e.storage.readsOf(roleStoragePrefix+"r") - before; n != 1 {
		t.Fatalf("5 issues read the role from storage %d times, want 1", n)
	}

	// A write on this node.
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade"})
	if d, _ := e.issue("r", nil); !slices.Equal(scopesOf(t, d), []string{"read", "trade"}) {
		t.Fatalf("after a role write: scopes %v", d["scopes"])
	}

	// A write refused half-way (scopes parse, ttl does not) changes nothing,
	// in storage or in memory.
	e.badRequest(logical.UpdateOperation, "roles/r", map[string]any{"scopes": "admin", "ttl": "forever"}, "ttl", "")
	if d, _ := e.issue("r", nil); !slices.Equal(scopesOf(t, d), []string{"read", "trade"}) {
		t.Fatalf("after a refused write: scopes %v", d["scopes"])
	}

	// A write on another node reaches this one as storage plus Invalidate.
	other := &role{Environment: "prod", Scopes: []string{"read"}, KeyType: keyTypeBearer, RecvWindow: defaultRecvWindow, OnAnomaly: anomalyNone}
	ent, err := logical.StorageEntryJSON(roleStoragePrefix+"r", other)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Put(context.Background(), ent); err != nil {
		t.Fatal(err)
	}
	e.b.invalidate(context.Background(), roleStoragePrefix+"r")
	if d, _ := e.issue("r", nil); !slices.Equal(scopesOf(t, d), []string{"read"}) {
		t.Fatalf("after another node's write: scopes %v", d["scopes"])
	}

	e.ok(logical.DeleteOperation, "roles/r", nil)
	e.badRequest(logical.ReadOperation, "creds/r", nil, "role", "does not exist")
}

// A role read that misses the cache must not cache what it read if a write
// landed in between: the stale role would be served until evicted.
func TestRoleCache_fillDuringWrite(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read"})
	e.b.roles.drop("r")

	p := e.pauseAt("get", roleStoragePrefix+"r")
	read := e.inBackground(p, &logical.Request{Operation: logical.ReadOperation, Path: "roles/r"})
	// The write itself reads the role first; that read must not pause.
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade"})
	p.release()
	read.wait(t) // it may show the old role: it began before the write
	if d, _ := e.issue("r", nil); !slices.Equal(scopesOf(t, d), []string{"read", "trade"}) {
		t.Fatalf("issue after the write: scopes %v", d["scopes"])
	}
}

func scopesOf(t *testing.T, issued map[string]any) []string {
	t.Helper()
	s, ok := issued["scopes"].([]string)
	if !ok {
		t.Fatalf("scopes: %#v", issued["scopes"])
	}
	return s
}

// The role cache holds decoded roles and getRole hands out copies: a
// caller changing its role (a role write applying its fields, creds
// narrowing a template) must never change the cached one. Every field of
// reference type is checked, so a slice or map added to role without
// being copied in clone fails here.
func TestRoleCache_getRoleReturnsPrivateCopies(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade", "allowed_cidrs": "10.0.0.0/8", "labels": map[string]any{"team": "desk"}})
	ctx := context.Background()
	a, err := e.b.getRole(ctx, e.storage, "r")
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	v := reflect.ValueOf(a).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			if f.Len() == 0 {
				t.Fatalf("field %s: give the test role a value for it", v.Type().Field(i).Name)
			}
			f.Index(0).Set(reflect.ValueOf("changed").Convert(f.Type().Elem()))
		case reflect.Map:
			if f.Len() == 0 {
				t.Fatalf("field %s: give the test role a value for it", v.Type().Field(i).Name)
			}
			f.SetMapIndex(f.MapKeys()[0], reflect.ValueOf("changed").Convert(f.Type().Elem()))
		case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Chan:
			t.Fatalf("field %s of kind %s: make clone copy it and this test change it", v.Type().Field(i).Name, f.Kind())
		}
	}
	a.Environment = "dev"
	b, err := e.b.getRole(ctx, e.storage, "r")
	if err != nil {
		t.Fatal(err)
	}
	if b.Environment != "prod" || !slices.Equal(b.Scopes, []string{"read", "trade"}) || !slices.Equal(b.AllowedCIDRs, []string{"10.0.0.0/8"}) || b.Labels["team"] != "desk" {
		t.Fatalf("a caller's change reached the cache: %+v", b)
	}
	d, _ := e.issue("r", nil)
	if !slices.Equal(scopesOf(t, d), []string{"read", "trade"}) {
		t.Fatalf("issue after a caller's change: scopes %v", d["scopes"])
	}
}
