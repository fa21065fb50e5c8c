package provider

import (
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

func TestIncompatibleEngine(t *testing.T) {
	decoded := func(data map[string]any) infoAPI {
		t.Helper()
		v, err := wire.Decode[infoAPI](data)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	info := func(pattern string, types ...any) infoAPI {
		return decoded(map[string]any{
			"version":    "v0.1.0",
			"key_format": map[string]any{"pattern": pattern},
			"key_types":  types,
		})
	}
	if why := incompatible(info(keyformat.Pattern, "bearer", "hmac", "ed25519")); why != "" {
		t.Errorf("this engine build is compatible, got %q", why)
	}
	if why := incompatible(info(`[a-z]+`, "bearer", "hmac", "ed25519")); !strings.Contains(why, "expects") {
		t.Errorf("another key format: %q", why)
	}
	if why := incompatible(info(keyformat.Pattern, "bearer")); !strings.Contains(why, `"hmac"`) {
		t.Errorf("missing key type: %q", why)
	}
	if why := incompatible(decoded(map[string]any{"version": "v9"})); why == "" {
		t.Error("an engine that does not describe its key format must be refused")
	}
}
