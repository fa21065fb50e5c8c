package vaultplugin

import (
	"context"
	"strconv"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// benchEnv is a backend with one issued key of the given role fields.
func benchEnv(b *testing.B, roleData map[string]any) (*backend, logical.Storage, map[string]any) {
	e := newTestEnv(b)
	e.role("r", roleData)
	d, _ := e.issue("r", nil)
	return e.b, e.storage, d
}

func BenchmarkVerify_bearerValid(b *testing.B) {
	be, s, d := benchEnv(b, map[string]any{"environment": "prod", "scopes": "read,trade"})
	in := verifyInput{apiKey: d["api_key"].(string), scopes: []string{"read"}, environment: "prod"}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.code != codeValid {
			b.Fatal(res.code)
		}
	}
}

func BenchmarkVerify_malformed(b *testing.B) {
	be, s, _ := benchEnv(b, map[string]any{"environment": "prod"})
	in := verifyInput{apiKey: "ck_prod_not-a-key"} // #nosec G101 -- a malformed key, the point of the benchmark
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.code != codeMalformed {
			b.Fatal(res.code)
		}
	}
}

func BenchmarkVerify_hmacSigned(b *testing.B) {
	be, s, d := benchEnv(b, map[string]any{"environment": "prod", "key_type": "hmac", "recv_window": "60000"})
	ts := strconv.FormatInt(be.now().UnixMilli(), 10)
	body := `{"symbol":"BTCUSDT","side":"BUY","qty":"0.01"}`
	in := verifyInput{
		apiKey: d["api_key"].(string), timestamp: ts, method: "POST", path: "/api/v3/order", body: body,
		signature: SignHMAC(d["secret_key"].(string), signingMessage(ts, "POST", "/api/v3/order", body)),
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.code != codeValid {
			b.Fatal(res.code)
		}
	}
}

func BenchmarkKeyHash(b *testing.B) {
	pepper := make([]byte, pepperLen)
	key := "ck_prod_7Fq2LxR9aTbZAbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab"
	b.ReportAllocs()
	for b.Loop() {
		keyHash(pepper, key)
	}
}

func BenchmarkSignature_ed25519(b *testing.B) {
	rec := &keyRecord{KeyType: keyTypeEd25519, PublicKey: vectorEd25519Public}
	rec.prepare()
	msg := signingMessage(vectorTimestamp, "POST", vectorPath, vectorBody)
	b.ReportAllocs()
	for b.Loop() {
		if !signatureValid(rec, msg, vectorEd25519Post) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkIssue is creds on an in-memory storage: the engine's own work
// per issued key, without Vault's HTTP, gRPC and lease bookkeeping.
func BenchmarkIssue(b *testing.B) {
	e := newTestEnv(b)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade", "ttl": "1h"})
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/r", Storage: e.storage}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := e.b.HandleRequest(context.Background(), req)
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("creds: %v %v", resp, err)
		}
	}
}
