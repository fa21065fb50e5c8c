package vaultplugin

import (
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// monitor/anomalies lists flagged keys, findings not yet flushed included,
// with what an operator needs to decide; keys without findings are not
// listed.
func TestMonitorAnomalies_listsFlaggedKeys(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "flag", "flag_new_source": true})
	flagged, _ := e.issue("r", nil)
	quiet, _ := e.issue("r", nil)
	e.wantCode(map[string]any{"api_key": quiet["api_key"]}, wire.CodeValid)
	from := func(ip string) map[string]any { return map[string]any{"api_key": flagged["api_key"], "source_ip": ip} }
	e.wantCode(from("10.0.0.1"), wire.CodeValid)
	e.wantCode(from("198.51.100.7"), wire.CodeValid) // flag, not suspend: still valid

	d := e.ok(logical.ReadOperation, "monitor/anomalies", nil).Data
	keys := d["keys"].([]string)
	id := flagged["key_id"].(string)
	if len(keys) != 1 || keys[0] != id {
		t.Fatalf("keys %v, want only %s", keys, id)
	}
	info := d["key_info"].(map[string]any)[id].(map[string]any)
	if info["role"] != "r" || info["environment"] != "prod" || info["suspended"] != false || len(info["anomalies"].([]map[string]any)) != 1 {
		t.Fatalf("key_info %v", info)
	}
}

// resume answers 400 for what it cannot resume and changes nothing; on a
// suspended key it records who lifted the suspension and why.
func TestResume(t *testing.T) {
	e := newTestEnv(t)
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "keys/AAAAAAAAAAAA/resume", nil, "key_id", "no key")
	e.badRequest(logical.UpdateOperation, "keys/AAAAAAAAAAAA/resume", map[string]any{"why": "x"}, `unknown field "why"`, "accepts")
	e.assertUnchanged(before)

	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "10.0.0.1"}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "198.51.100.7"}, wire.CodeSuspended)
	got := e.ok(logical.UpdateOperation, "keys/"+id+"/resume", map[string]any{"reason": "travelling customer"}).Data
	if got["suspended"] != false || got["status"] != statusActive || got["resumed_by"] != "token-tester (entity entity-1234)" || got["resume_reason"] != "travelling customer" {
		t.Fatalf("resume: %v", got)
	}
	e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "198.51.100.7"}, wire.CodeValid)
}
