package vaultplugin

import (
	"slices"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// info describes the build (the provider checks compatibility with it) and
// touches no storage, so it also measures the bare plugin round trip.
func TestInfo_describesTheBuildAndReadsNoStorage(t *testing.T) {
	e := newTestEnv(t)
	gets, puts := e.storage.gets, e.storage.puts
	d := e.ok(logical.ReadOperation, "info", nil).Data
	if e.storage.gets != gets || e.storage.puts != puts {
		t.Fatalf("info touched storage: %d gets, %d puts", e.storage.gets-gets, e.storage.puts-puts)
	}
	if d["version"] != Version {
		t.Errorf("version %v, want %s", d["version"], Version)
	}
	kf := d["key_format"].(map[string]any)
	if kf["pattern"] != keyformat.Pattern || kf["key_id_length"] != keyformat.KeyIDLen || kf["default_prefix"] != keyformat.DefaultPrefix {
		t.Errorf("key_format %v", kf)
	}
	if !slices.Equal(d["verify_codes"].([]string), wire.Codes) {
		t.Errorf("verify_codes %v, want wire.Codes", d["verify_codes"])
	}
	for _, kt := range []string{keyTypeBearer, keyTypeHMAC, keyTypeEd25519} {
		if !slices.Contains(d["key_types"].([]string), kt) {
			t.Errorf("key_types %v lacks %s", d["key_types"], kt)
		}
	}
}
