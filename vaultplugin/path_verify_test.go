package vaultplugin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestVerify_bearerCodes(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod", map[string]any{"environment": "prod", "scopes": "read,trade", "ttl": "1h", "allowed_cidrs": "10.0.0.0/8", "labels": "customer=acme"})
	d, _ := e.issue("prod", nil)
	key := d["api_key"].(string)
	ok := map[string]any{"api_key": key, "source_ip": "10.1.2.3"}

	got := e.wantCode(ok, wire.CodeValid)
	if got["key_id"] != d["key_id"] || got["role"] != "prod" || got["environment"] != "prod" ||
		asJSON(got["scopes"]) != `["read","trade"]` || asJSON(got["labels"]) != `{"customer":"acme"}` || got["expires_at"] != d["expires_at"] {
		t.Fatalf("VALID answer lacks the key's facts: %v", got)
	}
	e.wantCode(map[string]any{"api_key": key, "source_ip": "10.1.2.3", "scopes": "read,trade", "environment": "prod"}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": key, "source_ip": "10.1.2.3", "scopes": "withdraw"}, wire.CodeInsufficientScope)
	e.wantCode(map[string]any{"api_key": key, "source_ip": "10.1.2.3", "environment": "staging"}, wire.CodeEnvironmentMismatch)
	e.wantCode(map[string]any{"api_key": key, "source_ip": "192.168.0.1"}, wire.CodeIPNotAllowed)
	e.wantCode(map[string]any{"api_key": key}, wire.CodeIPNotAllowed)
	e.wantCode(map[string]any{"api_key": key, "source_ip": "::ffff:10.0.0.1"}, wire.CodeValid)

	// MALFORMED: shape, checksum, empty, oversized.
	bad := []byte(key)
	bad[len(bad)-1] ^= 1
	for _, k := range []string{"", "hello", key + "x", string(bad), strings.Repeat("a", 1<<16), strings.ToUpper(key)} {
		got := e.wantCode(map[string]any{"api_key": k}, wire.CodeMalformed)
		if got["key_id"] != nil {
			t.Fatalf("MALFORMED answer reveals a key_id: %v", got)
		}
	}
	// NOT_FOUND: right key_id, wrong secret (valid checksum); unknown key_id; other mount's prefix.
	parsed, _ := keyformat.Parse(key)
	forged := forgeKey(t, "ck", "prod", parsed.KeyID)
	got = e.wantCode(map[string]any{"api_key": forged}, wire.CodeNotFound)
	if got["role"] != nil {
		t.Fatalf("NOT_FOUND reveals the record: %v", got)
	}
	e.wantCode(map[string]any{"api_key": forgeKey(t, "ck", "prod", "")}, wire.CodeNotFound)
	e.wantCode(map[string]any{"api_key": forgeKey(t, "zz", "prod", parsed.KeyID)}, wire.CodeNotFound)

	// REVOKED, then EXPIRED on another key (before any lease revocation).
	e.ok(logical.DeleteOperation, "keys/"+parsed.KeyID, map[string]any{"reason": "test"})
	e.wantCode(ok, wire.CodeRevoked)
	d2, _ := e.issue("prod", nil)
	e.clock.Add(time.Hour)
	e.wantCode(map[string]any{"api_key": d2["api_key"], "source_ip": "10.0.0.1"}, wire.CodeExpired)
}

// forgeKey builds a well-formed key with a valid checksum that the engine
// never issued (keyID "" = random).
func forgeKey(t *testing.T, prefix, env, keyID string) string {
	t.Helper()
	k, err := keyformat.Generate(prefix, env)
	if err != nil {
		t.Fatal(err)
	}
	raw := k.Raw()
	if keyID != "" {
		head := prefix + "_" + env + "_"
		body := keyID + raw[len(head)+keyformat.KeyIDLen:len(raw)-keyformat.ChecksumLen]
		raw = head + body + keyformat.Checksum(head+body)
	}
	if _, err := keyformat.Parse(raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerify_writesNoStorage(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "rate_limit": 1000})
	d, _ := e.issue("r", nil)
	puts, _, dels := e.storage.counts()
	for range 100 {
		e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "10.0.0.1"}, wire.CodeValid)
		e.wantCode(map[string]any{"api_key": "ck_prod_garbage"}, wire.CodeMalformed)
	}
	puts2, _, dels2 := e.storage.counts()
	if puts2 != puts || dels2 != dels {
		t.Fatalf("verify wrote storage: %d puts, %d deletes", puts2-puts, dels2-dels)
	}
}

func TestVerify_malformedReadsNoStorage(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"scopes": "read"})
	_, gets, _ := e.storage.counts()
	for range 10 {
		e.wantCode(map[string]any{"api_key": "ck_prod_" + strings.Repeat("A", 50)}, wire.CodeMalformed)
	}
	if _, gets2, _ := e.storage.counts(); gets2 != gets {
		t.Fatalf("MALFORMED read storage %d times", gets2-gets)
	}
}

func TestVerify_rateLimited(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "rate_limit": 2, "rate_burst": 3})
	d, _ := e.issue("r", nil)
	req := map[string]any{"api_key": d["api_key"]}
	for range 3 {
		e.wantCode(req, wire.CodeValid)
	}
	got := e.wantCode(req, wire.CodeRateLimited)
	if ms, _ := got["retry_after_ms"].(int64); ms < 400 || ms > 500 {
		t.Fatalf("retry_after_ms = %v, want about 500 at 2 req/s", got["retry_after_ms"])
	}
	e.clock.Add(500 * time.Millisecond)
	e.wantCode(req, wire.CodeValid)
	e.wantCode(req, wire.CodeRateLimited)
}

func TestVerify_hmacSignedRequests(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]any{"signed_scopes": "withdraw"})
	e.role("h", map[string]any{"environment": "prod", "key_type": "hmac", "scopes": "read,withdraw", "recv_window": "5000"})
	d, _ := e.issue("h", nil)
	secret := d["secret_key"].(string)
	now := e.clock.Now()
	signed := func(ts time.Time, method, path, body string) map[string]any {
		tsStr := strconv.FormatInt(ts.UnixMilli(), 10)
		return map[string]any{
			"api_key": d["api_key"], "timestamp": tsStr, "method": method, "path": path, "body": body,
			"signature": wire.SignHMAC(secret, wire.Message(tsStr, method, path, body)), "scopes": "withdraw",
		}
	}
	e.wantCode(signed(now, "POST", "/withdraw?asset=BTC", `{"amount":"1"}`), wire.CodeValid)
	e.wantCode(signed(now.Add(-4*time.Second), "GET", "/balance", ""), wire.CodeValid)
	tampered := signed(now, "POST", "/withdraw", `{"amount":"1"}`)
	tampered["body"] = `{"amount":"100"}`
	e.wantCode(tampered, wire.CodeBadSignature)
	tampered = signed(now, "POST", "/withdraw", "")
	tampered["path"] = "/withdraw?to=attacker"
	e.wantCode(tampered, wire.CodeBadSignature)
	tampered = signed(now, "POST", "/withdraw", "")
	tampered["method"] = "GET"
	e.wantCode(tampered, wire.CodeBadSignature)
	e.wantCode(signed(now.Add(-6*time.Second), "POST", "/withdraw", ""), wire.CodeStaleTimestamp) // replayed
	e.wantCode(signed(now.Add(6*time.Second), "POST", "/withdraw", ""), wire.CodeStaleTimestamp)  // from the future
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeBadSignature)                    // unsigned
	noTS := signed(now, "GET", "/", "")
	noTS["timestamp"] = "yesterday"
	e.wantCode(noTS, wire.CodeBadSignature)
}

func TestVerify_ed25519GeneratedAndBringYourOwn(t *testing.T) {
	e := newTestEnv(t)
	e.role("ed", map[string]any{"environment": "prod", "key_type": "ed25519", "scopes": "trade"})
	// Engine-generated pair.
	d, _ := e.issue("ed", nil)
	blk, _ := pem.Decode([]byte(d["private_key"].(string)))
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k ed25519.PrivateKey, apiKey string) map[string]any {
		ts := strconv.FormatInt(e.clock.Now().UnixMilli(), 10)
		return map[string]any{
			"api_key": apiKey, "timestamp": ts, "method": "POST", "path": "/order", "body": "{}", "scopes": "trade",
			"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(k, wire.Message(ts, "POST", "/order", "{}"))),
		}
	}
	e.wantCode(sign(priv.(ed25519.PrivateKey), d["api_key"].(string)), wire.CodeValid)

	// Bring your own: the engine never sees the private key.
	pub, own, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	d2, _ := e.issue("ed", map[string]any{"public_key": pubPEM})
	if _, has := d2["private_key"]; has {
		t.Fatal("engine returned a private key for a bring-your-own public key")
	}
	e.wantCode(sign(own, d2["api_key"].(string)), wire.CodeValid)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	e.wantCode(sign(other, d2["api_key"].(string)), wire.CodeBadSignature)
	e.badRequest(logical.UpdateOperation, "creds/ed", map[string]any{"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "public_key", "SubjectPublicKeyInfo")
}

func TestVerify_unknownFieldIsAnError(t *testing.T) {
	// A gateway that misspells "scopes" must not get VALID for a scope it
	// meant to require.
	e := newTestEnv(t)
	e.badRequest(logical.UpdateOperation, "verify", map[string]any{"api_key": "x", "scope": "withdraw"}, "scope", "unknown field")
}

// verifyRead sends a verify read as Vault's router would: the passed-through
// headers in Headers, the query string in Data.
func (e *testEnv) verifyRead(headers map[string][]string, query map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation,
		Path:      "verify",
		Data:      query,
		Headers:   headers,
		Storage:   e.storage,
	})
	if err != nil && resp == nil {
		e.t.Fatalf("verify read: %v", err)
	}
	return resp
}

// A read answers exactly as a write with the same fields, the key taken from
// the header whatever the case of its name.
func TestVerify_readTakesTheKeyFromTheHeader(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod", map[string]any{"environment": "prod", "scopes": "read,trade", "allowed_cidrs": "10.0.0.0/8"})
	d, _ := e.issue("prod", nil)
	key := d["api_key"].(string)
	revoked, _ := e.issue("prod", nil)
	e.ok(logical.DeleteOperation, "keys/"+revoked["key_id"].(string), nil)

	for _, c := range []struct {
		key   string
		query map[string]any
		code  string
	}{
		{key, map[string]any{"source_ip": "10.0.0.1", "scopes": "read,trade", "environment": "prod"}, wire.CodeValid},
		{key, map[string]any{"source_ip": "10.0.0.1", "scopes": "withdraw"}, wire.CodeInsufficientScope},
		{key, map[string]any{"source_ip": "10.0.0.1", "environment": "staging"}, wire.CodeEnvironmentMismatch},
		{key, map[string]any{"source_ip": "192.0.2.1"}, wire.CodeIPNotAllowed},
		{key[:len(key)-1], nil, wire.CodeMalformed},
		{"", nil, wire.CodeMalformed},
		{revoked["api_key"].(string), map[string]any{"source_ip": "10.0.0.1"}, wire.CodeRevoked},
	} {
		for _, name := range []string{"X-Cryptokeys-Api-Key", "x-cryptokeys-api-key"} {
			resp := e.verifyRead(map[string][]string{name: {c.key}, "User-Agent": {"gateway"}}, c.query)
			if resp == nil || resp.IsError() {
				t.Fatalf("%s %v: %#v", name, c.query, resp)
			}
			post := map[string]any{"api_key": c.key}
			maps.Copy(post, c.query)
			want := e.verify(post)
			if asJSON(resp.Data) != asJSON(want) {
				t.Fatalf("%s %v: read answered %v, write %v", name, c.query, resp.Data, want)
			}
			if resp.Data["code"] != c.code {
				t.Fatalf("%s %v: code %v (%v), want %s", name, c.query, resp.Data["code"], resp.Data["message"], c.code)
			}
		}
	}
}

func TestVerify_readRefusesAKeyOutsideOneHeader(t *testing.T) {
	e := newTestEnv(t)
	e.role("prod", map[string]any{"environment": "prod"})
	d, _ := e.issue("prod", nil)
	key := d["api_key"].(string)
	for _, c := range []struct {
		name    string
		headers map[string][]string
		query   map[string]any
		rule    string
	}{
		{"key in the query string", map[string][]string{wire.VerifyHeader: {key}}, map[string]any{"api_key": key}, "must not be sent in a query string"},
		{"no header (mount not tuned)", nil, map[string]any{"scopes": "read"}, "-passthrough-request-headers=" + wire.VerifyHeader},
		{"two values", map[string][]string{wire.VerifyHeader: {key, key}}, nil, "send one " + wire.VerifyHeader + " header, not 2"},
		{"two spellings", map[string][]string{wire.VerifyHeader: {key}, "x-cryptokeys-api-key": {key}}, nil, "not 2"},
		{"unknown field", map[string][]string{wire.VerifyHeader: {key}}, map[string]any{"scope": "read"}, "unknown field"},
	} {
		resp := e.verifyRead(c.headers, c.query)
		if resp == nil || !resp.IsError() {
			t.Fatalf("%s: want a 400, got %#v", c.name, resp)
		}
		msg := resp.Error().Error()
		if !strings.Contains(msg, c.rule) {
			t.Fatalf("%s: error %q should say %q", c.name, msg, c.rule)
		}
		if c.name != "unknown field" && !strings.HasPrefix(msg, "api_key: ") {
			t.Fatalf("%s: error %q should name api_key", c.name, msg)
		}
		if strings.Contains(msg, key) || strings.Contains(msg, key[len(key)-20:]) {
			t.Fatalf("%s: error repeats the key", c.name)
		}
	}
}

func TestVerify_readWritesNoStorage(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	puts, _, dels := e.storage.counts()
	for range 100 {
		if resp := e.verifyRead(map[string][]string{wire.VerifyHeader: {d["api_key"].(string)}}, nil); resp.Data["code"] != wire.CodeValid {
			t.Fatalf("verify read: %v", resp.Data)
		}
	}
	if puts2, _, dels2 := e.storage.counts(); puts2 != puts || dels2 != dels {
		t.Fatalf("verify read wrote storage: %d puts, %d deletes", puts2-puts, dels2-dels)
	}
}
