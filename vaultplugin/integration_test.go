package vaultplugin_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/vault/api"
)

// The engine driven as operators and gateways drive it: the real plugin
// binary registered in a real Vault 1.13 server, through the real `vault`
// CLI (and the api client where the CLI has no command). One server serves
// the package; each test enables the engine at its own path.

func TestMain(m *testing.M) { vaulttest.Main(m) }

// keyPattern is the design's whole-key regex, anchored.
var keyPattern = regexp.MustCompile(`^[a-z][a-z0-9]{1,7}_[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{50}$`)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// checksum computes the design's checksum independently of keyformat, so a
// shared bug cannot hide on both sides.
func checksum(s string) string {
	n := uint64(crc32.ChecksumIEEE([]byte(s)))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = base62[n%62]
		n /= 62
	}
	return string(out)
}

type engine struct {
	t     *testing.T
	srv   *vaulttest.Server
	mount string
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	srv := vaulttest.Shared(t)
	return &engine{t: t, srv: srv, mount: srv.Mount(t)}
}

// in returns the engine bound to a subtest, so failures stop the subtest.
func (e *engine) in(t *testing.T) *engine { c := *e; c.t = t; return &c }

func (e *engine) path(p string) string { return e.mount + "/" + p }

// vault runs the CLI and fails the test on error.
func (e *engine) vault(args ...string) string {
	e.t.Helper()
	return e.srv.MustCLI(e.t, args...)
}

// vaultJSON runs a CLI command with -format=json and decodes the response.
func (e *engine) vaultJSON(args ...string) *api.Secret {
	e.t.Helper()
	// Flags go after the (sub)command words: `vault lease renew -format=json`.
	n := 1
	if slices.Contains([]string{"plugin", "lease", "secrets"}, args[0]) {
		n = 2
	}
	out := e.vault(append(append(slices.Clone(args[:n]), "-format=json"), args[n:]...)...)
	var s api.Secret
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("vault %s %s: decoding JSON: %v", args[0], args[1], err)
	}
	return &s
}

// vaultFails runs a CLI command that must fail and returns its output.
func (e *engine) vaultFails(args ...string) string {
	e.t.Helper()
	out, err := e.srv.CLI(e.t, args...)
	if err == nil {
		e.t.Fatalf("vault %s %s succeeded, want an error; output:\n%s", args[0], args[1], out)
	}
	return out
}

type issued struct {
	apiKey, keyID, leaseID string
	lease                  int
	renewable              bool
	data                   map[string]any
}

func (e *engine) issue(role string) issued {
	e.t.Helper()
	s := e.vaultJSON("read", e.path("creds/"+role))
	k := issued{leaseID: s.LeaseID, lease: s.LeaseDuration, renewable: s.Renewable, data: s.Data}
	k.apiKey, _ = s.Data["api_key"].(string)
	k.keyID, _ = s.Data["key_id"].(string)
	if k.apiKey == "" || k.keyID == "" || k.leaseID == "" {
		e.t.Fatalf("creds/%s: want api_key, key_id and a lease; got lease %q and fields %v", role, s.LeaseID, mapKeys(s.Data))
	}
	return k
}

// verify calls verify through the CLI; kv are extra key=value arguments.
func (e *engine) verify(apiKey string, kv ...string) map[string]any {
	e.t.Helper()
	return e.vaultJSON(append([]string{"write", e.path("verify"), "api_key=" + apiKey}, kv...)...).Data
}

func (e *engine) wantCode(apiKey, want string, kv ...string) map[string]any {
	e.t.Helper()
	d := e.verify(apiKey, kv...)
	if d["code"] != want {
		e.t.Fatalf("verify %v: code %v, want %s (response %v)", kv, d["code"], want, redact(d))
	}
	if valid, _ := d["valid"].(bool); valid != (want == "VALID") {
		e.t.Fatalf("verify %v: valid=%v with code %s", kv, d["valid"], want)
	}
	return d
}

// eventually polls verify until it answers one of codes, for effects that
// Vault applies asynchronously (lease revocation, expiry).
func (e *engine) eventually(apiKey string, within time.Duration, codes ...string) string {
	e.t.Helper()
	deadline := time.Now().Add(within)
	var last any
	for {
		d := e.verify(apiKey)
		last = d["code"]
		if c, _ := last.(string); slices.Contains(codes, c) {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("verify still answers %v after %s, want one of %v", last, within, codes)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestIntegration_catalogMountAndHelp(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	srv := e.srv

	out := e.vault("plugin", "list", "-detailed", "secret")
	if !regexp.MustCompile(`(?m)^` + vaulttest.PluginName + `\s+secret\s+` + regexp.QuoteMeta(srv.PluginVersion) + `\s`).MatchString(out) {
		t.Fatalf("vault plugin list -detailed secret has no %s %s line:\n%s", vaulttest.PluginName, srv.PluginVersion, out)
	}
	var info struct {
		SHA256, Version string
		Builtin         bool
	}
	if err := json.Unmarshal([]byte(e.vault("plugin", "info", "-format=json", "-version="+srv.PluginVersion, "secret", vaulttest.PluginName)), &info); err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != srv.PluginSHA256 || info.Version != srv.PluginVersion || info.Builtin {
		t.Fatalf("plugin info: sha256 %s version %s builtin %v, want %s %s external", info.SHA256, info.Version, info.Builtin, srv.PluginSHA256, srv.PluginVersion)
	}

	var mounts map[string]struct {
		Type                 string `json:"type"`
		PluginVersion        string `json:"plugin_version"`
		RunningPluginVersion string `json:"running_plugin_version"`
		RunningSHA256        string `json:"running_sha256"`
	}
	if err := json.Unmarshal([]byte(e.vault("secrets", "list", "-detailed", "-format=json")), &mounts); err != nil {
		t.Fatal(err)
	}
	m, ok := mounts[e.mount+"/"]
	if !ok {
		t.Fatalf("vault secrets list has no %s/", e.mount)
	}
	if m.Type != vaulttest.PluginName || m.PluginVersion != srv.PluginVersion || m.RunningPluginVersion != srv.PluginVersion || m.RunningSHA256 != srv.PluginSHA256 {
		t.Fatalf("mount %s/: type %q plugin_version %q running_plugin_version %q running_sha256 %q; want %s %s, sha256 %s",
			e.mount, m.Type, m.PluginVersion, m.RunningPluginVersion, m.RunningSHA256, vaulttest.PluginName, srv.PluginVersion, srv.PluginSHA256)
	}
	// The table the operator sees names the running version too.
	if table := e.vault("secrets", "list", "-detailed"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(e.mount+"/") + `\s.*` + regexp.QuoteMeta(srv.PluginVersion)).MatchString(table) {
		t.Fatalf("vault secrets list -detailed shows no %s for %s/:\n%s", srv.PluginVersion, e.mount, table)
	}
	if v := e.vaultJSON("read", e.path("info")).Data["version"]; v != srv.PluginVersion {
		t.Fatalf("info version %v, want %s", v, srv.PluginVersion)
	}

	help := e.vault("path-help", e.path("creds/x"))
	for _, want := range []string{"Matching Route", "creds", "lease", "## PARAMETERS", "role", "ttl", "scopes", "allowed_cidrs"} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help %s/creds/x lacks %q:\n%s", e.mount, want, help)
		}
	}
	verifyHelp := e.vault("path-help", e.path("verify"))
	for _, want := range []string{"api_key", "source_ip", "VALID", "MALFORMED"} {
		if !strings.Contains(verifyHelp, want) {
			t.Errorf("path-help %s/verify lacks %q", e.mount, want)
		}
	}
}

func TestIntegration_issueAndVerify(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("config"), "key_prefix=acme", "scopes=read,trade,withdraw", "environments=staging,prod")
	e.vault("write", e.path("roles/prod-trader"), "environment=prod", "scopes=read,trade", "ttl=1h", "max_ttl=2h", "allowed_cidrs=10.0.0.0/8,192.0.2.7/32")

	k := e.issue("prod-trader")
	if !keyPattern.MatchString(k.apiKey) || !strings.HasPrefix(k.apiKey, "acme_prod_") {
		t.Fatalf("api_key does not have the shape acme_prod_<50 base62>: len %d, prefix %q", len(k.apiKey), k.apiKey[:min(10, len(k.apiKey))])
	}
	body := strings.TrimPrefix(k.apiKey, "acme_prod_")
	if body[:12] != k.keyID {
		t.Fatalf("key_id %q is not the 12 characters after the environment", k.keyID)
	}
	if got, want := body[44:], checksum(k.apiKey[:len(k.apiKey)-6]); got != want {
		t.Fatalf("checksum %s, want CRC32 in base62 %s", got, want)
	}
	if !strings.HasPrefix(k.leaseID, e.path("creds/prod-trader/")) || k.lease != 3600 {
		t.Fatalf("lease %q for %ds, want under %s for 3600s", k.leaseID, k.lease, e.path("creds/prod-trader/"))
	}
	if k.data["environment"] != "prod" || k.data["role"] != "prod-trader" {
		t.Fatalf("creds data: environment %v role %v", k.data["environment"], k.data["role"])
	}
	if other := e.issue("prod-trader"); other.apiKey == k.apiKey || other.keyID == k.keyID {
		t.Fatal("two issues returned the same key")
	}

	inside := "source_ip=10.20.30.40"
	d := e.wantCode(k.apiKey, "VALID", "environment=prod", "scopes=read,trade", inside)
	if d["key_id"] != k.keyID || d["role"] != "prod-trader" || d["environment"] != "prod" {
		t.Fatalf("verify VALID: key_id %v role %v environment %v", d["key_id"], d["role"], d["environment"])
	}
	e.wantCode(k.apiKey, "VALID", "source_ip=192.0.2.7")
	e.wantCode(k.apiKey, "ENVIRONMENT_MISMATCH", "environment=staging", inside)
	e.wantCode(k.apiKey, "INSUFFICIENT_SCOPE", "scopes=read,withdraw", inside)
	e.wantCode(k.apiKey, "IP_NOT_ALLOWED", "source_ip=192.0.2.8")
	e.wantCode(k.apiKey, "IP_NOT_ALLOWED", "source_ip=11.0.0.1", "environment=prod")

	for name, bad := range map[string]string{
		"garbage":        "definitely-not-a-key",
		"bad checksum":   k.apiKey[:len(k.apiKey)-1] + flip(k.apiKey[len(k.apiKey)-1]),
		"altered secret": k.apiKey[:30] + flip(k.apiKey[30]) + k.apiKey[31:],
		"truncated":      k.apiKey[:len(k.apiKey)-1],
		"bearer header":  "Bearer " + k.apiKey,
	} {
		t.Run(name, func(t *testing.T) {
			e := e.in(t)
			d := e.wantCode(bad, "MALFORMED")
			if id, _ := d["key_id"].(string); id != "" {
				t.Fatalf("MALFORMED answer names key_id %q", id)
			}
		})
	}
	// Well-formed, correct checksum, never issued.
	unknown := "acme_prod_" + k.keyID[:11] + flip(k.keyID[11]) + body[12:44]
	unknown += checksum(unknown)
	e.wantCode(unknown, "NOT_FOUND")
	// The right key_id with another secret is a different key: not found,
	// and it must not leak the real key's identity.
	forged := k.apiKey[:len(k.apiKey)-7] + flip(k.apiKey[len(k.apiKey)-7])
	forged += checksum(forged)
	if d := e.verify(forged, inside); d["valid"] == true || d["code"] == "VALID" {
		t.Fatalf("a forged secret with a real key_id verified: %v", d["code"])
	}
}

// Gateways verify by a read, the key in a header: through a real Vault, the
// header reaches the engine only once the mount passes it through, and the
// key is refused in the URL.
func TestIntegration_verifyByReadWithTheKeyInAHeader(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/gw"), "environment=prod", "scopes=read,trade")
	k := e.issue("gw")
	read := func(header, query map[string]string) (*api.Secret, error) {
		h, q := http.Header{}, url.Values{}
		for name, v := range header {
			h.Set(name, v)
		}
		for name, v := range query {
			q.Set(name, v)
		}
		return e.srv.Client.Logical().ReadWithRequest(context.Background(), api.NewLogicalReadRequest(e.path("verify"), q, h))
	}
	withKey := map[string]string{"X-Cryptokeys-Api-Key": k.apiKey}

	// Not passed through yet: a 400 that says how to tune the mount.
	tune := "-passthrough-request-headers=X-Cryptokeys-Api-Key"
	if _, err := read(withKey, nil); err == nil || !strings.Contains(err.Error(), "Code: 400") || !strings.Contains(err.Error(), tune) {
		t.Fatalf("untuned mount: %v, want a 400 with the tune to make", err)
	}
	if out := e.vaultFails("read", e.path("verify"), "scopes=read"); !strings.Contains(out, "api_key") || !strings.Contains(out, tune) {
		t.Fatalf("vault read verify on an untuned mount:\n%s", out)
	}

	e.vault("secrets", "tune", tune, e.mount)
	s, err := read(withKey, map[string]string{"scopes": "read,trade", "environment": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["code"] != "VALID" || s.Data["valid"] != true || s.Data["key_id"] != k.keyID {
		t.Fatalf("verify read: %v", redact(s.Data))
	}
	// The verify guide's CLI form: `vault read -header=...` sends the key in
	// the header (issue 21 item 10: the guide said the CLI could not).
	if out := e.vault("read", "-header=X-Cryptokeys-Api-Key="+k.apiKey, e.path("verify"), "environment=prod", "scopes=trade"); !strings.Contains(out, "VALID") || strings.Contains(out, "MALFORMED") {
		t.Fatalf("vault read -header verify:\n%s", out)
	}
	for query, code := range map[string]string{"environment=staging": "ENVIRONMENT_MISMATCH", "scopes=withdraw": "INSUFFICIENT_SCOPE"} {
		name, value, _ := strings.Cut(query, "=")
		if s, err := read(withKey, map[string]string{name: value}); err != nil || s.Data["code"] != code {
			t.Fatalf("verify read %s: %v %v, want %s", query, err, s, code)
		}
	}
	if s, err := read(map[string]string{"X-Cryptokeys-Api-Key": k.apiKey[:20]}, nil); err != nil || s.Data["code"] != "MALFORMED" {
		t.Fatalf("verify read of a cut key: %v %v, want MALFORMED", err, s)
	}

	// The key in the URL is refused, and Vault's answer does not repeat it.
	// (The api client's own error does: it quotes the URL. That is the
	// reason for the refusal.)
	_, err = read(withKey, map[string]string{"api_key": k.apiKey})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || len(re.Errors) != 1 || !strings.HasPrefix(re.Errors[0], "api_key: must not be sent in a query string") {
		t.Fatalf("key in the query string: %v, want a 400 naming api_key", err)
	}
	if strings.Contains(re.Errors[0], k.apiKey[len(k.apiKey)-20:]) {
		t.Fatal("the refusal repeats the key")
	}
	// The write, as before, answers the same.
	e.wantCode(k.apiKey, "VALID", "scopes=read,trade", "environment=prod")
}

// The api-gateway policy of examples/policies, loaded into Vault as shipped:
// a token with it verifies both ways and can do nothing else.
func TestIntegration_apiGatewayPolicyVerifiesAndNothingElse(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("secrets", "tune", "-passthrough-request-headers=X-Cryptokeys-Api-Key", e.mount)
	e.vault("write", e.path("roles/gw"), "environment=prod")
	k := e.issue("gw")
	text, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "policies", "api-gateway.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	name := "api-gateway-" + e.mount
	if err := e.srv.Client.Sys().PutPolicy(name, strings.ReplaceAll(string(text), `"cryptokeys/`, `"`+e.mount+`/`)); err != nil {
		t.Fatal(err)
	}
	tok, err := e.srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := e.srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	gw.SetToken(tok.Auth.ClientToken)

	s, err := gw.Logical().Write(e.path("verify"), map[string]any{"api_key": k.apiKey, "environment": "prod"})
	if err != nil || s.Data["code"] != "VALID" {
		t.Fatalf("gateway verify write: %v %v", err, s)
	}
	s, err = gw.Logical().ReadWithRequest(context.Background(), api.NewLogicalReadRequest(e.path("verify"),
		url.Values{"environment": {"prod"}}, http.Header{"X-Cryptokeys-Api-Key": {k.apiKey}}))
	if err != nil || s.Data["code"] != "VALID" {
		t.Fatalf("gateway verify read: %v %v", err, s)
	}
	for _, denied := range []func() error{
		func() error { _, err := gw.Logical().Read(e.path("creds/gw")); return err },
		func() error { _, err := gw.Logical().List(e.path("keys/")); return err },
		func() error { _, err := gw.Logical().Read(e.path("keys/" + k.keyID)); return err },
		func() error { _, err := gw.Logical().Delete(e.path("keys/" + k.keyID)); return err },
		func() error { _, err := gw.Logical().Write(e.path("revoke/role/gw"), nil); return err },
	} {
		var re *api.ResponseError
		if err := denied(); !errors.As(err, &re) || re.StatusCode != 403 {
			t.Fatalf("the gateway token was not refused: %v", err)
		}
	}
	e.wantCode(k.apiKey, "VALID")
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestIntegration_renewStopsAtMaxTTL(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/short"), "environment=dev", "ttl=4s", "max_ttl=10s")
	issuedAt := time.Now()
	k := e.issue("short")
	if k.lease != 4 || !k.renewable {
		t.Fatalf("lease_duration %d renewable %v, want the role's ttl 4, renewable", k.lease, k.renewable)
	}

	// Renewing without an increment grants the role's ttl again.
	s := e.vaultJSON("lease", "renew", k.leaseID)
	if s.LeaseDuration < 3 || s.LeaseDuration > 4 || !s.Renewable {
		t.Fatalf("renew: lease_duration %d renewable %v, want ttl 4 (renewable)", s.LeaseDuration, s.Renewable)
	}
	// Asking for an hour gets what is left of max_ttl, and no more.
	s = e.vaultJSON("lease", "renew", "-increment=1h", k.leaseID)
	left := 10 - time.Since(issuedAt).Seconds()
	if float64(s.LeaseDuration) > math.Ceil(left)+1 || float64(s.LeaseDuration) < left-3 || s.LeaseDuration <= 4 {
		t.Fatalf("renew -increment=1h: lease_duration %d, want about %.0f (max_ttl 10s from issue)", s.LeaseDuration, left)
	}
	rec := e.vaultJSON("read", e.path("keys/"+k.keyID)).Data
	exp, err1 := time.Parse(time.RFC3339, fmt.Sprint(rec["expires_at"]))
	maxExp, err2 := time.Parse(time.RFC3339, fmt.Sprint(rec["max_expires_at"]))
	if err1 != nil || err2 != nil {
		t.Fatalf("keys/%s: expires_at %v max_expires_at %v", k.keyID, rec["expires_at"], rec["max_expires_at"])
	}
	if exp.After(maxExp) || maxExp.Sub(issuedAt) > 12*time.Second || maxExp.Sub(issuedAt) < 8*time.Second {
		t.Fatalf("key expires_at %s max_expires_at %s, issued about %s with max_ttl 10s", exp, maxExp, issuedAt.UTC())
	}
	// Vault's own view of the lease agrees.
	look := e.vaultJSON("lease", "lookup", k.leaseID).Data
	leaseExp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(look["expire_time"]))
	if err != nil || leaseExp.After(issuedAt.Add(12*time.Second)) {
		t.Fatalf("lease lookup expire_time %v: past max_ttl", look["expire_time"])
	}
	e.wantCode(k.apiKey, "VALID")

	// At max_ttl the key ends, renewed or not, and cannot be renewed back.
	// Vault counts lease TTLs in whole seconds from its own issue time, so
	// the lease may end up to 2 s before the engine's max_expires_at.
	e.eventually(k.apiKey, time.Until(issuedAt.Add(16*time.Second)), "EXPIRED", "REVOKED")
	if ended := time.Since(issuedAt); ended < 7*time.Second {
		t.Fatalf("key stopped verifying %s after issue, well before its max_ttl of 10s", ended)
	}
	e.vaultFails("lease", "renew", k.leaseID)
}

func TestIntegration_revokeAndExpire(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/app"), "environment=prod", "ttl=1h")
	e.vault("write", e.path("roles/blink"), "environment=prod", "ttl=3s", "max_ttl=3s")

	t.Run("lease_revoke", func(t *testing.T) {
		e := e.in(t)
		k := e.issue("app")
		e.wantCode(k.apiKey, "VALID")
		e.vault("lease", "revoke", "-sync", k.leaseID)
		e.wantCode(k.apiKey, "REVOKED")
		rec := e.vaultJSON("read", e.path("keys/"+k.keyID)).Data
		if rec["status"] != "revoked" || rec["revoked_at"] == "" {
			t.Fatalf("keys/%s after lease revoke: status %v revoked_at %v", k.keyID, rec["status"], rec["revoked_at"])
		}
		// The operator's default (asynchronous) revoke of another key.
		k2 := e.issue("app")
		e.vault("lease", "revoke", k2.leaseID)
		e.eventually(k2.apiKey, 10*time.Second, "REVOKED")
		// Revoking again is not an error.
		e.vault("delete", e.path("keys/"+k.keyID))
	})

	t.Run("expiry", func(t *testing.T) {
		e := e.in(t)
		k := e.issue("blink")
		if k.lease > 3 {
			t.Fatalf("lease_duration %d, want at most 3", k.lease)
		}
		e.wantCode(k.apiKey, "VALID")
		e.eventually(k.apiKey, 10*time.Second, "EXPIRED")
		// Vault's lease manager revokes the lease once it ends; that is
		// the key expiring, not a revocation (issue 21 item 2): the key
		// stays EXPIRED and its record says so, with no revocation.
		deadline := time.Now().Add(15 * time.Second)
		for {
			if _, err := e.srv.CLI(t, "lease", "lookup", k.leaseID); err != nil {
				break // the lease is gone: Vault has revoked it
			}
			if time.Now().After(deadline) {
				t.Fatal("Vault never revoked the ended lease")
			}
			time.Sleep(200 * time.Millisecond)
		}
		e.wantCode(k.apiKey, "EXPIRED")
		rec := e.vaultJSON("read", e.path("keys/"+k.keyID)).Data
		if rec["status"] != "expired" || rec["revoked_at"] != "" || rec["revoked_by"] != "" || rec["revoke_reason"] != "" {
			t.Fatalf("keys/%s after its lease ended: status %v revoked_at %q revoked_by %q reason %q", k.keyID, rec["status"], rec["revoked_at"], rec["revoked_by"], rec["revoke_reason"])
		}
	})

	t.Run("after_role_deleted", func(t *testing.T) {
		e := e.in(t)
		e.vault("write", e.path("roles/doomed"), "environment=prod", "ttl=1h")
		k := e.issue("doomed")
		e.vault("delete", e.path("roles/doomed"))
		e.vaultFails("read", e.path("roles/doomed"))
		e.vault("lease", "revoke", "-sync", k.leaseID)
		e.wantCode(k.apiKey, "REVOKED")
	})

	t.Run("revoke_prefix", func(t *testing.T) {
		e := e.in(t)
		e.vault("write", e.path("roles/batch"), "environment=prod", "ttl=1h")
		var keys []issued
		for range 3 {
			keys = append(keys, e.issue("batch"))
		}
		bystander := e.issue("app")
		e.vault("lease", "revoke", "-prefix", e.path("creds/batch"))
		for _, k := range keys {
			e.eventually(k.apiKey, 10*time.Second, "REVOKED")
		}
		e.wantCode(bystander.apiKey, "VALID")
	})
}

func TestIntegration_storageRevealsNoKey(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("config"), "scopes=read,trade")
	e.vault("write", e.path("roles/b"), "environment=prod", "scopes=read", "labels=team=desk")
	e.vault("write", e.path("roles/h"), "environment=prod", "key_type=hmac")
	e.vault("write", e.path("roles/ed"), "environment=prod", "key_type=ed25519")
	var keys []issued
	for _, r := range []string{"b", "b", "h", "ed"} {
		keys = append(keys, e.issue(r))
	}
	e.wantCode(keys[0].apiKey, "VALID") // verify caches; it must not persist anything either
	// Rotation and a revoked key leave records too.
	rot := e.vaultJSON("write", e.path("keys/"+keys[0].keyID+"/rotate"), "grace=1m")
	rotated, _ := rot.Data["api_key"].(string)
	if rotated == "" {
		t.Fatal("rotate returned no api_key")
	}
	e.vault("lease", "revoke", "-sync", keys[1].leaseID)

	dump := e.srv.MountStorage(t, e.mount)
	if len(dump) == 0 {
		t.Fatal("the engine's storage is empty: the dump does not look at the right place")
	}
	all := strings.Builder{}
	for p, v := range dump {
		all.WriteString(p + "\n" + v + "\n")
	}
	storage := all.String()

	secrets := map[string]string{"rotated api_key": rotated}
	for i, k := range keys {
		if !strings.Contains(storage, k.keyID) {
			t.Errorf("key %d: key_id %s appears nowhere in storage: are key records elsewhere?", i, k.keyID)
		}
		secrets[fmt.Sprintf("key %d api_key", i)] = k.apiKey
		body := k.apiKey[strings.LastIndex(k.apiKey, "_")+1:]
		secrets[fmt.Sprintf("key %d key_id+secret", i)] = body[:44]
		secrets[fmt.Sprintf("key %d secret", i)] = body[12:44]
		if pk, _ := k.data["private_key"].(string); pk != "" {
			secrets[fmt.Sprintf("key %d private_key", i)] = pemBody(pk)
		}
	}
	leaks := func(storage string) []string {
		var found []string
		for what, s := range secrets {
			for _, enc := range encodings(s) {
				if strings.Contains(storage, enc) {
					found = append(found, what)
					break
				}
			}
		}
		slices.Sort(found)
		return found
	}
	if found := leaks(storage); len(found) > 0 {
		t.Errorf("storage holds, in some encoding: %v", found)
	}
	// The check itself must see a key hidden the way a []byte field in a
	// JSON record would hold it.
	planted := "sys/raw/logical/" + e.srv.MountUUID(t, e.mount) + "/zz-planted"
	if _, err := e.srv.Client.Logical().Write(planted, map[string]any{
		"value": `{"blob":"` + base64.StdEncoding.EncodeToString([]byte("x"+keys[0].apiKey)) + `"}`,
	}); err != nil {
		t.Fatal(err)
	}
	if found := leaks(fmt.Sprint(e.srv.MountStorage(t, e.mount))); !slices.Contains(found, "key 0 api_key") {
		t.Errorf("a planted base64 api_key went unnoticed (found %v)", found)
	}
	if _, err := e.srv.Client.Logical().Delete(planted); err != nil {
		t.Fatal(err)
	}

	// The pepper is in storage (the engine needs it); it must never leave
	// through the API or the server log.
	pepper := pepperFrom(t, dump)
	responses := strings.Builder{}
	// The api client, not the CLI: `vault list` prints only the keys, and
	// key_info is where a leak would hide.
	for _, args := range [][]string{
		{"read", e.path("config")}, {"read", e.path("info")},
		{"read", e.path("roles/b")}, {"read", e.path("roles/h")}, {"list", e.path("roles")},
		{"list", e.path("keys")}, {"read", e.path("keys/" + keys[0].keyID)}, {"read", e.path("keys/" + keys[2].keyID)},
	} {
		read := e.srv.Client.Logical().Read
		if args[0] == "list" {
			read = e.srv.Client.Logical().List
		}
		s, err := read(args[1])
		if err != nil || s == nil {
			t.Fatalf("%s %s: %v (nil response: %v)", args[0], args[1], err, s == nil)
		}
		if _, ok := s.Data["pepper"]; ok {
			t.Errorf("%s %s returns a pepper field", args[0], args[1])
		}
		b, _ := json.Marshal(s.Data)
		responses.Write(b)
		walkStrings(s.Data, func(v string) {
			if decodes32(v) {
				t.Errorf("%s %s returns a value that decodes to 32 bytes (pepper-sized): %.8s...", args[0], args[1], v)
			}
		})
	}
	if pepper != nil {
		for _, enc := range encodings(string(pepper)) {
			if strings.Contains(responses.String(), enc) {
				t.Error("an API response contains the pepper")
			}
			if strings.Contains(e.srv.ServerLog(t), enc) {
				t.Error("the server log contains the pepper")
			}
		}
	}
	for _, k := range keys {
		if strings.Contains(e.srv.ServerLog(t), k.apiKey) {
			t.Errorf("the server log contains api_key of %s", k.keyID)
		}
	}
}

// pepperFrom finds the pepper in the engine's stored config; its exact
// field is the engine's business, so any 32-byte base64 value will do.
func pepperFrom(t *testing.T, dump map[string]string) []byte {
	t.Helper()
	for p, v := range dump {
		if !strings.HasSuffix(p, "config") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(v), &m) != nil {
			continue
		}
		if s, ok := m["pepper"].(string); ok {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b) != 32 {
				t.Fatalf("stored pepper is not 32 base64 bytes (len %d)", len(b))
			}
			return b
		}
	}
	t.Log("no stored pepper field found; relying on the 32-byte heuristic")
	return nil
}

func encodings(s string) []string {
	b := []byte(s)
	out := []string{s, hex.EncodeToString(b)}
	// Base64 of a blob that holds the secret at any offset contains, for
	// one of three alignments, the full groups of the secret's own base64.
	for j := 0; j < 3 && len(b)-j >= 12; j++ {
		full := (len(b) - j) / 3 * 4
		out = append(out,
			base64.StdEncoding.EncodeToString(b[j:])[:full],
			base64.URLEncoding.EncodeToString(b[j:])[:full])
	}
	return out
}

func decodes32(v string) bool {
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(v); err == nil && len(b) == 32 {
			return true
		}
	}
	return false
}

func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case map[string]any:
		for _, y := range x {
			walkStrings(y, f)
		}
	case []any:
		for _, y := range x {
			walkStrings(y, f)
		}
	}
}

func pemBody(p string) string {
	var lines []string
	for _, l := range strings.Split(p, "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "")
}

func TestIntegration_badInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("config"), "scopes=read,trade")
	e.vault("write", e.path("roles/r"), "environment=prod", "scopes=read", "ttl=1h", "max_ttl=2h", "allowed_cidrs=10.0.0.0/8")
	e.issue("r")
	roleBefore := e.vaultJSON("read", e.path("roles/r")).Data
	before := e.srv.MountStorage(t, e.mount)

	cases := []struct {
		name string
		args []string
		want []string // in the error output, besides the 400
	}{
		{"unknown field", []string{"roles/r", "environment=prod", "bogus_field=1"}, []string{"bogus_field"}},
		{"ttl above max_ttl", []string{"roles/r", "environment=prod", "ttl=3h", "max_ttl=1h"}, []string{"ttl", "max_ttl"}},
		{"bad cidr", []string{"roles/r", "environment=prod", "allowed_cidrs=10.0.0.0/33"}, []string{"allowed_cidrs"}},
		{"bad cidr on new role", []string{"roles/fresh", "environment=prod", "allowed_cidrs=not-a-cidr"}, []string{"allowed_cidrs"}},
		{"missing environment", []string{"roles/fresh", "description=x"}, []string{"environment"}},
		{"bad environment", []string{"roles/fresh", "environment=Prod!"}, []string{"environment"}},
		{"scope outside catalog", []string{"roles/r", "environment=prod", "scopes=withdraw"}, []string{"scopes", "withdraw"}},
		{"bad key_type", []string{"roles/r", "environment=prod", "key_type=rsa"}, []string{"key_type"}},
		{"name too long", []string{"roles/" + strings.Repeat("n", 65), "environment=prod"}, []string{"name"}},
		{"bad config prefix", []string{"config", "key_prefix=CK"}, []string{"key_prefix"}},
		{"creds ttl not a duration", []string{"creds/r", "ttl=soon"}, []string{"ttl"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.in(t)
			out := e.vaultFails(append([]string{"write", e.path(c.args[0])}, c.args[1:]...)...)
			if !strings.Contains(out, "Code: 400") {
				t.Errorf("want a 400, got:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not name %q:\n%s", w, out)
				}
			}
		})
	}
	// A name the path does not accept at all.
	if out := e.vaultFails("write", e.path("roles/bad*name"), "environment=prod"); !strings.Contains(out, "Code: 4") {
		t.Errorf("bad role name: want a 4xx, got:\n%s", out)
	}

	if roleAfter := e.vaultJSON("read", e.path("roles/r")).Data; fmt.Sprint(roleAfter) != fmt.Sprint(roleBefore) {
		t.Errorf("role r changed by rejected writes:\nbefore %v\nafter  %v", roleBefore, roleAfter)
	}
	after := e.srv.MountStorage(t, e.mount)
	for p, v := range after {
		if b, ok := before[p]; !ok {
			t.Errorf("rejected writes created storage entry %s", p)
		} else if b != v {
			t.Errorf("rejected writes changed storage entry %s", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("rejected writes removed storage entry %s", p)
		}
	}
}

func mapKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// redact keeps key material out of failure messages.
func redact(d map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range d {
		if k != "api_key" {
			out[k] = v
		}
	}
	return out
}
