// Command tffloor is the bench's floor provider: Terraform's own cost of
// planning the cryptokeys_api_key schema, the floor under what any
// provider of this schema can reach. It is never shipped (the provider
// binary is built from the repository root); the bench harness builds it
// into its temp dir as terraform-provider-cryptokeys and plans the same
// applied keys as the real provider with it, for
// tf_plan_floor_vs_terraform_data.
//
// It serves the real provider (provider.NewProtocol6 over provider.New, at
// the same address as the root main.go), but for cryptokeys_api_key it
// answers the three calls of a no-change plan at once, with no Vault call:
// ReadResource returns the current state and private data as they are,
// PlanResourceChange the proposed new state and the prior private data,
// and UpgradeResourceState the raw state decoded with the schema's type.
// Everything else (the schema, validation, the provider's configuration,
// any other type) goes to the real server, and so does any call it cannot
// answer that way. What is left of such a plan is Terraform's work and
// the gRPC round trips.
package main

import (
	"context"
	"log"
	"os"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/providerproc"
	"github.com/cryptokeys/terraform-provider-cryptokeys/provider"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

const typeName = "cryptokeys_api_key"

func main() {
	// What the real provider's main.go does before it serves
	// (providerproc): its SDK loggers off unless a TF_LOG* variable asks
	// for them, so Terraform does not parse log lines the real provider
	// never writes, and its collector at four times the live heap. And
	// the harness's ProfileEnv: this process's CPU time, as the real
	// provider writes it (no CPU profile here), so the harness can tell
	// Terraform's CPU from the provider's.
	providerproc.QuietUnlessAsked(os.Getenv, os.Setenv)
	providerproc.LessGC(os.Getenv)
	if dir := os.Getenv(providerproc.ProfileEnv); dir != "" {
		defer providerproc.WriteCPUTime(dir)
	}
	factory := provider.NewProtocol6(provider.New("floor")())
	err := tf6server.Serve("registry.terraform.io/cryptokeys/cryptokeys", func() tfprotov6.ProviderServer {
		s, err := factory()
		if err != nil {
			log.Fatal(err)
		}
		return wrap(s)
	})
	if err != nil {
		log.Print(err)
	}
}

// floor is the real server with instant answers for typeName.
type floor struct {
	tfprotov6.ProviderServer
	typ tftypes.Type
}

// wrap returns s with the instant answers, or s itself when its schema
// has no typeName.
func wrap(s tfprotov6.ProviderServer) tfprotov6.ProviderServer {
	resp, err := s.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil || resp.ResourceSchemas[typeName] == nil {
		return s
	}
	return &floor{ProviderServer: s, typ: resp.ResourceSchemas[typeName].ValueType()}
}

func (f *floor) UpgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) (*tfprotov6.UpgradeResourceStateResponse, error) {
	if req.TypeName != typeName || req.RawState == nil {
		return f.ProviderServer.UpgradeResourceState(ctx, req)
	}
	v, err := req.RawState.UnmarshalWithOpts(f.typ, tfprotov6.UnmarshalOpts{ValueFromJSONOpts: tftypes.ValueFromJSONOpts{IgnoreUndefinedAttributes: true}})
	if err != nil {
		return f.ProviderServer.UpgradeResourceState(ctx, req)
	}
	dv, err := tfprotov6.NewDynamicValue(f.typ, v)
	if err != nil {
		return f.ProviderServer.UpgradeResourceState(ctx, req)
	}
	return &tfprotov6.UpgradeResourceStateResponse{UpgradedState: &dv}, nil
}

func (f *floor) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	if req.TypeName != typeName || req.CurrentState == nil {
		return f.ProviderServer.ReadResource(ctx, req)
	}
	return &tfprotov6.ReadResourceResponse{NewState: req.CurrentState, Private: req.Private}, nil
}

func (f *floor) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	if req.TypeName != typeName || req.ProposedNewState == nil {
		return f.ProviderServer.PlanResourceChange(ctx, req)
	}
	return &tfprotov6.PlanResourceChangeResponse{PlannedState: req.ProposedNewState, PlannedPrivate: req.PriorPrivate}, nil
}
