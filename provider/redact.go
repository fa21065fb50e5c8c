package provider

import (
	"context"

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
		return Redacting(s), nil
	}
}

// Redacting wraps a provider server so that no diagnostic it returns
// holds key material.
func Redacting(s tfprotov6.ProviderServer) tfprotov6.ProviderServer { return redactingServer{s} }

type redactingServer struct{ tfprotov6.ProviderServer }

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

func (s redactingServer) ValidateProviderConfig(ctx context.Context, req *tfprotov6.ValidateProviderConfigRequest) (*tfprotov6.ValidateProviderConfigResponse, error) {
	r, err := s.ProviderServer.ValidateProviderConfig(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ConfigureProvider(ctx context.Context, req *tfprotov6.ConfigureProviderRequest) (*tfprotov6.ConfigureProviderResponse, error) {
	r, err := s.ProviderServer.ConfigureProvider(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ValidateResourceConfig(ctx context.Context, req *tfprotov6.ValidateResourceConfigRequest) (*tfprotov6.ValidateResourceConfigResponse, error) {
	r, err := s.ProviderServer.ValidateResourceConfig(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) UpgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) (*tfprotov6.UpgradeResourceStateResponse, error) {
	r, err := s.ProviderServer.UpgradeResourceState(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	r, err := s.ProviderServer.ReadResource(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	r, err := s.ProviderServer.PlanResourceChange(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	r, err := s.ProviderServer.ApplyResourceChange(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ImportResourceState(ctx context.Context, req *tfprotov6.ImportResourceStateRequest) (*tfprotov6.ImportResourceStateResponse, error) {
	r, err := s.ProviderServer.ImportResourceState(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ValidateDataResourceConfig(ctx context.Context, req *tfprotov6.ValidateDataResourceConfigRequest) (*tfprotov6.ValidateDataResourceConfigResponse, error) {
	r, err := s.ProviderServer.ValidateDataResourceConfig(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ReadDataSource(ctx context.Context, req *tfprotov6.ReadDataSourceRequest) (*tfprotov6.ReadDataSourceResponse, error) {
	r, err := s.ProviderServer.ReadDataSource(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) ValidateEphemeralResourceConfig(ctx context.Context, req *tfprotov6.ValidateEphemeralResourceConfigRequest) (*tfprotov6.ValidateEphemeralResourceConfigResponse, error) {
	r, err := s.ProviderServer.ValidateEphemeralResourceConfig(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) OpenEphemeralResource(ctx context.Context, req *tfprotov6.OpenEphemeralResourceRequest) (*tfprotov6.OpenEphemeralResourceResponse, error) {
	r, err := s.ProviderServer.OpenEphemeralResource(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) RenewEphemeralResource(ctx context.Context, req *tfprotov6.RenewEphemeralResourceRequest) (*tfprotov6.RenewEphemeralResourceResponse, error) {
	r, err := s.ProviderServer.RenewEphemeralResource(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) CloseEphemeralResource(ctx context.Context, req *tfprotov6.CloseEphemeralResourceRequest) (*tfprotov6.CloseEphemeralResourceResponse, error) {
	r, err := s.ProviderServer.CloseEphemeralResource(ctx, req)
	if r != nil {
		redactDiags(r.Diagnostics)
	}
	return r, err
}

func (s redactingServer) CallFunction(ctx context.Context, req *tfprotov6.CallFunctionRequest) (*tfprotov6.CallFunctionResponse, error) {
	r, err := s.ProviderServer.CallFunction(ctx, req)
	if r != nil && r.Error != nil {
		r.Error.Text = redactText(r.Error.Text)
	}
	return r, err
}
