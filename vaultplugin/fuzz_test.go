package vaultplugin

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// FuzzSigningMessage: for well-shaped inputs (decimal timestamp, letters-only
// method, path starting with "/") the timestamp and method are recoverable
// from the message, so no two requests that differ there share a signature.
func FuzzSigningMessage(f *testing.F) {
	f.Add(int64(1700000000000), "POST", "/api/v3/order?symbol=BTCUSDT", `{"side":"BUY"}`)
	f.Add(int64(0), "get", "/", "")
	f.Add(int64(99), "DELETE", "/a/b?c=d&e=f", "\x00\xff")
	f.Fuzz(func(t *testing.T, ts int64, method, path, body string) {
		tsStr := strconv.FormatInt(ts, 10)
		msg := wire.Message(tsStr, method, path, body)
		if ts < 0 || !validMethod(method) || len(path) == 0 || path[0] != '/' {
			return
		}
		if !bytes.HasPrefix(msg, []byte(tsStr)) {
			t.Fatalf("message does not start with the timestamp")
		}
		rest := msg[len(tsStr):]
		i := bytes.IndexByte(rest, '/')
		if i < 0 || string(rest[:i]) != upper(method) {
			t.Fatalf("method not recoverable from %q", msg)
		}
		if string(rest[i:]) != path+body {
			t.Fatalf("path+body not recoverable from %q", msg)
		}
	})
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// FuzzVerifyRequest sends arbitrary field values through the real request
// decoding: verify never panics, never errors, and never says VALID for a
// key the engine did not issue.
func FuzzVerifyRequest(f *testing.F) {
	e := newTestEnv(f)
	e.role("h", map[string]any{"environment": "prod", "key_type": "hmac", "scopes": "read"})
	e.role("b", map[string]any{"environment": "prod", "scopes": "read", "allowed_cidrs": "10.0.0.0/8"})
	issued, _ := e.issue("b", nil)
	issuedKey := issued["api_key"].(string)
	f.Add(issuedKey, "read", "prod", "10.0.0.1", "", "", "", "", "")
	f.Add("ck_prod_"+issuedKey[8:], "read,trade", "dev", "::1", "00", "1700000000000", "POST", "/x", "{}")
	f.Add("", "", "", "", "", "", "", "", "")
	f.Add("ck_prod_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ",,,", "\x00", "999.1.1.1", "zz", "-1", "G E T", "", "\xff")
	f.Fuzz(func(t *testing.T, apiKey, scopes, env, ip, sig, ts, method, path, body string) {
		resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "verify", Storage: e.storage,
			Data: map[string]any{
				"api_key": apiKey, "scopes": scopes, "environment": env, "source_ip": ip,
				"signature": sig, "timestamp": ts, "method": method, "path": path, "body": body,
			},
		})
		if err != nil {
			t.Fatalf("verify errored: %v", err)
		}
		if resp.IsError() {
			t.Fatalf("verify answered an error: %v", resp.Error())
		}
		code, _ := resp.Data["code"].(string)
		if code == "" {
			t.Fatal("no code")
		}
		if code == wire.CodeValid && apiKey != issuedKey {
			t.Fatalf("VALID for a key never issued")
		}
	})
}
