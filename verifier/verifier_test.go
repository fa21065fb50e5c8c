package verifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/api"
)

// bound is how long a revocation may take to reach a verifier polling every
// 50 ms in these tests: generous for a loaded CI machine, far below the
// minutes a cache TTL would take.
const bound = 3 * time.Second

func issue(t *testing.T, c *api.Client, mount, role string, data map[string]any) (apiKey, keyID string) {
	t.Helper()
	s, err := c.Logical().Write(mount+"/creds/"+role, data)
	if err != nil {
		t.Fatal(err)
	}
	return s.Data["api_key"].(string), s.Data["key_id"].(string)
}

func newVerifier(t *testing.T, c *api.Client, mount string, staleness time.Duration) *verifier.Verifier {
	t.Helper()
	v, err := verifier.New(t.Context(), verifier.Config{
		Client: c, Mount: mount, Environment: "prod", PollInterval: 50 * time.Millisecond,
		MaxStaleness: staleness, CacheTTL: time.Hour, UsageInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close(context.Background()) })
	return v
}

// cachedValid verifies once through the engine and once from the cache.
func cachedValid(t *testing.T, v *verifier.Verifier, req verifier.Request) {
	t.Helper()
	for i, wantCached := range []bool{false, true} {
		res, err := v.Verify(t.Context(), req)
		if err != nil || !res.Valid || res.Cached != wantCached {
			t.Fatalf("verify %d: valid=%v code=%s cached=%v err=%v", i, res.Valid, res.Code, res.Cached, err)
		}
	}
}

// refusedWithin polls until the verifier refuses req with code.
func refusedWithin(t *testing.T, v *verifier.Verifier, req verifier.Request, code string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < bound {
		res, _ := v.Verify(t.Context(), req)
		if !res.Valid {
			if res.Code != code {
				t.Fatalf("refused with %s, want %s", res.Code, code)
			}
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("still VALID %s after the change; want %s", bound, code)
	return 0
}

func TestVerifier(t *testing.T) {
	srv := vaulttest.Start(t)
	c := srv.Client

	t.Run("offline_rejections", func(t *testing.T) {
		mount := srv.Mount(t)
		v := newVerifier(t, c, mount, 5*time.Second)
		bad := "ck_prod_" + strings.Repeat("A", 50)
		if res, _ := v.Verify(t.Context(), verifier.Request{APIKey: bad}); res.Code != "MALFORMED" {
			t.Fatalf("bad checksum: %s", res.Code)
		}
		srv.MustCLI(t, "write", mount+"/roles/dev", "environment=dev")
		devKey, _ := issue(t, c, mount, "dev", nil)
		if res, _ := v.Verify(t.Context(), verifier.Request{APIKey: devKey}); res.Code != "ENVIRONMENT_MISMATCH" {
			t.Fatalf("dev key on a prod verifier: %s", res.Code)
		}
	})

	t.Run("local_policy_on_cache_hits", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "scopes=read,trade", "allowed_cidrs=10.0.0.0/8", "rate_limit=1", "rate_burst=3")
		v := newVerifier(t, c, mount, 5*time.Second)
		key, _ := issue(t, c, mount, "r", nil)
		req := verifier.Request{APIKey: key, Scopes: []string{"read"}, SourceIP: "10.1.1.1"}
		cachedValid(t, v, req)
		if res, _ := v.Verify(t.Context(), verifier.Request{APIKey: key, Scopes: []string{"read"}, SourceIP: "192.0.2.1"}); res.Code != "IP_NOT_ALLOWED" || !res.Cached {
			t.Fatalf("outside CIDR: %s cached=%v", res.Code, res.Cached)
		}
		if res, _ := v.Verify(t.Context(), verifier.Request{APIKey: key, Scopes: []string{"withdraw"}, SourceIP: "10.1.1.1"}); res.Code != "INSUFFICIENT_SCOPE" {
			t.Fatalf("unapproved scope must go to the engine and be refused: %s", res.Code)
		}
		// The cache hit above took one token of the burst of 3.
		for i := range 2 {
			if res, _ := v.Verify(t.Context(), req); !res.Valid || !res.Cached {
				t.Fatalf("request %d within the burst: %s", i, res.Code)
			}
		}
		if res, _ := v.Verify(t.Context(), req); res.Code != "RATE_LIMITED" || res.RetryAfter <= 0 {
			t.Fatalf("burst of 3 spent: %s retry=%s", res.Code, res.RetryAfter)
		}
	})

	t.Run("revoked_rotated_expired_stop_verifying", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "ttl=1h")
		v := newVerifier(t, c, mount, 5*time.Second)

		revoked, revokedID := issue(t, c, mount, "r", nil)
		cachedValid(t, v, verifier.Request{APIKey: revoked})
		if _, err := c.Logical().Delete(mount + "/keys/" + revokedID); err != nil {
			t.Fatal(err)
		}
		t.Logf("revocation reached the verifier in %s", refusedWithin(t, v, verifier.Request{APIKey: revoked}, "REVOKED"))

		rotated, rotatedID := issue(t, c, mount, "r", nil)
		cachedValid(t, v, verifier.Request{APIKey: rotated})
		succ, err := c.Logical().Write(mount+"/keys/"+rotatedID+"/rotate", nil)
		if err != nil {
			t.Fatal(err)
		}
		refusedWithin(t, v, verifier.Request{APIKey: rotated}, "REVOKED")
		cachedValid(t, v, verifier.Request{APIKey: succ.Data["api_key"].(string)})

		short, _ := issue(t, c, mount, "r", map[string]any{"ttl": "2s"})
		cachedValid(t, v, verifier.Request{APIKey: short})
		time.Sleep(2 * time.Second)
		if res, _ := v.Verify(t.Context(), verifier.Request{APIKey: short}); res.Valid {
			t.Fatal("expired key still VALID from the cache")
		}
	})

	t.Run("suspended_stops_verifying", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "on_anomaly=suspend", "flag_new_source=true")
		v := newVerifier(t, c, mount, 5*time.Second)
		key, _ := issue(t, c, mount, "r", nil)
		cachedValid(t, v, verifier.Request{APIKey: key, SourceIP: "10.0.0.1"})
		// Another service, verifying through the engine, sees the key used
		// from a new address: the engine suspends it.
		out := srv.MustCLI(t, "write", "-field=code", mount+"/verify", "api_key="+key, "source_ip=203.0.113.50")
		if strings.TrimSpace(out) != "SUSPENDED" {
			t.Fatalf("engine verdict %q", out)
		}
		refusedWithin(t, v, verifier.Request{APIKey: key, SourceIP: "10.0.0.1"}, "SUSPENDED")
	})

	t.Run("usage_reports_reach_the_engine", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod")
		v := newVerifier(t, c, mount, 5*time.Second)
		key, id := issue(t, c, mount, "r", nil)
		req := verifier.Request{APIKey: key, SourceIP: "10.2.3.4"}
		for range 25 {
			if res, _ := v.Verify(t.Context(), req); !res.Valid {
				t.Fatal(res.Code)
			}
		}
		if err := v.ReportUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		s, err := c.Logical().Read(mount + "/keys/" + id)
		if err != nil {
			t.Fatal(err)
		}
		// One verify went to the engine (counted there), 24 were cache
		// hits counted here and reported.
		if got := s.Data["use_count"]; got != jsonNumber("25") || s.Data["last_source_ip"] != "10.2.3.4" {
			t.Fatalf("use_count %v last_source_ip %v", got, s.Data["last_source_ip"])
		}
	})

	t.Run("fails_closed_when_the_engine_is_gone", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod")
		v := newVerifier(t, c, mount, 500*time.Millisecond)
		key, _ := issue(t, c, mount, "r", nil)
		cachedValid(t, v, verifier.Request{APIKey: key})
		// Disabling the mount makes every feed read fail, as an outage would.
		srv.MustCLI(t, "secrets", "disable", mount)
		refusedWithin(t, v, verifier.Request{APIKey: key}, verifier.CodeUnavailable)
	})

	// With VerifyByRead a miss is asked with a read, the key in the header,
	// and a signed request still with a write. Each verifier's token may do
	// only the one, so a wrong choice is refused by Vault.
	t.Run("verify_by_read_on_a_miss", func(t *testing.T) {
		mount := srv.Mount(t)
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "scopes=read")
		srv.MustCLI(t, "write", mount+"/roles/h", "environment=prod", "key_type=hmac")
		byRead := func(capability string) *verifier.Verifier {
			t.Helper()
			name := mount + "-" + capability
			policy := fmt.Sprintf(`path %q { capabilities = [%q] }
path %q { capabilities = ["read"] }
path %q { capabilities = ["update"] }`, mount+"/verify", capability, mount+"/revocations", mount+"/usage")
			if err := c.Sys().PutPolicy(name, policy); err != nil {
				t.Fatal(err)
			}
			tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}})
			if err != nil {
				t.Fatal(err)
			}
			tc, err := c.Clone()
			if err != nil {
				t.Fatal(err)
			}
			tc.SetToken(tok.Auth.ClientToken)
			v, err := verifier.New(t.Context(), verifier.Config{Client: tc, Mount: mount, Environment: "prod", VerifyByRead: true, PollInterval: 50 * time.Millisecond, UsageInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = v.Close(context.Background()) })
			return v
		}
		key, _ := issue(t, c, mount, "r", nil)
		req := verifier.Request{APIKey: key, Scopes: []string{"read"}, SourceIP: "10.0.0.1"}
		reader := byRead("read")

		// Before the mount passes the header on, the read is a 400 that
		// says so, and the verifier fails closed.
		res, err := reader.Verify(t.Context(), req)
		if res.Valid || res.Code != verifier.CodeUnavailable || err == nil || !strings.Contains(err.Error(), "-passthrough-request-headers=X-Cryptokeys-Api-Key") {
			t.Fatalf("untuned mount: %s %v", res.Code, err)
		}
		srv.MustCLI(t, "secrets", "tune", "-passthrough-request-headers=X-Cryptokeys-Api-Key", mount)
		cachedValid(t, reader, req)
		if res, err := reader.Verify(t.Context(), verifier.Request{APIKey: key, Scopes: []string{"trade"}}); err != nil || res.Code != "INSUFFICIENT_SCOPE" || res.Cached {
			t.Fatalf("a scope outside the cached answer, asked by read: %s cached=%v %v", res.Code, res.Cached, err)
		}

		hmacData, err := c.Logical().Write(mount+"/creds/h", nil)
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		signed := verifier.Request{
			APIKey: hmacData.Data["api_key"].(string), Timestamp: ts, Method: "GET", Path: "/v1/ticker",
			Signature: wire.SignHMAC(hmacData.Data["secret_key"].(string), []byte(ts+"GET/v1/ticker")),
		}
		if res, err := byRead("update").Verify(t.Context(), signed); err != nil || !res.Valid {
			t.Fatalf("signed request with VerifyByRead: %s %v (want it asked by write)", res.Code, err)
		}
	})
}

// jsonNumber is how the Vault API client decodes numbers.
func jsonNumber(s string) json.Number { return json.Number(s) }
