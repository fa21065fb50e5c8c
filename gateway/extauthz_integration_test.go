package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// envoy is a client of the gateway's ext_authz service built from the
// Envoy protos: it sends what Envoy's ext_authz filter sends.
type envoy struct {
	c      authv3.AuthorizationClient
	health healthpb.HealthClient
}

func dialEnvoy(t *testing.T, gw *runningGateway) *envoy {
	t.Helper()
	conn, err := grpc.NewClient(gw.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &envoy{c: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn)}
}

// checked is a CheckResponse, flattened.
type checked struct {
	rpc     codes.Code
	status  int               // the HTTP status Envoy gives the client (200 on allow)
	headers map[string]string // OkHttpResponse or DeniedHttpResponse headers, canonical keys
	remove  []string
	body    string
}

// check asks as Envoy does for method path from source (attributes.source
// .address), with headers (lower-case keys, as Envoy sends them).
func (e *envoy) check(t *testing.T, method, path, source string, headers map[string]string) checked {
	t.Helper()
	h := map[string]string{":method": method, ":path": path, ":authority": "api.example.com"}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: method, Path: path, Host: "api.example.com", Scheme: "http", Protocol: "HTTP/1.1", Headers: h,
		}},
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := e.c.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	out := checked{rpc: codes.Code(resp.GetStatus().GetCode()), headers: map[string]string{}} // #nosec G115 -- a gRPC code the gateway sent (0 to 16)
	var hv []*corev3.HeaderValueOption
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		out.status = 200
		hv = r.OkResponse.GetHeaders()
		out.remove = r.OkResponse.GetHeadersToRemove()
	case *authv3.CheckResponse_DeniedResponse:
		out.status = int(r.DeniedResponse.GetStatus().GetCode())
		hv = r.DeniedResponse.GetHeaders()
		out.body = r.DeniedResponse.GetBody()
	default:
		t.Fatalf("Check answered without an http_response: %v", resp)
	}
	for _, o := range hv {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s is not set with OVERWRITE_IF_EXISTS_OR_ADD", o.GetHeader().GetKey())
		}
		out.headers[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return out
}

// TestIntegration_ExtAuthz drives the gateway's gRPC Check API (Envoy
// ext_authz) with the cases of the nginx and Caddy test, against the real
// gateway and the real Vault: VALID with the X-Cryptokeys-* headers (and
// the client's forged ones overwritten or removed), missing scope, wrong
// environment, unknown, malformed, no key, a revocation refused within one
// second, a burst past rate_burst answered 429 with Retry-After, the
// source address enforced, and 503 when Vault is stopped past the
// staleness bound, recovering when it is back.
func TestIntegration_ExtAuthz(t *testing.T) {
	srv := vaulttest.Start(t)
	e := newEngine(t, srv)
	srv.MustCLI(t, "write", e.mount+"/roles/dev-office", "environment=dev", "scopes=read", "ttl=1h", "allowed_cidrs=203.0.113.0/24")
	gw := startGateway(t, e, e.token(t), "")
	env := dialEnvoy(t, gw)
	reader := e.issue(t, "dev-reader")
	prodKey := e.issue(t, "prod-reader")
	unknown, err := keyformat.Generate("ck", "dev")
	if err != nil {
		t.Fatal(err)
	}
	const client = "198.51.100.20"

	// gRPC health: SERVING once ready.
	hc, err := env.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}

	// VALID: OK, the gateway's headers overwrite the client's forged ones,
	// any other client-sent X-Cryptokeys-* header is removed.
	got := env.check(t, "GET", "/v1/market/btc-usd?depth=5", client, map[string]string{
		"authorization": "Bearer " + reader.key, "x-cryptokeys-key-id": "forgedkeyid0", "x-cryptokeys-tenant": "other",
	})
	want := map[string]string{"X-Cryptokeys-Code": "VALID", "X-Cryptokeys-Key-Id": reader.id, "X-Cryptokeys-Role": "dev-reader", "X-Cryptokeys-Environment": "dev", "X-Cryptokeys-Scopes": "read"}
	if got.rpc != codes.OK || got.status != 200 {
		t.Fatalf("VALID: %+v", got)
	}
	for k, v := range want {
		if got.headers[k] != v {
			t.Errorf("OkHttpResponse header %s=%q, want %q (all %v)", k, got.headers[k], v, got.headers)
		}
	}
	if strings.Join(got.remove, ",") != "x-cryptokeys-tenant" {
		t.Errorf("headers_to_remove %v, want [x-cryptokeys-tenant]", got.remove)
	}
	// X-API-Key works too.
	if got := env.check(t, "GET", "/v1/market/eth-usd", client, map[string]string{"x-api-key": reader.key}); got.status != 200 {
		t.Errorf("x-api-key: %+v", got)
	}

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		rpc                codes.Code
		code               string
	}{
		{"no key", "GET", "/v1/market/x", nil, 401, codes.Unauthenticated, "NO_KEY"},
		{"malformed", "GET", "/v1/market/x", bearer("ck_dev_notakey"), 401, codes.Unauthenticated, "MALFORMED"},
		{"unknown", "GET", "/v1/market/x", bearer(unknown.Raw()), 401, codes.Unauthenticated, "NOT_FOUND"},
		{"missing scope", "POST", "/v1/orders", bearer(reader.key), 403, codes.PermissionDenied, "INSUFFICIENT_SCOPE"},
		{"wrong environment", "GET", "/v1/market/x", bearer(prodKey.key), 403, codes.PermissionDenied, "ENVIRONMENT_MISMATCH"},
		{"no route", "GET", "/v1/admin", bearer(reader.key), 403, codes.PermissionDenied, "NO_ROUTE"},
		{"dot segments", "GET", "/v1/market/../orders", bearer(reader.key), 403, codes.PermissionDenied, "NO_ROUTE"},
	} {
		got := env.check(t, tc.method, tc.path, client, tc.hdr)
		if got.status != tc.status || got.rpc != tc.rpc || got.headers["X-Cryptokeys-Code"] != tc.code {
			t.Errorf("%s: %d %v %q, want %d %v %s", tc.name, got.status, got.rpc, got.headers["X-Cryptokeys-Code"], tc.status, tc.rpc, tc.code)
		}
		if tc.status == 401 && !strings.HasPrefix(got.headers["WWW-Authenticate"], "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer: %v", tc.name, got.headers)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(got.body), &body); err != nil || body["code"] != tc.code {
			t.Errorf("%s: body %q", tc.name, got.body)
		}
		if strings.Contains(got.body, reader.key) || strings.Contains(got.body, unknown.Raw()) {
			t.Errorf("%s: the body holds a key: %s", tc.name, got.body)
		}
	}

	// The source address: Envoy's attributes.source.address is believed
	// (the gRPC peer, 127.0.0.1, is a trusted proxy).
	office := e.issue(t, "dev-office")
	if got := env.check(t, "GET", "/v1/market/x", "203.0.113.9", bearer(office.key)); got.status != 200 {
		t.Errorf("allowed_cidrs key from 203.0.113.9: %+v", got)
	}
	if got := env.check(t, "GET", "/v1/market/x", client, bearer(office.key)); got.status != 403 || got.headers["X-Cryptokeys-Code"] != "IP_NOT_ALLOWED" {
		t.Errorf("allowed_cidrs key from %s: %d %s", client, got.status, got.headers["X-Cryptokeys-Code"])
	}

	// A revocation is refused within one second (the key is cached).
	e.revoke(t, reader.id)
	revokedAt := time.Now()
	var code string
	for time.Since(revokedAt) < 3*time.Second {
		got := env.check(t, "GET", "/v1/market/btc-usd", client, bearer(reader.key))
		if got.status != 200 {
			code = got.headers["X-Cryptokeys-Code"]
			if got.status != 401 || got.rpc != codes.Unauthenticated {
				t.Errorf("revoked key: %d %v", got.status, got.rpc)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(revokedAt); code != "REVOKED" || took > time.Second {
		t.Errorf("revoked key refused after %s with %q; want REVOKED within 1s", took, code)
	}

	// A burst past rate_burst (3, at 1/s) gets 429 with Retry-After.
	trader := e.issue(t, "dev-trader")
	limited := false
	for i := 0; i < 8 && !limited; i++ {
		got := env.check(t, "GET", "/v1/market/btc-usd", client, bearer(trader.key))
		switch got.status {
		case 200:
		case 429:
			limited = true
			ra, err := strconv.Atoi(got.headers["Retry-After"])
			if err != nil || ra < 1 || got.headers["X-Cryptokeys-Code"] != "RATE_LIMITED" || got.rpc != codes.ResourceExhausted {
				t.Errorf("429: Retry-After %q code %q rpc %v", got.headers["Retry-After"], got.headers["X-Cryptokeys-Code"], got.rpc)
			}
			if i < 3 {
				t.Errorf("rate limited after %d requests; rate_burst is 3", i)
			}
		default:
			t.Fatalf("burst: %+v", got)
		}
	}
	if !limited {
		t.Error("8 requests at once never got a 429 (rate_burst 3)")
	}

	// The cache answered most of the above: the hit ratio is in /metrics.
	if r := metric(t, gw, "cryptokeys_gateway_cache_hit_ratio"); !(r > 0 && r < 1) {
		t.Errorf("cache hit ratio %v", r)
	}

	// Fail closed: Vault stopped past max_staleness (2 s) gives 503 with
	// Retry-After, and health NOT_SERVING; back when Vault is.
	k := e.issue(t, "dev-reader")
	if got := env.check(t, "GET", "/v1/market/x", client, bearer(k.key)); got.status != 200 {
		t.Fatalf("before the stop: %+v", got)
	}
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	time.Sleep(2500 * time.Millisecond)
	var last checked
	waitFor(t, 3*time.Second, "ext_authz failing closed", func() bool {
		last = env.check(t, "GET", "/v1/market/x", client, bearer(k.key))
		return last.status != 200
	})
	if last.status != 503 || last.rpc != codes.Unavailable || last.headers["X-Cryptokeys-Code"] != "UNAVAILABLE" || last.headers["Retry-After"] == "" {
		t.Errorf("with Vault stopped: %+v, want 503 UNAVAILABLE with Retry-After", last)
	}
	if hc, err := env.health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health with Vault stopped: %v %v", hc, err)
	}
	resume()
	waitFor(t, 10*time.Second, "ext_authz recovering", func() bool {
		return env.check(t, "GET", "/v1/market/x", client, bearer(k.key)).status == 200
	})
}
