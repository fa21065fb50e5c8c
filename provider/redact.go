package provider

import (
	"context"
	"reflect"
	"sync/atomic"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/redact"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// secretLike matches what could be key material in a diagnostic: PEM
// blocks, and runs of 32 or more base62 or base64 characters (a key's
// key_id, secret and checksum are one run of 50, its secret alone 32; an
// hmac secret_key is 64; a PEM body line 64).
var secretLike = redact.Runs(`[0-9A-Za-z+/]{32,}`)

func redactText(s string) string { return secretLike.Text(s) }

// NewProtocol6 is providerserver.NewProtocol6WithError(p) behind
// Redacting: the server main serves and the acceptance tests run.
//
// Its diagnostics never repeat key material: a key, secret_key or
// private_key that a configuration feeds into the wrong argument would
// otherwise come back in the error text (validators and duration types
// quote the value they refuse; set elements are named by their value),
// and Terraform shows diagnostics to whoever runs the pipeline and keeps
// them in CI logs.
func NewProtocol6(p provider.Provider) func() (tfprotov6.ProviderServer, error) {
	inner := providerserver.NewProtocol6WithError(p)
	return func() (tfprotov6.ProviderServer, error) {
		s, err := inner()
		if err != nil {
			return nil, err
		}
		if _, ok := p.(*cryptokeysProvider); ok {
			s = quietKeys{ProviderServer: s, configured: new(atomic.Pointer[client])}
		}
		return Redacting(s), nil
	}
}

// Redacting wraps a provider server so that no diagnostic it returns
// holds key material.
func Redacting(s tfprotov6.ProviderServer) tfprotov6.ProviderServer { return redactingServer{inner: s} }

// redactingServer holds the inner server in a named field, not embedded:
// every tfprotov6.ProviderServer method is written out below, so an RPC
// added upstream fails to compile here instead of passing through
// unredacted (TestRedactingServer_wrapsEveryMethod checks each one).
type redactingServer struct{ inner tfprotov6.ProviderServer }

var _ tfprotov6.ProviderServer = redactingServer{}

// redacted redacts what a response can carry back to the user: its
// Diagnostics and a function's Error.
func redacted[R any](r *R, err error) (*R, error) {
	if r != nil {
		redactResponse(reflect.ValueOf(r).Elem())
	}
	return r, err
}

// redactResponse redacts a response struct's Diagnostics and Error fields.
func redactResponse(v reflect.Value) {
	if f := v.FieldByName("Diagnostics"); f.IsValid() {
		if d, ok := f.Interface().([]*tfprotov6.Diagnostic); ok {
			redactDiags(d)
		}
	}
	if f := v.FieldByName("Error"); f.IsValid() {
		if fe, ok := f.Interface().(*tfprotov6.FunctionError); ok && fe != nil {
			fe.Text = redactText(fe.Text)
		}
	}
}

func redactDiags(diags []*tfprotov6.Diagnostic) {
	for _, d := range diags {
		if d == nil {
			continue
		}
		d.Summary, d.Detail = redactText(d.Summary), redactText(d.Detail)
		d.Attribute = redactPath(d.Attribute)
	}
}

// redactPath names a set element by its set (its step is its value) and a
// secret-like map key as redacted.
func redactPath(p *tftypes.AttributePath) *tftypes.AttributePath {
	if p == nil {
		return nil
	}
	var steps []tftypes.AttributePathStep
	for _, st := range p.Steps() {
		switch v := st.(type) {
		case tftypes.ElementKeyValue:
			return tftypes.NewAttributePathWithSteps(steps)
		case tftypes.ElementKeyString:
			if redactText(string(v)) != string(v) {
				st = tftypes.ElementKeyString(redact.Replacement)
			}
		}
		steps = append(steps, st)
	}
	return tftypes.NewAttributePathWithSteps(steps)
}

func (s redactingServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	return redacted(s.inner.ApplyResourceChange(ctx, req))
}

func (s redactingServer) CallFunction(ctx context.Context, req *tfprotov6.CallFunctionRequest) (*tfprotov6.CallFunctionResponse, error) {
	return redacted(s.inner.CallFunction(ctx, req))
}

func (s redactingServer) CloseEphemeralResource(ctx context.Context, req *tfprotov6.CloseEphemeralResourceRequest) (*tfprotov6.CloseEphemeralResourceResponse, error) {
	return redacted(s.inner.CloseEphemeralResource(ctx, req))
}

func (s redactingServer) ConfigureProvider(ctx context.Context, req *tfprotov6.ConfigureProviderRequest) (*tfprotov6.ConfigureProviderResponse, error) {
	return redacted(s.inner.ConfigureProvider(ctx, req))
}

func (s redactingServer) GenerateResourceConfig(ctx context.Context, req *tfprotov6.GenerateResourceConfigRequest) (*tfprotov6.GenerateResourceConfigResponse, error) {
	return redacted(s.inner.GenerateResourceConfig(ctx, req))
}

func (s redactingServer) GetFunctions(ctx context.Context, req *tfprotov6.GetFunctionsRequest) (*tfprotov6.GetFunctionsResponse, error) {
	return redacted(s.inner.GetFunctions(ctx, req))
}

func (s redactingServer) GetMetadata(ctx context.Context, req *tfprotov6.GetMetadataRequest) (*tfprotov6.GetMetadataResponse, error) {
	return redacted(s.inner.GetMetadata(ctx, req))
}

func (s redactingServer) GetProviderSchema(ctx context.Context, req *tfprotov6.GetProviderSchemaRequest) (*tfprotov6.GetProviderSchemaResponse, error) {
	return redacted(s.inner.GetProviderSchema(ctx, req))
}

func (s redactingServer) GetResourceIdentitySchemas(ctx context.Context, req *tfprotov6.GetResourceIdentitySchemasRequest) (*tfprotov6.GetResourceIdentitySchemasResponse, error) {
	return redacted(s.inner.GetResourceIdentitySchemas(ctx, req))
}

func (s redactingServer) ImportResourceState(ctx context.Context, req *tfprotov6.ImportResourceStateRequest) (*tfprotov6.ImportResourceStateResponse, error) {
	return redacted(s.inner.ImportResourceState(ctx, req))
}

func (s redactingServer) MoveResourceState(ctx context.Context, req *tfprotov6.MoveResourceStateRequest) (*tfprotov6.MoveResourceStateResponse, error) {
	return redacted(s.inner.MoveResourceState(ctx, req))
}

func (s redactingServer) OpenEphemeralResource(ctx context.Context, req *tfprotov6.OpenEphemeralResourceRequest) (*tfprotov6.OpenEphemeralResourceResponse, error) {
	return redacted(s.inner.OpenEphemeralResource(ctx, req))
}

func (s redactingServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	return redacted(s.inner.PlanResourceChange(ctx, req))
}

func (s redactingServer) ReadDataSource(ctx context.Context, req *tfprotov6.ReadDataSourceRequest) (*tfprotov6.ReadDataSourceResponse, error) {
	return redacted(s.inner.ReadDataSource(ctx, req))
}

func (s redactingServer) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	return redacted(s.inner.ReadResource(ctx, req))
}

func (s redactingServer) RenewEphemeralResource(ctx context.Context, req *tfprotov6.RenewEphemeralResourceRequest) (*tfprotov6.RenewEphemeralResourceResponse, error) {
	return redacted(s.inner.RenewEphemeralResource(ctx, req))
}

func (s redactingServer) StopProvider(ctx context.Context, req *tfprotov6.StopProviderRequest) (*tfprotov6.StopProviderResponse, error) {
	return redacted(s.inner.StopProvider(ctx, req))
}

func (s redactingServer) UpgradeResourceIdentity(ctx context.Context, req *tfprotov6.UpgradeResourceIdentityRequest) (*tfprotov6.UpgradeResourceIdentityResponse, error) {
	return redacted(s.inner.UpgradeResourceIdentity(ctx, req))
}

func (s redactingServer) UpgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) (*tfprotov6.UpgradeResourceStateResponse, error) {
	return redacted(s.inner.UpgradeResourceState(ctx, req))
}

func (s redactingServer) ValidateDataResourceConfig(ctx context.Context, req *tfprotov6.ValidateDataResourceConfigRequest) (*tfprotov6.ValidateDataResourceConfigResponse, error) {
	return redacted(s.inner.ValidateDataResourceConfig(ctx, req))
}

func (s redactingServer) ValidateEphemeralResourceConfig(ctx context.Context, req *tfprotov6.ValidateEphemeralResourceConfigRequest) (*tfprotov6.ValidateEphemeralResourceConfigResponse, error) {
	return redacted(s.inner.ValidateEphemeralResourceConfig(ctx, req))
}

func (s redactingServer) ValidateProviderConfig(ctx context.Context, req *tfprotov6.ValidateProviderConfigRequest) (*tfprotov6.ValidateProviderConfigResponse, error) {
	return redacted(s.inner.ValidateProviderConfig(ctx, req))
}

func (s redactingServer) ValidateResourceConfig(ctx context.Context, req *tfprotov6.ValidateResourceConfigRequest) (*tfprotov6.ValidateResourceConfigResponse, error) {
	return redacted(s.inner.ValidateResourceConfig(ctx, req))
}
