package vaultplugin_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/api"
)

// hygiene drives one server through every path that handles a secret and
// remembers each secret it saw and each error message it got, so the test
// can search the server log (plugin output included), the audit log and the
// errors for them.
type hygiene struct {
	t     *testing.T
	c     *api.Client
	mount string
	// secrets maps a name safe to print to a secret.
	secrets map[string]string
	// errs are the error messages the engine and Vault returned.
	errs []string
}

func (h *hygiene) secret(name, v string) {
	h.t.Helper()
	if v == "" {
		h.t.Fatalf("%s: empty", name)
	}
	h.secrets[name] = v
	// The 32 secret characters are what must not leak, with or without
	// the key's visible prefix and key_id around them.
	if _, err := keyformat.Parse(v); err == nil || errors.Is(err, keyformat.ErrBadChecksum) {
		h.secrets[name+" (secret part)"] = v[len(v)-keyformat.SecretLen-keyformat.ChecksumLen : len(v)-keyformat.ChecksumLen]
	}
	if strings.HasPrefix(v, "-----BEGIN") {
		h.secrets[name+" (PEM body)"] = pemBody(v)
	}
}

// issue reads or writes creds and records what came back.
func (h *hygiene) issue(name, role string, data map[string]any) *api.Secret {
	h.t.Helper()
	var s *api.Secret
	var err error
	if data == nil {
		s, err = h.c.Logical().Read(h.mount + "/creds/" + role)
	} else {
		s, err = h.c.Logical().Write(h.mount+"/creds/"+role, data)
	}
	if err != nil || s == nil {
		h.t.Fatalf("creds/%s: %v", role, err)
	}
	h.record(name, s)
	return s
}

func (h *hygiene) record(name string, s *api.Secret) {
	h.t.Helper()
	h.secret(name+" api_key", str(s.Data["api_key"]))
	for _, f := range []string{"secret_key", "private_key"} {
		if v := str(s.Data[f]); v != "" {
			h.secret(name+" "+f, v)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

func (h *hygiene) ok(path string, data map[string]any) *api.Secret {
	h.t.Helper()
	s, err := h.c.Logical().Write(path, data)
	if err != nil {
		h.t.Fatalf("write %s: %v", strings.TrimPrefix(path, h.mount+"/"), err)
	}
	return s
}

// verify calls verify and fails the test unless it answers want.
func (h *hygiene) verify(want string, data map[string]any) {
	h.t.Helper()
	s := h.ok(h.mount+"/verify", data)
	if got := str(s.Data["code"]); got != want {
		h.t.Fatalf("verify: %s, want %s", got, want)
	}
}

// fails sends a request that must be refused with a 4xx and keeps its
// error. keyInPath says the path itself holds a secret: then only the
// engine's messages are kept, since the client's error repeats the URL.
func (h *hygiene) fails(op, path string, data map[string]any, keyInPath bool) {
	h.t.Helper()
	var err error
	switch op {
	case "read":
		_, err = h.c.Logical().Read(path)
	case "write":
		_, err = h.c.Logical().Write(path, data)
	case "delete":
		_, err = h.c.Logical().DeleteWithData(path, query(data))
	}
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode < 400 || re.StatusCode >= 500 {
		h.t.Fatalf("%s %s with a key in a wrong field: want a 4xx, got %v", op, fieldsOf(data), err)
	}
	h.errs = append(h.errs, re.Errors...)
	if !keyInPath {
		h.errs = append(h.errs, err.Error())
	}
}

// query turns request data into query parameters (what `vault delete`
// sends).
func query(data map[string]any) map[string][]string {
	q := map[string][]string{}
	for k, v := range data {
		q[k] = []string{fmt.Sprint(v)}
	}
	return q
}

func fieldsOf(data map[string]any) []string {
	var out []string
	for k := range data {
		out = append(out, k)
	}
	return out
}

// redact replaces each secret in text by its name, so a failure can show
// where a leak was.
func (h *hygiene) redact(text string) string {
	for name, s := range h.secrets {
		text = strings.ReplaceAll(text, s, "<"+name+">")
	}
	return text
}

// leaks lists the names of the secrets found in text, in any encoding a
// log line could give them (raw, hex, base64 at any alignment).
func (h *hygiene) leaks(text string) []string {
	var found []string
	for name, s := range h.secrets {
		for _, enc := range encodings(s) {
			if strings.Contains(text, enc) {
				found = append(found, name)
				break
			}
		}
	}
	return found
}

// TestIntegration_secretHygiene: no key, secret_key or private_key the
// engine issues, and no key a client presents, ever reaches the server log
// (which carries the plugin's output), the audit log (where Vault HMACs
// them) or an error message, on any path that handles one.
func TestIntegration_secretHygiene(t *testing.T) {
	srv := vaulttest.Start(t)
	// Log everything the server and the plugin would log at debug level.
	if _, err := srv.Client.Logical().Write("sys/loggers", map[string]any{"level": "trace"}); err != nil {
		t.Fatalf("raising the log level: %v", err)
	}
	auditLog := srv.EnableFileAudit(t)
	mount := srv.Mount(t)
	h := &hygiene{t: t, c: srv.Client, mount: mount, secrets: map[string]string{}}
	m := func(p string) string { return mount + "/" + p }

	h.ok(m("roles/b"), map[string]any{"environment": "prod", "scopes": "read,trade"})
	h.ok(m("roles/h"), map[string]any{"environment": "prod", "key_type": "hmac"})
	h.ok(m("roles/e"), map[string]any{"environment": "prod", "key_type": "ed25519"})
	h.ok(m("roles/n"), map[string]any{"environment": "prod", "allowed_cidrs": "10.0.0.0/8"})
	h.ok(m("roles/d"), map[string]any{"environment": "dev"})

	// Issue every key type, through read and write.
	b := h.issue("bearer", "b", nil)
	b2 := h.issue("bearer2", "b", map[string]any{"ttl": "30m", "scopes": "read", "name": "bot-1", "labels": "team=quant"})
	hm := h.issue("hmac", "h", nil)
	ed := h.issue("ed25519", "e", nil)
	n := h.issue("cidr", "n", nil)
	d := h.issue("dev", "d", nil)
	// A client-held Ed25519 key: the engine sees only the public half.
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	h.secret("client-held private_key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))
	own := h.issue("ed25519-own", "e", map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))})
	if str(own.Data["private_key"]) != "" {
		t.Fatal("creds with a public_key returned a private_key")
	}

	key := func(s *api.Secret) string { return str(s.Data["api_key"]) }
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	signed := func(s *api.Secret, sig string) map[string]any {
		return map[string]any{"api_key": key(s), "timestamp": ts, "method": "POST", "path": "/v1/orders", "body": `{"qty":1}`, "signature": sig}
	}
	msg := []byte(ts + "POST" + "/v1/orders" + `{"qty":1}`)
	edSign := func(p ed25519.PrivateKey) string { return base64.StdEncoding.EncodeToString(ed25519.Sign(p, msg)) }
	blk, _ := pem.Decode([]byte(str(ed.Data["private_key"])))
	if blk == nil {
		t.Fatal("private_key is not PEM")
	}
	edPriv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	// verify: accepted, and refused for each reason a gateway meets.
	h.verify("VALID", map[string]any{"api_key": key(b), "scopes": "read,trade", "environment": "prod"})
	h.verify("VALID", map[string]any{"api_key": key(b2), "scopes": "read"})
	h.verify("VALID", signed(hm, wire.SignHMAC(str(hm.Data["secret_key"]), msg)))
	h.verify("VALID", signed(ed, edSign(edPriv.(ed25519.PrivateKey))))
	h.verify("VALID", signed(own, edSign(priv)))
	h.verify("VALID", map[string]any{"api_key": key(n), "source_ip": "10.1.2.3"})
	h.verify("ENVIRONMENT_MISMATCH", map[string]any{"api_key": key(d), "environment": "prod"})
	h.verify("INSUFFICIENT_SCOPE", map[string]any{"api_key": key(b2), "scopes": "trade"})
	h.verify("IP_NOT_ALLOWED", map[string]any{"api_key": key(n), "source_ip": "192.0.2.7"})
	h.verify("BAD_SIGNATURE", signed(hm, wire.SignHMAC(str(hm.Data["secret_key"]), append(msg, ' '))))
	h.verify("BAD_SIGNATURE", signed(ed, edSign(priv)))
	old := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	stale := signed(hm, wire.SignHMAC(str(hm.Data["secret_key"]), []byte(old+"POST/v1/orders{\"qty\":1}")))
	stale["timestamp"] = old
	h.verify("STALE_TIMESTAMP", stale)
	// A real key with one checksum character changed still holds the
	// real secret: a "malformed key ..." log line would leak it.
	bad := key(b)[:len(key(b))-1] + flip(key(b)[len(key(b))-1])
	h.secret("malformed copy of bearer", bad)
	h.verify("MALFORMED", map[string]any{"api_key": bad})
	foreign, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	h.secret("never-issued key", foreign.Raw())
	h.verify("NOT_FOUND", map[string]any{"api_key": foreign.Raw()})

	// Metadata reads, renew, rotate.
	id := func(s *api.Secret) string { return str(s.Data["key_id"]) }
	if s, err := h.c.Logical().Read(m("keys/" + id(hm))); err != nil || s == nil {
		t.Fatalf("keys/%s: %v", id(hm), err)
	}
	if _, err := h.c.Logical().List(m("keys")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Sys().Renew(b.LeaseID, 600); err != nil {
		t.Fatalf("renew: %v", err)
	}
	succ := h.ok(m("keys/"+id(hm)+"/rotate"), map[string]any{"grace": "1m"})
	h.record("hmac successor", succ)
	edSucc := h.ok(m("keys/"+id(ed)+"/rotate"), map[string]any{"grace": "0s"})
	h.record("ed25519 successor", edSucc)
	h.verify("VALID", signed(succ, wire.SignHMAC(str(succ.Data["secret_key"]), msg)))

	// Bad requests that carry a key in a field where none belongs: each is
	// refused, and the refusal must not repeat the key.
	k := key(b)
	sk := str(hm.Data["secret_key"])
	for _, r := range []struct {
		op, path string
		data     map[string]any
	}{
		{"write", m("creds/b"), map[string]any{"ttl": k}},
		{"write", m("creds/b"), map[string]any{"scopes": k}},
		{"write", m("creds/b"), map[string]any{"allowed_cidrs": k}},
		{"write", m("creds/b"), map[string]any{"public_key": k}},
		{"write", m("creds/e"), map[string]any{"public_key": sk}},
		{"write", m("creds/b"), map[string]any{"labels": k}},
		{"write", m("roles/x"), map[string]any{"environment": k}},
		{"write", m("roles/x"), map[string]any{"environment": "prod", "scopes": k}},
		{"write", m("roles/x"), map[string]any{"environment": "prod", "allowed_cidrs": sk}},
		{"write", m("roles/x"), map[string]any{"environment": "prod", "ttl": k}},
		{"write", m("config"), map[string]any{"key_prefix": k}},
		{"write", m("config"), map[string]any{"environments": k}},
		{"write", m("keys/" + id(b) + "/rotate"), map[string]any{"grace": k}},
		{"write", m("revoke/leaked"), map[string]any{"text": k, "reason": "bad\x00" + k}},
	} {
		h.fails(r.op, r.path, r.data, false)
	}
	// DELETE takes its fields in the query string, which the client's
	// error repeats with the URL.
	h.fails("delete", m("keys/"+id(b)), map[string]any{"reason": "bad\x00" + k}, true)
	// verify answers 200 with a code even to nonsense; its replies are
	// kept and searched like the errors.
	for _, r := range []struct {
		want string
		data map[string]any
	}{
		{"IP_NOT_ALLOWED", map[string]any{"api_key": key(n), "source_ip": k}},
		{"BAD_SIGNATURE", map[string]any{"api_key": key(hm), "timestamp": sk, "signature": sk, "method": "GET", "path": "/"}},
		{"INSUFFICIENT_SCOPE", map[string]any{"api_key": k, "scopes": k}},
		{"ENVIRONMENT_MISMATCH", map[string]any{"api_key": k, "environment": k}},
		{"MALFORMED", map[string]any{"api_key": sk}},
		{"MALFORMED", map[string]any{"api_key": " " + k}},
		{"MALFORMED", map[string]any{"api_key": "Bearer " + k}},
	} {
		s := h.ok(m("verify"), r.data)
		b, _ := json.Marshal(s)
		if got := str(s.Data["code"]); got != r.want {
			t.Fatalf("verify %v: %s, want %s", fieldsOf(r.data), got, r.want)
		}
		h.errs = append(h.errs, string(b))
	}
	// A key where a key_id belongs, in the path. Vault writes request
	// paths to the audit log as they are (it HMACs only values), so this
	// one is checked in the errors and the server log, and the audit check
	// below skips request.path.
	srv.KeyInPath(id(b))
	h.fails("read", m("keys/"+k), nil, true)
	h.fails("write", m("keys/"+k+"/rotate"), map[string]any{"grace": "1m"}, true)
	// The CLI's own error output, as an operator sees it.
	for _, args := range [][]string{
		{"write", m("creds/b"), "ttl=" + k},
		{"write", m("keys/" + id(b) + "/rotate"), "grace=" + sk},
		{"write", m("roles/x"), "environment=" + k},
	} {
		out, err := srv.CLI(t, args...)
		if err == nil {
			t.Fatalf("vault %s %s succeeded, want an error", args[0], args[1])
		}
		h.errs = append(h.errs, out, err.Error())
	}

	// Revocation on every path.
	if err := h.c.Sys().Revoke(b2.LeaseID); err != nil {
		t.Fatal(err)
	}
	h.ok(m("revoke/leaked"), map[string]any{"text": "found in a paste:\n" + key(b) + "\n" + bad + "\n" + foreign.Raw() + "\n", "reason": "pastebin"})
	if _, err := h.c.Logical().DeleteWithData(m("keys/"+id(own)), map[string][]string{"reason": {"offboarded"}}); err != nil {
		t.Fatal(err)
	}
	h.ok(m("revoke/role/n"), nil)
	h.ok(m("revoke/environment/dev"), nil)
	for _, s := range []*api.Secret{b, own, n, d} {
		h.verify("REVOKED", map[string]any{"api_key": key(s)})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.ok(m("verify"), map[string]any{"api_key": key(b2)})
		if str(s.Data["code"]) == "REVOKED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease revocation never reached the engine")
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.ok(m("tidy"), nil)

	// The search must see a secret however a log line would hold it.
	if got := h.leaks("x" + base64.StdEncoding.EncodeToString([]byte("yz"+str(hm.Data["secret_key"])))); len(got) == 0 {
		t.Fatal("the leak search missed a base64-encoded secret_key")
	}
	if got := h.leaks("… " + h.secrets["bearer api_key (secret part)"] + " …"); len(got) == 0 {
		t.Fatal("the leak search missed a bare secret part")
	}

	// Error messages.
	if len(h.errs) < 25 {
		t.Fatalf("only %d error messages collected", len(h.errs))
	}
	for i, e := range h.errs {
		if found := h.leaks(e); len(found) > 0 {
			t.Errorf("error message %d repeats %v: %s", i, found, h.redact(e))
		}
	}

	// The server log, which carries the plugin's log lines too. As in the
	// audit log, request paths are left out: at trace level Vault's plugin
	// transport logs each path as it is, so the requests above that put a
	// key in the path show there. That is the documented limit: a key_id
	// belongs in a path, a key never.
	serverLog := regexp.MustCompile(`\bpath=\S+`).ReplaceAllString(srv.ServerLog(t), "path=<path>")
	if !strings.Contains(serverLog, "[TRACE]") {
		t.Fatal("the server log has no trace lines: sys/loggers did not raise the level")
	}
	if !strings.Contains(serverLog, "revoked leaked keys") || !strings.Contains(serverLog, id(b)) {
		t.Fatal("the server log lacks the plugin's leaked-key warning: is plugin output captured?")
	}
	if found := h.leaks(serverLog); len(found) > 0 {
		t.Errorf("the server log contains %v", found)
		for _, line := range strings.Split(serverLog, "\n") {
			if len(h.leaks(line)) > 0 {
				t.Logf("server log: %.600s", h.redact(line))
			}
		}
	}
	if m := keyformat.Find([]byte(serverLog)); len(m) > 0 {
		t.Errorf("the server log holds a well-formed key (key_id %s)", m[0].Key.KeyID)
	}

	// The audit log: every secret went through it, HMAC'd.
	raw, err := os.ReadFile(auditLog) // #nosec G304 -- the audit log the test enabled in the server's temp dir
	if err != nil {
		t.Fatal(err)
	}
	var entries strings.Builder
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for _, line := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit log line is not JSON: %v", err)
		}
		if req, ok := e["request"].(map[string]any); ok {
			delete(req, "path")
		}
		out, _ := json.Marshal(e)
		entries.Write(out)
		entries.WriteByte('\n')
	}
	auditText := entries.String()
	for _, f := range []string{"api_key", "secret_key", "private_key", "public_key", "text"} {
		if !strings.Contains(auditText, `"`+f+`":"hmac-sha256:`) {
			t.Errorf("the audit log has no HMAC'd %s", f)
		}
	}
	devicePath := auditDevice(t, srv.Client, auditLog)
	for _, name := range []string{"bearer api_key", "hmac secret_key", "ed25519 private_key"} {
		hash, err := srv.Client.Sys().AuditHash(devicePath, h.secrets[name])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(auditText, hash) {
			t.Errorf("the audit log lacks the HMAC of %s (%s): did it pass through the audit device?", name, hash)
		}
	}
	if found := h.leaks(auditText); len(found) > 0 {
		t.Errorf("the audit log contains %v in clear", found)
	}
	if m := keyformat.Find([]byte(auditText)); len(m) > 0 {
		t.Errorf("the audit log holds a well-formed key (key_id %s)", m[0].Key.KeyID)
	}
	t.Logf("searched %d secrets in %d error messages, %d bytes of server log and %d audit entries",
		len(h.secrets), len(h.errs), len(serverLog), len(lines))
}

// auditDevice returns the path of the file audit device writing to file.
func auditDevice(t *testing.T, c *api.Client, file string) string {
	t.Helper()
	devices, err := c.Sys().ListAudit()
	if err != nil {
		t.Fatal(err)
	}
	for p, d := range devices {
		if d.Options["file_path"] == file {
			return strings.TrimSuffix(p, "/")
		}
	}
	t.Fatalf("no audit device writes %s", file)
	return ""
}
