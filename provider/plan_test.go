package provider

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflogtest"
)

// These tests drive PlanResourceChange for cryptokeys_api_key as Terraform
// does, through the protocol server, without Terraform or Vault: a plan
// needs neither (the key's refresh is ReadResource's job).

// planHarness is a configured provider server and the api_key schema's
// object type.
type planHarness struct {
	srv tfprotov6.ProviderServer
	typ tftypes.Object
}

func newPlanHarness(t testing.TB, now func() time.Time) planHarness {
	t.Helper()
	srv, err := NewProtocol6(NewWithClock("test", now)())()
	if err != nil {
		t.Fatal(err)
	}
	return configuredHarness(t, srv)
}

// configuredHarness configures srv as newPlanHarness does: Configure
// never contacts Vault.
func configuredHarness(t testing.TB, srv tfprotov6.ProviderServer) planHarness {
	t.Helper()
	return configuredAt(t, srv, "http://127.0.0.1:1", "test-token", "")
}

// configuredAt configures srv with a Vault address, a token and a mount
// ("" for the default).
func configuredAt(t testing.TB, srv tfprotov6.ProviderServer, address, token, mount string) planHarness {
	t.Helper()
	ctx := context.Background()
	var sr resource.SchemaResponse
	newAPIKeyResource().Schema(ctx, resource.SchemaRequest{}, &sr)
	typ := sr.Schema.Type().TerraformType(ctx).(tftypes.Object)

	cfg := nullProviderConfig()
	cfg["address"] = tftypes.NewValue(tftypes.String, address)
	cfg["token"] = tftypes.NewValue(tftypes.String, token)
	if mount != "" {
		cfg["mount"] = tftypes.NewValue(tftypes.String, mount)
	}
	resp, err := srv.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: dynamic(t, providerConfigType, cfg)})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("configure: %v %v", err, resp.Diagnostics)
	}
	return planHarness{srv, typ}
}

// providerConfigType is the provider block's type, for ConfigureProvider.
var providerConfigType = tftypes.Object{AttributeTypes: map[string]tftypes.Type{
	"address": tftypes.String, "token": tftypes.String, "namespace": tftypes.String,
	"mount": tftypes.String, "ca_cert_file": tftypes.String, "skip_tls_verify": tftypes.Bool,
}}

// nullProviderConfig is a provider block with every attribute null.
func nullProviderConfig() map[string]tftypes.Value {
	cfg := map[string]tftypes.Value{}
	for k, at := range providerConfigType.AttributeTypes {
		cfg[k] = tftypes.NewValue(at, nil)
	}
	return cfg
}

func dynamic(t testing.TB, typ tftypes.Object, vals map[string]tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	dv, err := tfprotov6.NewDynamicValue(typ, tftypes.NewValue(typ, vals))
	if err != nil {
		t.Fatal(err)
	}
	return &dv
}

// object fills every attribute of the schema with null, then sets.
func (h planHarness) object(set map[string]any) map[string]tftypes.Value {
	out := map[string]tftypes.Value{}
	for k, at := range h.typ.AttributeTypes {
		out[k] = tftypes.NewValue(at, nil)
	}
	for k, v := range set {
		out[k] = tftypes.NewValue(h.typ.AttributeTypes[k], v)
	}
	return out
}

// plan is a refreshed key planned against an unchanged configuration.
func (h planHarness) plan(t testing.TB, ctx context.Context, expiresAt time.Time, rotateBefore string, ready bool) *tfprotov6.PlanResourceChangeResponse {
	t.Helper()
	config := map[string]any{"role": "r", "rotate_before": rotateBefore}
	state := map[string]any{
		"id": "7Fq2LxR9aTbZ", "mount": "cryptokeys", "role": "r", "rotate_before": rotateBefore,
		"key_id": "7Fq2LxR9aTbZ", "lease_id": "cryptokeys/creds/r/abc", "api_key": "ck_dev_secret",
		"environment": "dev", "key_type": "bearer", "expires_at": expiresAt.UTC().Format(time.RFC3339),
		"ready_for_rotation": ready,
	}
	prior := dynamic(t, h.typ, h.object(state))
	resp, err := h.srv.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{
		TypeName:         "cryptokeys_api_key",
		PriorState:       prior,
		ProposedNewState: prior, // Terraform's proposal for an unchanged configuration
		Config:           dynamic(t, h.typ, h.object(config)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Fatalf("plan diagnostic: %s: %s", d.Summary, d.Detail)
	}
	return resp
}

func requiresReplace(resp *tfprotov6.PlanResourceChangeResponse, attr string) bool {
	for _, p := range resp.RequiresReplace {
		if p.Equal(tftypes.NewAttributePath().WithAttributeName(attr)) {
			return true
		}
	}
	return false
}

func TestAPIKeyPlan_rotationWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h := newPlanHarness(t, func() time.Time { return now })

	t.Run("outside the window plans nothing", func(t *testing.T) {
		var logs bytes.Buffer
		ctx := tflogtest.RootLogger(context.Background(), &logs)
		resp := h.plan(t, ctx, now.Add(30*24*time.Hour), "168h", false)
		if requiresReplace(resp, "ready_for_rotation") {
			t.Error("a key a month from expiry with rotate_before = 168h was planned for replacement")
		}
		planned, err := resp.PlannedState.Unmarshal(h.typ)
		if err != nil {
			t.Fatal(err)
		}
		var attrs map[string]tftypes.Value
		if err := planned.As(&attrs); err != nil {
			t.Fatal(err)
		}
		var ready bool
		if err := attrs["ready_for_rotation"].As(&ready); err != nil || ready {
			t.Errorf("ready_for_rotation planned %v (%v), want false", attrs["ready_for_rotation"], err)
		}
		if strings.Contains(logs.String(), "rotation window") {
			t.Errorf("logged a rotation outside the window: %s", logs.String())
		}
	})

	t.Run("inside the window plans a replacement and says why", func(t *testing.T) {
		var logs bytes.Buffer
		ctx := tflogtest.RootLogger(context.Background(), &logs)
		resp := h.plan(t, ctx, now.Add(24*time.Hour), "168h", false)
		if !requiresReplace(resp, "ready_for_rotation") {
			t.Fatal("a key a day from expiry with rotate_before = 168h was not planned for replacement")
		}
		got := logs.String()
		for _, want := range []string{"rotation window", `"key_id":"7Fq2LxR9aTbZ"`, `"rotate_before":"168h"`} {
			if !strings.Contains(got, want) {
				t.Errorf("the rotation log lacks %s: %s", want, got)
			}
		}
		if strings.Contains(got, "ck_dev_secret") {
			t.Errorf("the log holds the key: %s", got)
		}
	})
}

// BenchmarkAPIKeyPlan is the provider's CPU for one key in a plan with
// nothing to change (issue 20 item 4): what each of 200 keys costs in
// `terraform plan -refresh=false`, without Terraform. Profile it with
//
//	go test ./provider -run '^$' -bench APIKeyPlan -cpuprofile cpu.out
func BenchmarkAPIKeyPlan(b *testing.B) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	h := newPlanHarness(b, func() time.Time { return now })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.plan(b, ctx, now.Add(30*24*time.Hour), "168h", false)
	}
}
