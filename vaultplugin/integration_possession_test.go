package vaultplugin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Finding 7, from outside: creds and rotate refuse small-order Ed25519
// public keys, for which one fixed signature verifies every message.
func TestIntegration_smallOrderEd25519KeysRefused(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("config"), "signed_scopes=withdraw")
	e.vault("write", e.path("roles/ed"), "environment=prod", "key_type=ed25519", "scopes=withdraw")
	pemFile := func(name string, raw []byte) string {
		der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name+".pem")
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own, _, _ := ed25519.GenerateKey(rand.Reader)
	k := e.vaultJSON("write", e.path("creds/ed"), "public_key=@"+pemFile("own", own))
	keyID, _ := k.Data["key_id"].(string)
	if keyID == "" {
		t.Fatalf("a real public key was refused: %v", k.Data)
	}
	for name, h := range map[string]string{
		"identity":           "0100000000000000000000000000000000000000000000000000000000000000",
		"order 2":            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"order 4":            "0000000000000000000000000000000000000000000000000000000000000000",
		"order 8":            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"identity, y = p+1":  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"identity, sign bit": "0100000000000000000000000000000000000000000000000000000000000080",
	} {
		raw, _ := hex.DecodeString(h)
		f := pemFile(strings.ReplaceAll(name, " ", "_"), raw)
		for _, path := range []string{"creds/ed", "keys/" + keyID + "/rotate"} {
			out := e.vaultFails("write", e.path(path), "public_key=@"+f)
			if !strings.Contains(out, "public_key") || !strings.Contains(out, "Ed25519") {
				t.Errorf("%s on %s: refusal does not name public_key: %s", name, path, out)
			}
		}
	}
	// Nothing was issued or rotated by the refusals.
	if rec := e.vaultJSON("read", e.path("keys/"+keyID)).Data; rec["rotated_to"] != nil && rec["rotated_to"] != "" {
		t.Fatalf("a refused rotation rotated the key: %v", rec["rotated_to"])
	}
}

// Finding 10 and issue 21 item 1, from outside: a creds request adds
// labels but never changes the role's, and takes no scope the role does
// not grant.
func TestIntegration_credsRequestOnlyNarrowsAndAdds(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/tenant"), "environment=prod", "scopes=read", "labels=customer_id=acme")
	out := e.vaultFails("write", e.path("creds/tenant"), "labels=customer_id=other")
	if !strings.Contains(out, "labels") || !strings.Contains(out, "customer_id") {
		t.Fatalf("override refused without naming metadata and the key: %s", out)
	}
	k := e.vaultJSON("write", e.path("creds/tenant"), "labels=team=quant")
	if got, _ := json.Marshal(k.Data["labels"]); string(got) != `{"customer_id":"acme","team":"quant"}` {
		t.Fatalf("metadata %s", got)
	}
	d := e.wantCode(k.Data["api_key"].(string), "VALID")
	if got, _ := json.Marshal(d["labels"]); string(got) != `{"customer_id":"acme","team":"quant"}` {
		t.Fatalf("verify metadata %s", got)
	}

	e.vault("write", e.path("roles/none"), "environment=prod")
	out = e.vaultFails("write", e.path("creds/none"), "scopes=read,trade,admin")
	if !strings.Contains(out, "the role grants no scopes, so none can be requested") {
		t.Fatalf("scopes from a role without scopes: %s", out)
	}
	out = e.vaultFails("write", e.path("creds/tenant"), "scopes=read,admin")
	if !strings.Contains(out, "scopes") || !strings.Contains(out, "admin") {
		t.Fatalf("a scope the role lacks: %s", out)
	}
}

// Finding 9, from outside: usage reports are bound to possession. A token
// that may write usage cannot move a key it never verified.
func TestIntegration_usageReportsNeedTheKeysTicket(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	e.vault("write", e.path("roles/r"), "environment=prod")
	mine, victim := e.issue("r"), e.issue("r")
	d := e.wantCode(mine.apiKey, "VALID", "source_ip=192.0.2.1")
	ticket, _ := d["usage_ticket"].(string)
	if ticket == "" {
		t.Fatalf("a VALID answer carries no usage_ticket: %v", redact(d))
	}
	e.wantCode(victim.apiKey, "VALID", "source_ip=192.0.2.10")
	now := time.Now().UTC().Format(time.RFC3339)
	report := func(entries ...map[string]any) (map[string]any, error) {
		list := make([]any, len(entries))
		for i, en := range entries {
			list[i] = en
		}
		s, err := e.srv.Client.Logical().Write(e.path("usage"), map[string]any{"reports": list})
		if err != nil {
			return nil, err
		}
		return s.Data, nil
	}
	entry := func(id, tk string) map[string]any {
		return map[string]any{"key_id": id, "count": 1000, "last_used_at": now, "source_ip": "203.0.113.66", "ticket": tk}
	}
	got, err := report(entry(victim.keyID, ticket), entry(victim.keyID, "bm90LWEtdGlja2V0"), entry("NoSuchKey123", ticket), entry(mine.keyID, ticket))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got["accepted"]) != "1" || fmt.Sprint(got["rejected"]) != "3" {
		t.Fatalf("reply %v, want accepted 1 rejected 3", got)
	}
	if _, err := report(map[string]any{"key_id": victim.keyID, "count": 5, "last_used_at": now}); err == nil || !strings.Contains(err.Error(), "reports") || !strings.Contains(err.Error(), "ticket is required") {
		t.Fatalf("an entry without a ticket: %v", err)
	}
	// Reads on this node include pending usage.
	v := e.vaultJSON("read", e.path("keys/"+victim.keyID)).Data
	if fmt.Sprint(v["use_count"]) != "1" || strings.Contains(fmt.Sprint(v["source_ips"]), "203.0.113.66") {
		t.Fatalf("victim's usage moved: use_count %v source_ips %v", v["use_count"], v["source_ips"])
	}
	m := e.vaultJSON("read", e.path("keys/"+mine.keyID)).Data
	if fmt.Sprint(m["use_count"]) != "1001" {
		t.Fatalf("own report not counted: use_count %v", m["use_count"])
	}
}
