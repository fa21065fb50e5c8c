package gateway

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

const sampleConfig = `
mount       = "cryptokeys"
environment = "prod"
listen      = "127.0.0.1:8181"
trusted_proxies = ["127.0.0.1/32", "10.0.0.1"]

route "GET /v1/market/*" {
  scopes = ["read"]
}
route "POST /v1/orders" {
  scopes = ["trade"]
}
route "* /v1/orders/*" {
  scopes = ["trade"]
}
route "GET /v1/market/private/*" {
  scopes = ["read", "private"]
}
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(sampleConfig), "gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mount != "cryptokeys" || c.Environment != "prod" || c.Listen != "127.0.0.1:8181" || len(c.Routes) != 4 || len(c.TrustedProxies) != 2 {
		t.Fatalf("config %+v", c)
	}
	if c.DefaultScopes != nil {
		t.Fatalf("default_scopes unset must be nil (unmatched refused), got %#v", c.DefaultScopes)
	}
	if !c.VerifyByRead {
		t.Fatal("verify_by_read defaults to true")
	}
	c2, err := ParseConfig([]byte("default_scopes = []\n"), "g.hcl")
	if err != nil || c2.DefaultScopes == nil || len(c2.DefaultScopes) != 0 {
		t.Fatalf("default_scopes = [] must mean \"any valid key\": %#v, %v", c2.DefaultScopes, err)
	}
}

func TestParseConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`environment = "Prod"`, `g.hcl:1,1: environment: "Prod" must match`},
		{`listen = "localhost"`, `listen: "localhost" must be host:port`},
		{"mount = \"x\"\ntrusted_proxies = [\"10.0.0.300/8\"]", `g.hcl:2,1: trusted_proxies: "10.0.0.300/8" is not an IP address or CIDR`},
		{`upstream = "ftp://x"`, `upstream: "ftp://x" must be an http`},
		{`max_staleness = "5"`, `max_staleness: "5" must be a positive Go duration`},
		{`default_scopes = ["Read"]`, `default_scopes: "Read" is not a scope name`},
		{`grpc_listen = "8182"`, `grpc_listen: "8182" must be host:port`},
		{"listen = \"127.0.0.1:8181\"\ngrpc_listen = \"127.0.0.1:8181\"", `g.hcl:2,1: grpc_listen: "127.0.0.1:8181" is also listen`},
		{`bogus = 1`, `An argument named "bogus" is not expected here`},
		{"route \"GET v1\" {\n scopes = []\n}", `g.hcl:1,1: route "GET v1": path "v1" must start with /`},
		{"route \"get /v1\" {\n scopes = []\n}", `method "get" must be upper case`},
		{"route \"GET /v1/*/x\" {\n scopes = []\n}", `"*" is allowed only at the end`},
		{"route \"GET /v1/../x\" {\n scopes = []\n}", `is not in canonical form`},
		{"route \"GET /v1\" {\n}", `The argument "scopes" is required`},
		{"route \"GET /v1\" {\n scopes = [\"a\"]\n}\nroute \"GET /v1\" {\n scopes = [\"b\"]\n}", `the same method and path appear in an earlier route`},
		{"route \"GET /v1\" {\n scopes = [\"A B\"]\n}", `scopes: "A B" is not a scope name`},
	} {
		_, err := ParseConfig([]byte(tc.src), "g.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}

func TestPolicyMatch(t *testing.T) {
	c, err := ParseConfig([]byte(sampleConfig), "gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	p := policy{routes: c.Routes}
	for _, tc := range []struct {
		method, uri string
		want        string // joined scopes, or "-" for no match
	}{
		{"GET", "/v1/market/btc-usd?depth=5", "read"},
		{"HEAD", "/v1/market/btc-usd", "read"},
		{"POST", "/v1/market/btc-usd", "-"},
		{"GET", "/v1/market", "-"},
		{"GET", "/v1/market/private/x", "read,private"},
		{"GET", "/v1/market/x/../private/x", "read,private"},
		{"GET", "/v1/market//private/x", "read,private"},
		{"GET", "/v1/market/%2e%2e/withdrawals", "-"},
		{"GET", "/v1/market/../withdrawals", "-"},
		{"POST", "/v1/orders", "trade"},
		{"POST", "/v1/orders?x=1", "trade"},
		{"DELETE", "/v1/orders/42", "trade"},
		{"DELETE", "/v1/orders", "-"},
		{"GET", "/other", "-"},
		{"GET", "v1/market/x", "-"},
	} {
		got := "-"
		if path, ok := requestPath(tc.uri); ok {
			if s, _, ok := p.match(tc.method, path); ok {
				got = strings.Join(s, ",")
			}
		}
		if got != tc.want {
			t.Errorf("%s %s: scopes %q, want %q", tc.method, tc.uri, got, tc.want)
		}
	}
	p.defaultScopes = []string{}
	if s, pat, ok := p.match("GET", "/other"); !ok || len(s) != 0 || pat != "default_scopes" {
		t.Errorf("with default_scopes = [], an unmatched route needs no scope: %v %q %v", s, pat, ok)
	}
}

func TestClientIP(t *testing.T) {
	c, err := ParseConfig([]byte(`trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]`), "g.hcl")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: c}
	for _, tc := range []struct {
		remote string
		hdr    map[string]string
		want   string
	}{
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"},
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.1.1"}, "203.0.113.9"},
		{"127.0.0.1:5000", map[string]string{"X-Real-IP": "198.51.100.7"}, "198.51.100.7"},
		{"127.0.0.1:5000", nil, "127.0.0.1"},
		// an untrusted peer's headers are not believed
		{"192.0.2.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}, "192.0.2.1"},
		{"[::ffff:127.0.0.1]:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"},
		// all hops trusted: the left-most
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
	} {
		r := httptest.NewRequest("GET", "/authz", nil)
		r.RemoteAddr = tc.remote
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if got := g.clientIP(r); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.remote, tc.hdr, got, tc.want)
		}
	}
	// What nginx sends on every check costs no allocation.
	r := httptest.NewRequest("GET", "/authz", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("X-Real-IP", "203.0.113.9")
	if n := testing.AllocsPerRun(100, func() { _ = g.clientIP(r) }); n != 0 {
		t.Errorf("clientIP of an nginx check: %.0f allocations", n)
	}
}

func TestKeyAndOriginal(t *testing.T) {
	r := httptest.NewRequest("GET", "/authz", nil)
	r.Header.Set("Authorization", "bearer  ck_dev_abc ")
	r.Header.Set("X-API-Key", "other")
	if k := keyOf(r.Header); k != "ck_dev_abc" {
		t.Errorf("Bearer key %q", k)
	}
	r.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
	if k := keyOf(r.Header); k != "other" {
		t.Errorf("X-API-Key %q", k)
	}
	r.Header.Set("X-Original-Method", "post")
	r.Header.Set("X-Original-URI", "/v1/orders?x=1")
	if o := originalOf(r); o.method != "POST" || o.uri != "/v1/orders?x=1" {
		t.Errorf("nginx headers: %+v", o)
	}
	r.Header.Set("X-Forwarded-Method", "DELETE")
	r.Header.Set("X-Forwarded-Uri", "/v1/orders/1")
	if o := originalOf(r); o.method != "DELETE" || o.uri != "/v1/orders/1" {
		t.Errorf("traefik/caddy headers: %+v", o)
	}
}

func TestStatusOf(t *testing.T) {
	want := map[string]int{"VALID": 200, "NO_KEY": 401, "MALFORMED": 401, "NOT_FOUND": 401, "REVOKED": 401, "EXPIRED": 401,
		"ENVIRONMENT_MISMATCH": 403, "INSUFFICIENT_SCOPE": 403, "IP_NOT_ALLOWED": 403, "SUSPENDED": 403, "BAD_SIGNATURE": 403,
		"STALE_TIMESTAMP": 403, "NO_ROUTE": 403, "RATE_LIMITED": 429, "UNAVAILABLE": 503, "SOMETHING_NEW": 403}
	for code, st := range want {
		if got := statusOf(code); got != st {
			t.Errorf("%s: %d, want %d", code, got, st)
		}
	}
}

func TestShippedConfigParses(t *testing.T) {
	c, err := LoadConfig("../examples/gateway/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Environment != "prod" || c.TokenFile == "" || len(c.Routes) != 3 || c.DefaultScopes != nil {
		t.Errorf("examples/gateway/gateway.hcl read as %+v", c)
	}
}

func TestParseConfigLeaks(t *testing.T) {
	c, err := ParseConfig([]byte("mount = \"cryptokeys\"\n"), "g.hcl")
	if err != nil || c.Leaks.Enabled() || c.Leaks.GitHub || c.Leaks.Report {
		t.Fatalf("without a leaks block every receiver is off: %+v %v", c.Leaks, err)
	}
	c, err = ParseConfig([]byte(`
leaks {
  github = true
  report = true
  report_per_minute = 3
  key_prefix = "acme"
}
`), "g.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := LeaksConfig{GitHub: true, GitHubPublicKeysURL: DefaultGitHubPublicKeysURL, Report: true, ReportsPerMinute: 3, KeyPrefix: "acme"}
	if c.Leaks != want {
		t.Fatalf("leaks %+v, want %+v", c.Leaks, want)
	}
	c, err = ParseConfig([]byte("leaks {\n  report = true\n}\n"), "g.hcl")
	if err != nil || c.Leaks.GitHub || !c.Leaks.Report || c.Leaks.ReportsPerMinute != DefaultReportsPerMinute || c.Leaks.KeyPrefix != "ck" {
		t.Fatalf("defaults: %+v %v", c.Leaks, err)
	}
	for _, tc := range []struct{ src, want string }{
		{"leaks {\n  github_public_keys_url = \"ftp://x\"\n}", `g.hcl:2,3: leaks: github_public_keys_url: "ftp://x" must be an http:// or https:// URL`},
		{"leaks {\n  report_per_minute = 0\n}", `g.hcl:2,3: leaks: report_per_minute: must be between 1 and 10000`},
		{"leaks {\n  key_prefix = \"CK\"\n}", `g.hcl:2,3: leaks: key_prefix: "CK" must match`},
		{"leaks {\n  gitub = true\n}", `An argument named "gitub" is not expected here`},
	} {
		_, err := ParseConfig([]byte(tc.src), "g.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestGitHubReason(t *testing.T) {
	for _, tc := range []struct{ url, source, want string }{
		{"https://github.com/o/r/blob/12345600b9cbe38a219f39a9941c9319b600c002/a.txt", "content",
			"leaked: found by GitHub secret scanning in content at https://github.com/o/r/blob/12345600b9cb…/a.txt"},
		{"", "commit", "leaked: found by GitHub secret scanning in commit"},
		{"https://x/\n\x1b[31mred", "Pull_Request_Comment", "leaked: found by GitHub secret scanning in pull_request_comment at https://x/[31mred"},
		{"https://x/", "evil source; rm -rf", "leaked: found by GitHub secret scanning in unknown at https://x/"},
	} {
		if got := githubReason(tc.url, tc.source); got != tc.want {
			t.Errorf("githubReason(%q, %q) = %q, want %q", tc.url, tc.source, got, tc.want)
		}
	}
	long := githubReason("https://github.com/"+strings.Repeat("a/", 400), "content")
	if len(long) > 512 || !strings.HasSuffix(long, "…") {
		t.Errorf("a long URL: %d bytes, %q", len(long), long[len(long)-10:])
	}
}

func TestReportLimiter(t *testing.T) {
	l := newReportLimiter(60) // one a second, burst 60
	now := time.Unix(1000, 0)
	for i := 0; i < 60; i++ {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("report %d refused within the burst", i)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("past the burst: %v %s", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another source refused")
	}
	if ok, _ := l.allow("a", now.Add(time.Second)); !ok {
		t.Fatal("a second later one more is allowed")
	}
	if reportSource("2001:db8:1:2:3:4:5:6") != reportSource("2001:db8:1:2::9") || reportSource("::ffff:192.0.2.1") != "192.0.2.1" {
		t.Fatal("sources: IPv6 by /64, IPv4-mapped as IPv4")
	}
}

// The shipped example keeps the receivers off; its commented leaks block,
// uncommented, turns both on.
func TestShippedConfigLeaksBlock(t *testing.T) {
	b, err := os.ReadFile("../examples/gateway/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b, "gateway.hcl")
	if err != nil || c.Leaks.Enabled() {
		t.Fatalf("the shipped config turns a receiver on: %+v %v", c.Leaks, err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "# leaks {") {
			in = true
		}
		if in {
			line = strings.TrimPrefix(line, "# ")
			in = line != "}"
		}
		out = append(out, line)
	}
	c, err = ParseConfig([]byte(strings.Join(out, "\n")), "gateway.hcl")
	if err != nil || !c.Leaks.GitHub || !c.Leaks.Report {
		t.Fatalf("the example's leaks block, uncommented: %+v %v", c.Leaks, err)
	}
}
