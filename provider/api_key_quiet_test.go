package provider

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// TestQuietKeys_planSameAsFramework plans each case twice, through the server
// main serves (quietPlans in front of the framework) and through the
// framework alone, and wants the same answer; it also says which cases
// quietPlan answers itself, so a change that sends every quiet key back
// to the framework (issue 20's cost) fails here too.
func TestQuietKeys_planSameAsFramework(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	served, err := NewProtocol6(NewWithClock("test", clock)())()
	if err != nil {
		t.Fatal(err)
	}
	framework, err := providerserver.NewProtocol6WithError(NewWithClock("test", clock)())()
	if err != nil {
		t.Fatal(err)
	}
	h, fw := configuredHarness(t, served), configuredHarness(t, framework)
	p := quietOf(t, served)
	ctx := context.Background()

	month, day := now.Add(30*24*time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339)
	state := func(set map[string]any) map[string]any {
		s := map[string]any{
			"id": "7Fq2LxR9aTbZ", "mount": "cryptokeys", "role": "r", "key_id": "7Fq2LxR9aTbZ",
			"lease_id": "cryptokeys/creds/r/abc", "api_key": "ck_dev_secret", "environment": "dev",
			"key_type": "bearer", "expires_at": month, "ready_for_rotation": false,
		}
		for k, v := range set {
			s[k] = v
		}
		return s
	}
	cases := []struct {
		name                    string
		prior, proposed, config map[string]any // nil prior or proposed: a null object
		quiet                   bool           // quietPlan answers
	}{
		{"unchanged, no rotate_before", state(nil), state(nil), map[string]any{"role": "r"}, true},
		{"unchanged, outside the window", state(map[string]any{"rotate_before": "168h"}), state(map[string]any{"rotate_before": "168h"}),
			map[string]any{"role": "r", "rotate_before": "168h"}, true},
		{"unchanged, every optional set", state(map[string]any{"name": "n", "ttl": "720h", "rotate_before": "1h",
			"scopes": []tftypes.Value{tftypes.NewValue(tftypes.String, "read")}, "public_key_wo_version": 1}),
			state(map[string]any{"name": "n", "ttl": "720h", "rotate_before": "1h",
				"scopes": []tftypes.Value{tftypes.NewValue(tftypes.String, "read")}, "public_key_wo_version": 1}),
			map[string]any{"role": "r", "name": "n", "ttl": "720h", "rotate_before": "1h",
				"scopes": []tftypes.Value{tftypes.NewValue(tftypes.String, "read")}, "public_key_wo_version": 1}, true},
		{"inside the window", state(map[string]any{"expires_at": day, "rotate_before": "168h"}),
			state(map[string]any{"expires_at": day, "rotate_before": "168h"}), map[string]any{"role": "r", "rotate_before": "168h"}, false},
		{"refreshed as due, window since shortened", state(map[string]any{"ready_for_rotation": true, "rotate_before": "1h"}),
			state(map[string]any{"ready_for_rotation": true, "rotate_before": "1h"}), map[string]any{"role": "r", "rotate_before": "1h"}, false},
		{"ready_for_rotation null", state(map[string]any{"ready_for_rotation": nil}), state(map[string]any{"ready_for_rotation": nil}),
			map[string]any{"role": "r"}, false},
		{"expires_at unreadable", state(map[string]any{"expires_at": "soon", "rotate_before": "1h"}),
			state(map[string]any{"expires_at": "soon", "rotate_before": "1h"}), map[string]any{"role": "r", "rotate_before": "1h"}, false},
		{"same duration spelled otherwise", state(map[string]any{"ttl": "60m"}), state(map[string]any{"ttl": "1h"}),
			map[string]any{"role": "r", "ttl": "1h"}, false},
		{"role changed", state(nil), state(map[string]any{"role": "s"}), map[string]any{"role": "s"}, false},
		{"create", nil, map[string]any{"role": "r", "mount": tftypes.UnknownValue, "id": tftypes.UnknownValue}, map[string]any{"role": "r"}, false},
		{"destroy", state(nil), nil, nil, false},
	}
	obj := func(m map[string]any) *tfprotov6.DynamicValue {
		if m == nil {
			dv, err := tfprotov6.NewDynamicValue(h.typ, tftypes.NewValue(h.typ, nil))
			if err != nil {
				t.Fatal(err)
			}
			return &dv
		}
		return dynamic(t, h.typ, h.object(m))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := func() *tfprotov6.PlanResourceChangeRequest {
				return &tfprotov6.PlanResourceChangeRequest{
					TypeName: "cryptokeys_api_key", PriorState: obj(c.prior), ProposedNewState: obj(c.proposed), Config: obj(c.config),
				}
			}
			if got := p.quietPlan(req()) != nil; got != c.quiet {
				t.Errorf("quietPlan answered: %v, want %v", got, c.quiet)
			}
			a, err := h.srv.PlanResourceChange(ctx, req())
			if err != nil {
				t.Fatal(err)
			}
			b, err := fw.srv.PlanResourceChange(ctx, req())
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Diagnostics) != len(b.Diagnostics) {
				t.Fatalf("diagnostics: served %v, framework %v", a.Diagnostics, b.Diagnostics)
			}
			sameValue(t, h.typ, "planned state", a.PlannedState, b.PlannedState)
			if len(a.RequiresReplace) != len(b.RequiresReplace) {
				t.Errorf("requires replace: served %v, framework %v", a.RequiresReplace, b.RequiresReplace)
			}
			for i := range a.RequiresReplace {
				if !a.RequiresReplace[i].Equal(b.RequiresReplace[i]) {
					t.Errorf("requires replace: served %v, framework %v", a.RequiresReplace, b.RequiresReplace)
				}
			}
			if !bytes.Equal(a.PlannedPrivate, b.PlannedPrivate) {
				t.Errorf("planned private: served %q, framework %q", a.PlannedPrivate, b.PlannedPrivate)
			}
			if (a.Deferred == nil) != (b.Deferred == nil) || (a.PlannedIdentity == nil) != (b.PlannedIdentity == nil) {
				t.Errorf("deferred or identity differ: served %v %v, framework %v %v", a.Deferred, a.PlannedIdentity, b.Deferred, b.PlannedIdentity)
			}
		})
	}

	t.Run("unconfigured provider", func(t *testing.T) {
		srv, err := NewProtocol6(NewWithClock("test", clock)())()
		if err != nil {
			t.Fatal(err)
		}
		prior := obj(state(nil))
		if quietOf(t, srv).quietPlan(&tfprotov6.PlanResourceChangeRequest{TypeName: "cryptokeys_api_key", PriorState: prior, ProposedNewState: prior}) != nil {
			t.Error("quietPlan answered for a provider Configure never configured")
		}
	})
}

// TestAccQuietKeys_readSameAsFramework refreshes keys of a real Vault
// twice, through the server main serves and through the framework alone,
// and wants the same answer; quietRead answers only for a live key whose
// refresh changes nothing.
func TestAccQuietKeys_readSameAsFramework(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/r", "environment=dev", "scopes=read", "ttl=24h")
	now := time.Now()
	clock := func() time.Time { return now }
	served, err := NewProtocol6(NewWithClock("test", clock)())()
	if err != nil {
		t.Fatal(err)
	}
	framework, err := providerserver.NewProtocol6WithError(NewWithClock("test", clock)())()
	if err != nil {
		t.Fatal(err)
	}
	p := quietOf(t, served)
	h := configuredAt(t, served, srv.Addr, srv.Token, mount)
	fw := configuredAt(t, framework, srv.Addr, srv.Token, mount)
	ctx := context.Background()

	issue := func() map[string]any {
		s, err := srv.Client.Logical().Write(mount+"/creds/r", nil)
		if err != nil {
			t.Fatal(err)
		}
		str := func(k string) string { v, _ := s.Data[k].(string); return v }
		return map[string]any{
			"id": str("key_id"), "key_id": str("key_id"), "mount": mount, "role": "r",
			"lease_id": s.LeaseID, "api_key": str("api_key"), "environment": "dev", "key_type": "bearer",
			"expires_at": str("expires_at"), "ready_for_rotation": false,
		}
	}
	with := func(m map[string]any, set map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for k, v := range set {
			out[k] = v
		}
		return out
	}
	live, revoked := issue(), issue()
	srv.MustCLI(t, "delete", mount+"/keys/"+revoked["key_id"].(string))
	cases := []struct {
		name  string
		state map[string]any
		quiet bool
	}{
		{"live, unchanged", live, true},
		{"live, rotation due and refreshed as due", with(live, map[string]any{"rotate_before": "48h", "ready_for_rotation": true}), true},
		{"live, rotation due, state says not yet", with(live, map[string]any{"rotate_before": "48h"}), false},
		{"live, expiry changed outside Terraform", with(live, map[string]any{"expires_at": "2030-01-01T00:00:00Z"}), false},
		{"live, mount null in state", with(live, map[string]any{"mount": nil}), false},
		{"revoked outside Terraform", revoked, false},
		{"not found", with(live, map[string]any{"id": "000000000000", "key_id": "000000000000"}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := func() *tfprotov6.ReadResourceRequest {
				return &tfprotov6.ReadResourceRequest{TypeName: "cryptokeys_api_key", CurrentState: dynamic(t, h.typ, h.object(c.state))}
			}
			if got := p.quietRead(ctx, req()) != nil; got != c.quiet {
				t.Errorf("quietRead answered: %v, want %v", got, c.quiet)
			}
			a, err := h.srv.ReadResource(ctx, req())
			if err != nil {
				t.Fatal(err)
			}
			b, err := fw.srv.ReadResource(ctx, req())
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Diagnostics) != len(b.Diagnostics) {
				t.Fatalf("diagnostics: served %v, framework %v", a.Diagnostics, b.Diagnostics)
			}
			sameValue(t, h.typ, "new state", a.NewState, b.NewState)
			if !bytes.Equal(a.Private, b.Private) || (a.Deferred == nil) != (b.Deferred == nil) || (a.NewIdentity == nil) != (b.NewIdentity == nil) {
				t.Errorf("private, deferred or identity differ: served %q %v %v, framework %q %v %v", a.Private, a.Deferred, a.NewIdentity, b.Private, b.Deferred, b.NewIdentity)
			}
		})
	}
}

// quietOf is the quietKeys behind a server NewProtocol6 made.
func quietOf(t *testing.T, srv tfprotov6.ProviderServer) quietKeys {
	t.Helper()
	r, ok := srv.(redactingServer)
	if !ok {
		t.Fatalf("%T is not a redactingServer", srv)
	}
	q, ok := r.inner.(quietKeys)
	if !ok {
		t.Fatalf("%T is not quietKeys", r.inner)
	}
	return q
}

// TestQuietKeys_clientPerServer: servers made from one provider value (the
// acceptance tests' factory makes one per test step) each answer with the
// client their own Configure made, and with none after a Configure that
// made none (unknown values), as the framework does.
func TestQuietKeys_clientPerServer(t *testing.T) {
	factory := NewProtocol6(NewWithClock("test", time.Now)())
	a, err := factory()
	if err != nil {
		t.Fatal(err)
	}
	b, err := factory()
	if err != nil {
		t.Fatal(err)
	}
	configuredAt(t, a, "http://127.0.0.1:1", "a", "")
	configuredAt(t, b, "http://127.0.0.1:2", "b", "")
	for srv, want := range map[tfprotov6.ProviderServer]string{a: "http://127.0.0.1:1", b: "http://127.0.0.1:2"} {
		if c := quietOf(t, srv).configured.Load(); c == nil || c.vault.Address() != want {
			t.Errorf("server configured for %s answers with %v", want, c)
		}
	}

	h := configuredHarness(t, a)
	cfg := nullProviderConfig()
	cfg["address"] = tftypes.NewValue(tftypes.String, tftypes.UnknownValue)
	if _, err := h.srv.ConfigureProvider(context.Background(), &tfprotov6.ConfigureProviderRequest{Config: dynamic(t, providerConfigType, cfg)}); err != nil {
		t.Fatal(err)
	}
	if c := quietOf(t, a).configured.Load(); c != nil {
		t.Errorf("after a Configure with an unknown address the server still answers with %s", c.vault.Address())
	}
}

// sameValue fails t unless the served and the framework's answers decode
// to equal values.
func sameValue(t *testing.T, typ tftypes.Type, what string, served, framework *tfprotov6.DynamicValue) {
	t.Helper()
	va, err := served.Unmarshal(typ)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := framework.Unmarshal(typ)
	if err != nil {
		t.Fatal(err)
	}
	if !va.Equal(vb) {
		t.Errorf("%s:\nserved    %v\nframework %v", what, va, vb)
	}
}
