package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// front is one way to reach the upstream through the gateway.
type front struct {
	name string
	url  string
}

// fronts starts the real nginx and the real Caddy, each with the shipped
// example config, in front of up and asking gw.
func fronts(t *testing.T, gw *runningGateway, up *upstream) []front {
	return []front{
		{"nginx", startNginx(t, gw, up)},
		{"caddy", startCaddy(t, gw, up)},
	}
}

func bearer(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

func TestIntegration_ProxiesDecide(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.token(t), "")
	up := newUpstream(t)
	testFrontsDecide(t, e, up, fronts(t, gw, up))
}

// testFrontsDecide runs the forward-auth cases through each front (a proxy
// with its shipped config, in front of up and asking a gateway of e): what
// passes with which headers, what is refused with which status, a
// revocation, a burst past rate_burst. Also run for Traefik
// (traefik_integration_test.go).
func testFrontsDecide(t *testing.T, e *engine, up *upstream, fs []front) {
	t.Helper()
	prodKey := e.issue(t, "prod-reader")
	unknown, err := keyformat.Generate("ck", "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Run(f.name, func(t *testing.T) {
			reader := e.issue(t, "dev-reader")

			// VALID: through to the upstream, with the gateway's headers
			// replacing the ones the client forged.
			hdr := bearer(reader.key)
			hdr["X-Cryptokeys-Key-Id"] = "forgedkeyid0"
			hdr["X-Cryptokeys-Scopes"] = "withdraw"
			st, h, body := get(t, f.url+"/v1/market/btc-usd?depth=5", hdr)
			if st != 200 || h.Get("X-Upstream") != "yes" {
				t.Fatalf("VALID: %d %s", st, body)
			}
			var s seen
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"X-Cryptokeys-Key-Id": reader.id, "X-Cryptokeys-Role": "dev-reader", "X-Cryptokeys-Environment": "dev", "X-Cryptokeys-Scopes": "read", "X-Cryptokeys-Code": "VALID"}
			for k, v := range want {
				if s.Headers[k] != v {
					t.Errorf("upstream saw %s=%q, want %q (all: %v)", k, s.Headers[k], v, s.Headers)
				}
			}
			if s.URI != "/v1/market/btc-usd?depth=5" {
				t.Errorf("upstream saw %q", s.URI)
			}

			// X-API-Key works too.
			if st, _, body := get(t, f.url+"/v1/market/eth-usd", map[string]string{"X-API-Key": reader.key}); st != 200 {
				t.Errorf("X-API-Key: %d %s", st, body)
			}

			before := up.count()
			for _, tc := range []struct {
				name, method, path string
				hdr                map[string]string
				status             int
				code               string
			}{
				{"no key", "GET", "/v1/market/x", map[string]string{"X-Cryptokeys-Key-Id": reader.id}, 401, "NO_KEY"},
				{"malformed", "GET", "/v1/market/x", bearer("ck_dev_notakey"), 401, "MALFORMED"},
				{"bad checksum", "GET", "/v1/market/x", bearer(reader.key[:len(reader.key)-1] + flip(reader.key[len(reader.key)-1])), 401, "MALFORMED"},
				{"unknown", "GET", "/v1/market/x", bearer(unknown.Raw()), 401, "NOT_FOUND"},
				{"forged header, unknown key", "GET", "/v1/market/x", map[string]string{"Authorization": "Bearer " + unknown.Raw(), "X-Cryptokeys-Key-Id": reader.id}, 401, "NOT_FOUND"},
				{"missing scope", "POST", "/v1/orders", bearer(reader.key), 403, "INSUFFICIENT_SCOPE"},
				{"wrong environment", "GET", "/v1/market/x", bearer(prodKey.key), 403, "ENVIRONMENT_MISMATCH"},
				{"no route", "GET", "/v1/admin", bearer(reader.key), 403, "NO_ROUTE"},
				{"dot segments", "GET", "/v1/market/../orders", bearer(reader.key), 403, "NO_ROUTE"},
			} {
				st, h, body := do(t, tc.method, f.url+tc.path, tc.hdr, "")
				if st != tc.status || h.Get("X-Cryptokeys-Code") != tc.code {
					t.Errorf("%s: %d %s %s, want %d %s", tc.name, st, h.Get("X-Cryptokeys-Code"), body, tc.status, tc.code)
				}
				if st == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") && f.name != "nginx" {
					t.Errorf("%s: 401 without WWW-Authenticate: Bearer: %v", tc.name, h)
				}
				if strings.Contains(body, reader.key) || strings.Contains(body, unknown.Raw()) {
					t.Errorf("%s: the body holds a key: %s", tc.name, body)
				}
			}
			if n := up.count() - before; n != 0 {
				t.Errorf("refused requests reached the upstream %d times", n)
			}

			// A revocation is refused at the proxy within one second (the
			// key is cached in the gateway by the requests above).
			e.revoke(t, reader.id)
			revokedAt := time.Now()
			var code string
			for time.Since(revokedAt) < 3*time.Second {
				st, h, _ := get(t, f.url+"/v1/market/btc-usd", bearer(reader.key))
				if st != 200 {
					code = h.Get("X-Cryptokeys-Code")
					if st != 401 {
						t.Errorf("revoked key: status %d", st)
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
			var limited bool
			for i := 0; i < 8 && !limited; i++ {
				st, h, body := get(t, f.url+"/v1/market/btc-usd", bearer(trader.key))
				switch st {
				case 200:
				case 429:
					limited = true
					ra, err := strconv.Atoi(h.Get("Retry-After"))
					if err != nil || ra < 1 || h.Get("X-Cryptokeys-Code") != "RATE_LIMITED" {
						t.Errorf("429 with Retry-After %q code %q: %s", h.Get("Retry-After"), h.Get("X-Cryptokeys-Code"), body)
					}
					if i < 3 {
						t.Errorf("rate limited after %d requests; rate_burst is 3", i)
					}
				default:
					t.Fatalf("burst: %d %s", st, body)
				}
			}
			if !limited {
				t.Error("8 requests at once never got a 429 (rate_burst 3)")
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestIntegration_ProxiesFailClosed stops Vault (SIGSTOP: it stops
// answering) past max_staleness: both proxies answer 503 and /readyz is
// unready; when Vault is back they let the key through again.
func TestIntegration_ProxiesFailClosed(t *testing.T) {
	srv := vaulttest.Start(t)
	e := newEngine(t, srv)
	gw := startGateway(t, e, "", "")
	up := newUpstream(t)
	testFrontsFailClosed(t, srv, e, gw, fronts(t, gw, up))
}

// testFrontsFailClosed stops srv (the Vault the gateway gw of e reads) past
// max_staleness and checks each front answers 503, then recovers. Also run
// for Traefik (traefik_integration_test.go).
func testFrontsFailClosed(t *testing.T, srv *vaulttest.Server, e *engine, gw *runningGateway, fs []front) {
	t.Helper()
	k := e.issue(t, "dev-reader")
	for _, f := range fs {
		if st, _, body := get(t, f.url+"/v1/market/x", bearer(k.key)); st != 200 {
			t.Fatalf("%s before the stop: %d %s", f.name, st, body)
		}
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
	time.Sleep(2500 * time.Millisecond) // max_staleness is 2s
	for _, f := range fs {
		var st int
		var code, retry string
		// within the staleness bound plus one poll
		waitFor(t, 3*time.Second, f.name+" failing closed", func() bool {
			var h map[string][]string
			st, h, _ = get(t, f.url+"/v1/market/x", bearer(k.key))
			code, retry = first(h, "X-Cryptokeys-Code"), first(h, "Retry-After")
			return st != 200
		})
		if st != 503 || code != "UNAVAILABLE" || retry == "" {
			t.Errorf("%s with Vault stopped: %d %q Retry-After %q, want 503 UNAVAILABLE", f.name, st, code, retry)
		}
	}
	if st, _, _ := get(t, gw.url+"/readyz", nil); st != 503 {
		t.Errorf("/readyz with Vault stopped: %d, want 503", st)
	}
	resume()
	for _, f := range fs {
		waitFor(t, 10*time.Second, f.name+" recovering", func() bool {
			st, _, _ := get(t, f.url+"/v1/market/x", bearer(k.key))
			return st == 200
		})
	}
	waitFor(t, 5*time.Second, "/readyz ready again", func() bool {
		st, _, _ := get(t, gw.url+"/readyz", nil)
		return st == 200
	})
}

func first(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// nginx keeps its connections to the gateway: an auth subrequest's answer
// with a body nginx does not read would close the connection after every
// check (the shipped snippet asks with HEAD), and a new connection per
// request costs the gateway more than the check itself.
func TestIntegration_NginxKeepsConnectionsToTheGateway(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.token(t), "")
	up := newUpstream(t)
	url := startNginx(t, gw, up)
	k := e.issue(t, "dev-reader")
	unknown, err := keyformat.Generate("ck", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if st, _, body := get(t, url+"/v1/market/x", bearer(k.key)); st != 200 {
		t.Fatalf("first request: %d %s", st, body)
	}
	before := gw.accepts.Load()
	const n = 40
	for i := range n {
		hdr, want := bearer(k.key), 200
		if i%2 == 1 {
			hdr, want = bearer(unknown.Raw()), 401
		}
		if st, _, body := get(t, url+"/v1/market/x", hdr); st != want {
			t.Fatalf("request %d: %d %s, want %d", i, st, body, want)
		}
	}
	// One connection per nginx worker at most: keepalive reuses them.
	if got := gw.accepts.Load() - before; got > 4 {
		t.Errorf("%d requests through nginx opened %d new connections to the gateway, want them kept alive", n, got)
	}
}
