package vaultplugin

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/redact"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// A key or secret sent in the wrong field never comes back: not in a
// validation error (the engine's or the framework's), not in verify's
// message, not in a revocation reason quoted by verify.
func TestRedaction_keyInWrongFieldsNeverEchoed(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod", "scopes": "read"})
	d, _ := e.issue("p", nil)
	k := d["api_key"].(string)
	secret := k[len(k)-38 : len(k)-6] // the 32 secret characters

	check := func(what, text string) {
		t.Helper()
		if text == "" {
			t.Fatalf("%s: empty text, nothing checked", what)
		}
		if strings.Contains(text, secret) {
			t.Fatalf("%s repeats the key's secret: %s", what, strings.ReplaceAll(text, secret, "<SECRET>"))
		}
		if !strings.Contains(text, redact.Replacement) {
			t.Fatalf("%s: the key was not replaced by %s: %s", what, redact.Replacement, strings.ReplaceAll(text, secret, "<SECRET>"))
		}
	}
	errText := func(resp *logical.Response) string {
		t.Helper()
		if resp == nil || !resp.IsError() {
			t.Fatalf("want an error response, got %v", resp)
		}
		return resp.Error().Error()
	}

	check("framework duration error", errText(e.do(logical.ReadOperation, "creds/p", map[string]any{"ttl": k})))
	check("engine validation error", errText(e.do(logical.UpdateOperation, "roles/x", map[string]any{"environment": "prod", "allowed_cidrs": k})))
	check("ENVIRONMENT_MISMATCH message", e.wantCode(map[string]any{"api_key": k, "environment": k}, wire.CodeEnvironmentMismatch)["message"].(string))
	check("INSUFFICIENT_SCOPE message", e.wantCode(map[string]any{"api_key": k, "scopes": []string{k}}, wire.CodeInsufficientScope)["message"].(string))

	// A reason is stored with the key: the key pasted into it is not.
	id := d["key_id"].(string)
	e.ok(logical.DeleteOperation, "keys/"+id, map[string]any{"reason": "found " + k + " in a paste"})
	check("REVOKED message", e.wantCode(map[string]any{"api_key": k}, wire.CodeRevoked)["message"].(string))
	check("stored revoke_reason", e.ok(logical.ReadOperation, "keys/"+id, nil).Data["revoke_reason"].(string))
	for key, v := range e.dump() {
		if strings.Contains(v, secret) {
			t.Fatalf("storage entry %s holds the key's secret", key)
		}
	}
}

// resume's reason is recorded with who and when, as its help says.
func TestResume_recordsTheReason(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	d, _ := e.issue("p", nil)
	id := d["key_id"].(string)
	got := e.ok(logical.UpdateOperation, "keys/"+id+"/resume", map[string]any{"reason": "false positive: new NAT egress"}).Data
	if got["resume_reason"] != "false positive: new NAT egress" || got["resumed_by"] != "token-tester (entity entity-1234)" {
		t.Fatalf("resume record: resume_reason %v, resumed_by %v", got["resume_reason"], got["resumed_by"])
	}
	if r := e.ok(logical.ReadOperation, "keys/"+id, nil).Data["resume_reason"]; r != "false positive: new NAT egress" {
		t.Fatalf("keys/%s shows resume_reason %v", id, r)
	}
}

// An echoed value is cut to 64 characters. A key that the cut runs through
// must not leave part of its secret behind: redaction sees the key whole.
func TestPrintable_keyCutByTheLimitLeavesNoSecret(t *testing.T) {
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	secret := k.SecretPart()[:keyformat.SecretLen]
	for pad := 0; pad <= 80; pad++ {
		out := printable(strings.Repeat(" ", pad) + k.Raw() + " and more")
		for i := 0; i+6 <= len(secret); i++ {
			if strings.Contains(out, secret[i:i+6]) {
				t.Fatalf("after %d spaces: %q shows secret characters %d to %d", pad, out, i, i+6)
			}
		}
		if !strings.HasSuffix(out, "…") || len(out) > 64+len("…") {
			t.Fatalf("after %d spaces: %q is not cut to 64 characters", pad, out)
		}
	}
	// Escaping still applies, and a multi-byte character is never split.
	if got := printable("a\x1b[31m" + strings.Repeat("é", 40)); !strings.HasPrefix(got, `a\x1b[31m`) || !utf8.ValidString(got) {
		t.Fatalf("printable = %q", got)
	}
}
