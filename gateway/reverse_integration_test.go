package gateway

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

type signer struct {
	issued
	sign func(msg string) string
}

func (e *engine) signer(t *testing.T, role string) signer {
	t.Helper()
	s, err := e.srv.Client.Logical().Read(e.mount + "/creds/" + role)
	if err != nil {
		t.Fatal(err)
	}
	k := issued{s.Data["api_key"].(string), s.Data["key_id"].(string)}
	if sk, ok := s.Data["secret_key"].(string); ok {
		return signer{k, func(msg string) string {
			m := hmac.New(sha256.New, []byte(sk))
			m.Write([]byte(msg))
			return hex.EncodeToString(m.Sum(nil))
		}}
	}
	block, _ := pem.Decode([]byte(s.Data["private_key"].(string)))
	if block == nil {
		t.Fatalf("creds/%s: no secret_key or private_key", role)
	}
	pk, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, func(msg string) string {
		return base64.StdEncoding.EncodeToString(ed25519.Sign(pk.(ed25519.PrivateKey), []byte(msg)))
	}}
}

func signedHeaders(s signer, ts time.Time, method, path, body string) map[string]string {
	tsms := strconv.FormatInt(ts.UnixMilli(), 10)
	return map[string]string{
		"Authorization":   "Bearer " + s.key,
		HeaderTimestamp:   tsms,
		HeaderSignature:   s.sign(tsms + method + path + body),
		"Content-Type":    "application/json",
		HeaderKeyID:       "forgedkeyid0",
		"X-Cryptokeys-Xx": "client",
	}
}

// TestIntegration_ReverseProxy: upstream mode with hmac and ed25519
// signed requests, bodies included.
func TestIntegration_ReverseProxy(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	e.srv.MustCLI(t, "write", e.mount+"/config", "signed_scopes=withdraw")
	e.srv.MustCLI(t, "write", e.mount+"/roles/dev-hmac", "environment=dev", "scopes=read,withdraw", "key_type=hmac", "ttl=1h")
	e.srv.MustCLI(t, "write", e.mount+"/roles/dev-ed", "environment=dev", "scopes=read,withdraw", "key_type=ed25519", "ttl=1h")
	up := newUpstream(t)
	gw := startGateway(t, e, e.token(t), fmt.Sprintf("upstream = %q\nroute \"POST /v1/withdrawals\" {\n  scopes = [\"withdraw\"]\n}\n", up.URL))

	// A bearer read passes, the client's X-Cryptokeys-* never arrive.
	reader := e.issue(t, "dev-reader")
	st, _, body := get(t, gw.url+"/v1/market/btc?x=1", map[string]string{"Authorization": "Bearer " + reader.key, HeaderKeyID: "forgedkeyid0", "X-Cryptokeys-Xx": "client"})
	var s seen
	if st != 200 || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("bearer read: %d %s", st, body)
	}
	if s.Headers[HeaderKeyID] != reader.id || s.Headers["X-Cryptokeys-Xx"] != "" || s.URI != "/v1/market/btc?x=1" {
		t.Errorf("upstream saw %+v", s)
	}

	path, payload := "/v1/withdrawals?asset=btc", `{"amount":"0.5","to":"bc1q..."}`
	for _, role := range []string{"dev-hmac", "dev-ed"} {
		t.Run(role, func(t *testing.T) {
			sg := e.signer(t, role)
			st, _, body := do(t, "POST", gw.url+path, signedHeaders(sg, time.Now(), "POST", path, payload), payload)
			if st != 200 || json.Unmarshal([]byte(body), &s) != nil {
				t.Fatalf("signed POST: %d %s", st, body)
			}
			if s.Body != payload || s.Method != "POST" || s.Headers[HeaderKeyID] != sg.id || s.Headers[HeaderSignature] != "" || s.Headers["X-Cryptokeys-Xx"] != "" {
				t.Errorf("upstream saw %+v", s)
			}
			before := up.count()
			// the body changed after signing
			hdr := signedHeaders(sg, time.Now(), "POST", path, payload)
			if st, h, body := do(t, "POST", gw.url+path, hdr, `{"amount":"50","to":"bc1q..."}`); st != 403 || h.Get(HeaderCode) != "BAD_SIGNATURE" {
				t.Errorf("changed body: %d %s", st, body)
			}
			// an old timestamp, correctly signed (a replay)
			hdr = signedHeaders(sg, time.Now().Add(-time.Minute), "POST", path, payload)
			if st, h, body := do(t, "POST", gw.url+path, hdr, payload); st != 403 || h.Get(HeaderCode) != "STALE_TIMESTAMP" {
				t.Errorf("old timestamp: %d %s", st, body)
			}
			if n := up.count() - before; n != 0 {
				t.Errorf("refused requests reached the upstream %d times", n)
			}
		})
	}

	// A key sent as a bearer key (no signature) asking for a signed scope
	// is refused. (The engine refuses bearer roles with a signed scope, so
	// the key is an hmac key used without signing.)
	hk := e.signer(t, "dev-hmac")
	st, h, body := do(t, "POST", gw.url+path, map[string]string{"Authorization": "Bearer " + hk.key}, payload)
	if code := h.Get(HeaderCode); st != 403 || (code != "INSUFFICIENT_SCOPE" && code != "BAD_SIGNATURE") {
		t.Errorf("unsigned request for a signed scope: %d %s %s", st, code, body)
	}
	t.Logf("unsigned request for a signed scope: %d %s", st, h.Get(HeaderCode))
	// The gateway's own paths stay its own.
	if st, _, _ := get(t, gw.url+"/readyz", nil); st != 200 {
		t.Errorf("/readyz in upstream mode: %d", st)
	}
}
