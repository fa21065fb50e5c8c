package provider

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// quietKeys answers PlanResourceChange and ReadResource for a
// cryptokeys_api_key that has nothing to change without the framework, and
// passes every other call (and every other plan and refresh) to it.
//
// "Nothing to change" is every key of a quiet `terraform plan`. Its
// refresh reads the key from Vault as Read does (refresh, with the same
// clock) and finds every attribute as it was: the framework would then
// still decode the state, walk every attribute for semantic equality and
// write-only values, and encode the state again, to return the state it
// was given. Its plan has Terraform's proposed new state equal to the
// prior state, byte for byte, and the key outside its rotation window: the
// framework would walk every attribute (defaults, plan modifiers) to
// return the proposal unchanged, since the key's schema has no defaults
// and its plan modifiers (UseStateForUnknown, RequiresReplace,
// RequiresReplaceIfConfigured, sameDuration) change nothing when plan,
// state and configuration agree; what is left is ModifyPlan's rotation
// decision, made here with the same inRotationWindow. Those walks were
// half of the provider's CPU in the 200-key plan of issue 20. Any other
// case goes to the framework: a refresh that finds a change, a gone key
// or an error reads the key again there. TestQuietKeys_planSameAsFramework
// and TestAccQuietKeys_readSameAsFramework compare the two answers case by
// case.
type quietKeys struct {
	tfprotov6.ProviderServer
	// configured is the client this server's provider Configure made
	// (nil before, or after a Configure that made none).
	configured *atomic.Pointer[client]
}

// configuredSink is the context key under which quietKeys hands
// Configure the place for its client.
type configuredSink struct{}

func (s quietKeys) ConfigureProvider(ctx context.Context, req *tfprotov6.ConfigureProviderRequest) (*tfprotov6.ConfigureProviderResponse, error) {
	// As for the framework, which keeps only what the last Configure gave.
	s.configured.Store(nil)
	return s.ProviderServer.ConfigureProvider(context.WithValue(ctx, configuredSink{}, s.configured), req)
}

func (s quietKeys) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	if resp := s.quietPlan(req); resp != nil {
		return resp, nil
	}
	return s.ProviderServer.PlanResourceChange(ctx, req)
}

func (s quietKeys) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	if resp := s.quietRead(ctx, req); resp != nil {
		return resp, nil
	}
	return s.ProviderServer.ReadResource(ctx, req)
}

// quietRead is the refresh of a live key that changed nothing, or nil
// when the framework must refresh it.
func (s quietKeys) quietRead(ctx context.Context, req *tfprotov6.ReadResourceRequest) *tfprotov6.ReadResourceResponse {
	if req.TypeName != "cryptokeys_api_key" || req.CurrentState == nil || len(req.CurrentState.MsgPack) == 0 || len(req.Private) > 0 {
		return nil
	}
	c := s.configured.Load()
	if c == nil {
		return nil
	}
	attrs, ok := knownObject(req.CurrentState)
	if !ok {
		return nil
	}
	m, ok := refreshModel(ctx, attrs)
	if !ok {
		return nil
	}
	r := apiKeyResource{c: c}
	if _, same, diags := r.refresh(ctx, &m); !same || len(diags) > 0 {
		return nil
	}
	return &tfprotov6.ReadResourceResponse{NewState: req.CurrentState}
}

// refreshModel is the part of the key's model that refresh reads and
// compares, converted by the attributes' own types as the framework's
// State.Get would; ok is false if one of them refuses its value.
func refreshModel(ctx context.Context, attrs map[string]tftypes.Value) (m apiKeyModel, ok bool) {
	ok = true
	str := func(name string) types.String {
		v, err := types.StringType.ValueFromTerraform(ctx, attrs[name])
		s, isStr := v.(types.String)
		ok = ok && err == nil && isStr
		return s
	}
	m.ID, m.Mount, m.Role, m.Name = str("id"), str("mount"), str("role"), str("name")
	m.KeyID, m.Environment, m.KeyType, m.PublicKey = str("key_id"), str("environment"), str("key_type"), str("public_key")
	exp, err1 := timetypes.RFC3339Type{}.ValueFromTerraform(ctx, attrs["expires_at"])
	rb, err2 := timetypes.GoDurationType{}.ValueFromTerraform(ctx, attrs["rotate_before"])
	ready, err3 := types.BoolType.ValueFromTerraform(ctx, attrs["ready_for_rotation"])
	var ok1, ok2, ok3 bool
	m.ExpiresAt, ok1 = exp.(timetypes.RFC3339)
	m.RotateBefore, ok2 = rb.(timetypes.GoDuration)
	m.ReadyForRotation, ok3 = ready.(types.Bool)
	return m, ok && err1 == nil && err2 == nil && err3 == nil && ok1 && ok2 && ok3
}

// knownObject decodes a key's state or plan, wholly known and not null.
func knownObject(dv *tfprotov6.DynamicValue) (map[string]tftypes.Value, bool) {
	v, err := dv.Unmarshal(apiKeyType())
	if err != nil || v.IsNull() || !v.IsFullyKnown() {
		return nil, false
	}
	var attrs map[string]tftypes.Value
	return attrs, v.As(&attrs) == nil
}

var apiKeyType = sync.OnceValue(func() tftypes.Type {
	ctx := context.Background()
	var sr resource.SchemaResponse
	newAPIKeyResource().Schema(ctx, resource.SchemaRequest{}, &sr)
	return sr.Schema.Type().TerraformType(ctx)
})

// quietPlan is the plan of a key with nothing to change, or nil when the
// framework must plan it.
func (s quietKeys) quietPlan(req *tfprotov6.PlanResourceChangeRequest) *tfprotov6.PlanResourceChangeResponse {
	if req.TypeName != "cryptokeys_api_key" || req.PriorState == nil || req.ProposedNewState == nil ||
		len(req.PriorState.MsgPack) == 0 || !bytes.Equal(req.PriorState.MsgPack, req.ProposedNewState.MsgPack) ||
		len(req.PriorPrivate) > 0 {
		return nil
	}
	c := s.configured.Load()
	if c == nil {
		return nil
	}
	attrs, ok := knownObject(req.PriorState)
	if !ok {
		return nil
	}
	// ModifyPlan with plan = state: it plans ready_for_rotation false
	// outside the window (a change unless it is false already) and a
	// replacement inside it.
	var ready *bool
	if attrs["ready_for_rotation"].As(&ready) != nil || ready == nil || *ready {
		return nil
	}
	expiresAt, ok1 := optionalString(attrs["expires_at"])
	rotateBefore, ok2 := optionalString(attrs["rotate_before"])
	if !ok1 || !ok2 {
		return nil
	}
	// A value its type refuses goes to the framework, whose reading of it
	// decides.
	exp, d1 := timetypes.NewRFC3339PointerValue(expiresAt)
	rb, d2 := timetypes.NewGoDurationValueFromPointerString(rotateBefore)
	if d1.HasError() || d2.HasError() {
		return nil
	}
	if inRotationWindow(c.now(), exp, rb) {
		return nil
	}
	return &tfprotov6.PlanResourceChangeResponse{PlannedState: req.ProposedNewState}
}

// optionalString reads a string attribute that may be null; ok is false
// for anything else.
func optionalString(v tftypes.Value) (s *string, ok bool) {
	if !v.Type().Is(tftypes.String) {
		return nil, false
	}
	return s, v.As(&s) == nil
}
