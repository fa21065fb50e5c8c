package vaultplugin_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/api"
)

// These tests drive signing keys, rotation, incident response, rate limits,
// usage, anomalies and the audit trail through the real `vault` CLI against
// the real plugin binary in a real Vault server.

// readJSON runs a vault CLI command with -format=json and decodes its data.
func readJSON(t *testing.T, srv *vaulttest.Server, args ...string) map[string]any {
	t.Helper()
	out := srv.MustCLI(t, append([]string{args[0], "-format=json"}, args[1:]...)...)
	var s struct {
		LeaseID string         `json:"lease_id"`
		Data    map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("vault %s: %v", strings.Join(args[:2], " "), err)
	}
	if s.LeaseID != "" {
		s.Data["lease_id"] = s.LeaseID
	}
	return s.Data
}

func verifyCode(t *testing.T, srv *vaulttest.Server, mount string, kv ...string) string {
	t.Helper()
	return strings.TrimSpace(srv.MustCLI(t, append([]string{"write", "-field=code", mount + "/verify"}, kv...)...))
}

func wantVerify(t *testing.T, srv *vaulttest.Server, mount, want string, kv ...string) {
	t.Helper()
	if got := verifyCode(t, srv, mount, kv...); got != want {
		t.Fatalf("verify %v: %s, want %s", kv[1:], got, want)
	}
}

// signedArgs builds a client-signed verify request, as an API service
// would forward it.
func signedArgs(apiKey, method, path, body, signature, ts string) []string {
	return []string{"api_key=" + apiKey, "timestamp=" + ts, "method=" + method, "path=" + path, "body=" + body, "signature=" + signature}
}

func TestIntegration_signingRotationIncident(t *testing.T) {
	srv := vaulttest.Start(t)
	mount := srv.Mount(t)
	srv.MustCLI(t, "write", mount+"/config", "scopes=read,trade,withdraw", "signed_scopes=withdraw")

	t.Run("hmac_and_ed25519_signed_requests", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/h", "environment=prod", "key_type=hmac", "scopes=read,withdraw")
		srv.MustCLI(t, "write", mount+"/roles/ed", "environment=prod", "key_type=ed25519", "scopes=trade")
		h := readJSON(t, srv, "read", mount+"/creds/h")
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		body := `{"asset":"BTC","amount":"0.5"}`
		sig := wire.SignHMAC(h["secret_key"].(string), []byte(ts+"POST"+"/v1/withdraw"+body))
		wantVerify(t, srv, mount, "VALID", append(signedArgs(h["api_key"].(string), "POST", "/v1/withdraw", body, sig, ts), "scopes=withdraw")...)
		wantVerify(t, srv, mount, "BAD_SIGNATURE", signedArgs(h["api_key"].(string), "POST", "/v1/withdraw", body+" ", sig, ts)...)
		old := strconv.FormatInt(time.Now().Add(-10*time.Second).UnixMilli(), 10)
		oldSig := wire.SignHMAC(h["secret_key"].(string), []byte(old+"POST"+"/v1/withdraw"+body))
		wantVerify(t, srv, mount, "STALE_TIMESTAMP", signedArgs(h["api_key"].(string), "POST", "/v1/withdraw", body, oldSig, old)...)

		ed := readJSON(t, srv, "read", mount+"/creds/ed")
		blk, _ := pem.Decode([]byte(ed["private_key"].(string)))
		priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		edSig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv.(ed25519.PrivateKey), []byte(ts+"GET"+"/v1/orders?limit=5")))
		wantVerify(t, srv, mount, "VALID", signedArgs(ed["api_key"].(string), "GET", "/v1/orders?limit=5", "", edSig, ts)...)
		wantVerify(t, srv, mount, "BAD_SIGNATURE", signedArgs(ed["api_key"].(string), "GET", "/v1/orders?limit=500", "", edSig, ts)...)
	})

	t.Run("rotate_with_grace", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/r", "environment=prod", "scopes=read")
		old := readJSON(t, srv, "read", mount+"/creds/r")
		succ := readJSON(t, srv, "write", mount+"/keys/"+old["key_id"].(string)+"/rotate", "grace=2s")
		if succ["lease_id"] == nil || succ["previous_key_id"] != old["key_id"] {
			t.Fatalf("rotate reply: %v", succ)
		}
		wantVerify(t, srv, mount, "VALID", "api_key="+old["api_key"].(string))
		wantVerify(t, srv, mount, "VALID", "api_key="+succ["api_key"].(string))
		deadline := time.Now().Add(10 * time.Second)
		for verifyCode(t, srv, mount, "api_key="+old["api_key"].(string)) == "VALID" {
			if time.Now().After(deadline) {
				t.Fatal("old key still VALID long after its 2 s grace")
			}
			time.Sleep(200 * time.Millisecond)
		}
		wantVerify(t, srv, mount, "REVOKED", "api_key="+old["api_key"].(string))
		wantVerify(t, srv, mount, "VALID", "api_key="+succ["api_key"].(string))
	})

	t.Run("revoke_environment_exactly", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/stg", "environment=staging")
		srv.MustCLI(t, "write", mount+"/roles/dev", "environment=dev")
		stg1 := readJSON(t, srv, "read", mount+"/creds/stg")
		stg2 := readJSON(t, srv, "read", mount+"/creds/stg")
		dev := readJSON(t, srv, "read", mount+"/creds/dev")
		got := readJSON(t, srv, "write", mount+"/revoke/environment/staging", "reason=incident INC-7")
		if fmt.Sprint(got["revoked"]) != "2" {
			t.Fatalf("revoked %v", got)
		}
		wantVerify(t, srv, mount, "REVOKED", "api_key="+stg1["api_key"].(string))
		wantVerify(t, srv, mount, "REVOKED", "api_key="+stg2["api_key"].(string))
		wantVerify(t, srv, mount, "VALID", "api_key="+dev["api_key"].(string))
		rec := readJSON(t, srv, "read", mount+"/keys/"+stg1["key_id"].(string))
		if rec["revoke_reason"] != "incident INC-7" || rec["revoked_by"] == "" {
			t.Fatalf("revocation record: %v", rec)
		}
	})

	t.Run("revoke_leaked", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/leak", "environment=prod")
		a := readJSON(t, srv, "read", mount+"/creds/leak")
		b := readJSON(t, srv, "read", mount+"/creds/leak")
		c := readJSON(t, srv, "read", mount+"/creds/leak")
		srv.MustCLI(t, "lease", "revoke", c["lease_id"].(string))
		look := []byte(a["api_key"].(string))
		look[15] = map[bool]byte{true: 'B', false: 'A'}[look[15] == 'A']
		text := fmt.Sprintf("pasted: %s\n%s\nold %s\nlookalike %s\n", a["api_key"], b["api_key"], c["api_key"], look)
		file := t.TempDir() + "/leak.txt"
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out := srv.MustCLI(t, "write", "-format=json", mount+"/revoke/leaked", "text=@"+file)
		for _, k := range []any{a["api_key"], b["api_key"], c["api_key"]} {
			if strings.Contains(out, k.(string)) {
				t.Fatal("revoke/leaked echoed a key")
			}
		}
		var got struct{ Data map[string]any }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		d := got.Data
		if fmt.Sprint(d["revoked_count"], d["already_revoked_count"], d["unknown_count"], d["bad_checksum_count"]) != "2 1 0 1" {
			t.Fatalf("counts: %v", d)
		}
		wantVerify(t, srv, mount, "REVOKED", "api_key="+a["api_key"].(string))
		wantVerify(t, srv, mount, "REVOKED", "api_key="+b["api_key"].(string))
	})
}

func TestIntegration_limitsUsageAnomaliesAudit(t *testing.T) {
	srv := vaulttest.Start(t)
	mount := srv.Mount(t)
	// key_id is the public handle auditors follow; everything else in
	// the data stays HMAC'd by Vault's audit device.
	srv.MustCLI(t, "secrets", "tune", "-audit-non-hmac-request-keys=key_id", "-audit-non-hmac-response-keys=key_id", mount)
	auditLog := srv.EnableFileAudit(t)

	t.Run("burst_past_rate_burst_is_rate_limited", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/rl", "environment=prod", "rate_limit=0.5", "rate_burst=3")
		k := readJSON(t, srv, "read", mount+"/creds/rl")["api_key"].(string)
		for i := range 3 {
			if got := verifyCode(t, srv, mount, "api_key="+k); got != "VALID" {
				t.Fatalf("request %d of the burst: %s", i, got)
			}
		}
		out := readJSON(t, srv, "write", mount+"/verify", "api_key="+k)
		if out["code"] != "RATE_LIMITED" || out["retry_after_ms"] == nil {
			t.Fatalf("4th request: %v", out)
		}
	})

	t.Run("usage_survives_a_plugin_reload", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/u", "environment=prod")
		k := readJSON(t, srv, "read", mount+"/creds/u")
		for range 5 {
			wantVerify(t, srv, mount, "VALID", "api_key="+k["api_key"].(string), "source_ip=198.51.100.4")
		}
		// A reload unloads the mount (Clean flushes usage) and starts a
		// fresh backend that only knows what storage holds.
		srv.MustCLI(t, "plugin", "reload", "-plugin=vault-plugin-secrets-cryptokeys")
		var rec map[string]any
		deadline := time.Now().Add(20 * time.Second)
		for {
			rec = readJSON(t, srv, "read", mount+"/keys/"+k["key_id"].(string))
			if fmt.Sprint(rec["use_count"]) == "5" || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if fmt.Sprint(rec["use_count"]) != "5" || rec["last_source_ip"] != "198.51.100.4" || rec["last_used_at"] == "" {
			t.Fatalf("usage after reload: use_count=%v last_source_ip=%v last_used_at=%v", rec["use_count"], rec["last_source_ip"], rec["last_used_at"])
		}
	})

	t.Run("suspend_and_resume", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/s", "environment=prod", "on_anomaly=suspend", "anomaly_rate=0.2")
		k := readJSON(t, srv, "read", mount+"/creds/s")
		key := "api_key=" + k["api_key"].(string)
		wantVerify(t, srv, mount, "VALID", key)
		wantVerify(t, srv, mount, "VALID", key)
		wantVerify(t, srv, mount, "SUSPENDED", key) // 3 in 10 s > 0.2/s
		list := readJSON(t, srv, "read", mount+"/monitor/anomalies")
		if !strings.Contains(fmt.Sprint(list["keys"]), k["key_id"].(string)) {
			t.Fatalf("monitor/anomalies: %v", list)
		}
		srv.MustCLI(t, "write", mount+"/keys/"+k["key_id"].(string)+"/resume", "reason=checked with customer")
		wantVerify(t, srv, mount, "VALID", key)
	})

	t.Run("audit_log_follows_key_id_without_secrets", func(t *testing.T) {
		srv.MustCLI(t, "write", mount+"/roles/a", "environment=prod", "key_type=hmac")
		k := readJSON(t, srv, "read", mount+"/creds/a")
		id, apiKey, secret := k["key_id"].(string), k["api_key"].(string), k["secret_key"].(string)
		verifyCode(t, srv, mount, "api_key="+apiKey)
		succ := readJSON(t, srv, "write", "-f", mount+"/keys/"+id+"/rotate")
		srv.MustCLI(t, "delete", mount+"/keys/"+succ["key_id"].(string))
		logBytes, err := os.ReadFile(auditLog) // #nosec G304 -- the audit log the test enabled in the server's temp dir
		if err != nil {
			t.Fatal(err)
		}
		log := string(logBytes)
		for _, s := range []string{apiKey, secret, succ["api_key"].(string), succ["secret_key"].(string)} {
			if strings.Contains(log, s) {
				t.Fatal("the audit log holds key material in clear")
			}
		}
		for _, want := range []string{`"key_id":"` + id + `"`, mount + "/keys/" + id + "/rotate", mount + "/keys/" + succ["key_id"].(string)} {
			if !strings.Contains(log, want) {
				t.Fatalf("audit log lacks %q: an auditor cannot follow the key", want)
			}
		}
		if !strings.Contains(log, `"api_key":"hmac-sha256:`) {
			t.Fatal("audit log should carry the api_key HMAC'd by Vault")
		}
	})

	// A verify read carries the key in a header, which Vault audits only
	// when told to: told to HMAC it, the log can be searched for a leaked
	// key as it can for a verify write.
	t.Run("verify_read_header_audited_hmac", func(t *testing.T) {
		srv.MustCLI(t, "secrets", "tune", "-passthrough-request-headers=X-Cryptokeys-Api-Key", mount)
		srv.MustCLI(t, "write", "sys/config/auditing/request-headers/X-Cryptokeys-Api-Key", "hmac=true")
		srv.MustCLI(t, "write", mount+"/roles/h", "environment=prod")
		apiKey := readJSON(t, srv, "read", mount+"/creds/h")["api_key"].(string)
		sec, err := srv.Client.Logical().ReadWithRequest(context.Background(), api.NewLogicalReadRequest(mount+"/verify", nil, http.Header{"X-Cryptokeys-Api-Key": {apiKey}}))
		if err != nil || sec.Data["code"] != "VALID" {
			t.Fatalf("verify read: %v %v", err, sec)
		}
		logBytes, err := os.ReadFile(auditLog) // #nosec G304 -- the audit log the test enabled in the server's temp dir
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(logBytes), apiKey) {
			t.Fatal("the audit log holds the header's key in clear")
		}
		if !strings.Contains(string(logBytes), `"x-cryptokeys-api-key":["hmac-sha256:`) {
			t.Fatal("audit log should carry the header's key HMAC'd by Vault")
		}
	})
}
