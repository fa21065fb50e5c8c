package provider

import (
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

func TestIncompatibleEngine(t *testing.T) {
	info := func(pattern string, types ...any) map[string]any {
		return map[string]any{
			"version":    "v0.1.0",
			"key_format": map[string]any{"pattern": pattern},
			"key_types":  types,
		}
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
	if why := incompatible(map[string]any{"version": "v9"}); why == "" {
		t.Error("an engine that does not describe its key format must be refused")
	}
}
