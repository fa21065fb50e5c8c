package vaultplugin

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin/pb"
	"google.golang.org/protobuf/proto"
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
	in := wire.VerifyRequest{APIKey: d["api_key"].(string), Scopes: []string{"read"}, Environment: "prod"}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.Code != wire.CodeValid {
			b.Fatal(res.Code)
		}
	}
}

func BenchmarkVerify_malformed(b *testing.B) {
	be, s, _ := benchEnv(b, map[string]any{"environment": "prod"})
	in := wire.VerifyRequest{APIKey: "ck_prod_not-a-key"} // #nosec G101 -- a malformed key, the point of the benchmark
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.Code != wire.CodeMalformed {
			b.Fatal(res.Code)
		}
	}
}

// A forged well-formed key repeated: answered from the NOT_FOUND cache
// after the first storage read.
func BenchmarkVerify_notFoundRepeat(b *testing.B) {
	be, s, _ := benchEnv(b, map[string]any{"environment": "prod"})
	forged, err := keyformat.Generate("ck", "prod")
	if err != nil {
		b.Fatal(err)
	}
	in := wire.VerifyRequest{APIKey: forged.Raw()}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.Code != wire.CodeNotFound {
			b.Fatal(res.Code)
		}
	}
}

func BenchmarkVerify_hmacSigned(b *testing.B) {
	be, s, d := benchEnv(b, map[string]any{"environment": "prod", "key_type": "hmac", "recv_window": "60000"})
	ts := strconv.FormatInt(be.now().UnixMilli(), 10)
	body := `{"symbol":"BTCUSDT","side":"BUY","qty":"0.01"}`
	in := wire.VerifyRequest{
		APIKey: d["api_key"].(string), Timestamp: ts, Method: "POST", Path: "/api/v3/order", Body: body,
		Signature: wire.SignHMAC(d["secret_key"].(string), wire.Message(ts, "POST", "/api/v3/order", body)),
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := be.verify(context.Background(), s, in); res.Code != wire.CodeValid {
			b.Fatal(res.Code)
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
	msg := wire.Message(vectorTimestamp, "POST", vectorPath, vectorBody)
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

// The plugin's side of one request as Vault's gRPC hop delivers it: the
// request decoded from protobuf, framework routing and field parsing, the
// handler, and the response encoded for the way back. Verify by read next to
// info, the bare round trip: make bench's verify_get_vs_info, less the hops.
func benchmarkHandle(b *testing.B, op logical.Operation, path string, keyInHeader bool, data map[string]any) {
	e := newTestEnv(b)
	e.role("r", map[string]any{"environment": "prod", "scopes": "read,trade"})
	d, _ := e.issue("r", nil)
	var headers map[string][]string
	if keyInHeader {
		headers = map[string][]string{wire.VerifyHeader: {d["api_key"].(string)}}
	}
	wire, err := pb.LogicalRequestToProtoRequest(&logical.Request{Operation: op, Path: path, Headers: headers, Data: data})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := proto.Marshal(wire)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var in pb.Request
		if err := proto.Unmarshal(raw, &in); err != nil {
			b.Fatal(err)
		}
		req, err := pb.ProtoRequestToLogicalRequest(&in)
		if err != nil {
			b.Fatal(err)
		}
		req.Storage = e.storage
		resp, err := e.b.HandleRequest(context.Background(), req)
		if err != nil || resp == nil || resp.IsError() {
			b.Fatal(err, resp)
		}
		out, err := pb.LogicalResponseToProtoResponse(resp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := proto.Marshal(out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandle_info(b *testing.B) {
	benchmarkHandle(b, logical.ReadOperation, "info", false, nil)
}

func BenchmarkHandle_verifyRead(b *testing.B) {
	benchmarkHandle(b, logical.ReadOperation, "verify", true, map[string]any{"scopes": "read", "environment": "prod"})
}

// BenchmarkUsageTicket is what a VALID answer's usage_ticket adds to verify.
func BenchmarkUsageTicket(b *testing.B) {
	k := deriveTicketKey(make([]byte, pepperLen))
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		usageTicket(k, "AbCdEfGhIjKl", now)
	}
}
