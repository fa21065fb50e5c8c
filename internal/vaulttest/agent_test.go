package vaulttest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Redact leaves no key in what a failing agent test prints, raw or
// escaped, and keeps the key_id so the reader can tell keys apart.
func TestRedact(t *testing.T) {
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	raw := k.Raw()
	in := "rendered " + raw + " then " + url.QueryEscape(strings.Replace(raw, "_", "%5F", 1)) + " end"
	out := Redact(in)
	if m := keyformat.Find([]byte(out)); len(m) != 0 {
		t.Fatalf("a key survives Redact: %d found", len(m))
	}
	if strings.Count(out, "<key "+k.KeyID+">") != 2 || !strings.HasPrefix(out, "rendered ") || !strings.HasSuffix(out, " end") {
		t.Fatalf("Redact: %q", out)
	}
}
