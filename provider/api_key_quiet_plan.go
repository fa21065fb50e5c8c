package provider

import (
	"bytes"
	"context"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// quietPlans answers PlanResourceChange for a cryptokeys_api_key that has
// nothing to plan without the framework, and passes every other call (and
// every other plan) to it.
//
// "Nothing to plan" is the plan of every key in a quiet `terraform plan`:
// Terraform's proposed new state is the prior state, byte for byte, and
// the key is not due for rotation. The framework would then walk every
// attribute of the schema (defaults, plan modifiers, semantic equality;
// about 30% of the provider's CPU in the 200-key plan of issue 20) to
// return the proposal unchanged: the key's schema has no defaults, and its
// plan modifiers (UseStateForUnknown, RequiresReplace, RequiresReplaceIfConfigured,
// sameDuration) change nothing when plan, state and configuration agree.
// What is left is ModifyPlan's rotation decision, which quietPlan makes
// with the same clock and the same inRotationWindow; any other case goes
// to the framework (TestQuietPlan_sameAsFramework compares the two).
type quietPlans struct {
	tfprotov6.ProviderServer
	p *cryptokeysProvider
}

func (s quietPlans) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	if resp := s.p.quietPlan(req); resp != nil {
		return resp, nil
	}
	return s.ProviderServer.PlanResourceChange(ctx, req)
}

var apiKeyType = sync.OnceValue(func() tftypes.Type {
	ctx := context.Background()
	var sr resource.SchemaResponse
	newAPIKeyResource().Schema(ctx, resource.SchemaRequest{}, &sr)
	return sr.Schema.Type().TerraformType(ctx)
})

// quietPlan is the plan of a key with nothing to change, or nil when the
// framework must plan it.
func (p *cryptokeysProvider) quietPlan(req *tfprotov6.PlanResourceChangeRequest) *tfprotov6.PlanResourceChangeResponse {
	if req.TypeName != "cryptokeys_api_key" || req.PriorState == nil || req.ProposedNewState == nil ||
		len(req.PriorState.MsgPack) == 0 || !bytes.Equal(req.PriorState.MsgPack, req.ProposedNewState.MsgPack) ||
		len(req.PriorPrivate) > 0 {
		return nil
	}
	c := p.configured.Load()
	if c == nil {
		return nil
	}
	prior, err := req.PriorState.Unmarshal(apiKeyType())
	if err != nil || prior.IsNull() || !prior.IsFullyKnown() {
		return nil
	}
	var attrs map[string]tftypes.Value
	if prior.As(&attrs) != nil {
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
