package provider

import (
	"context"
	"errors"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ function.Function = (*parseKeyFunction)(nil)

func newParseKeyFunction() function.Function { return &parseKeyFunction{} }

type parseKeyFunction struct{}

var parseKeyResult = map[string]attr.Type{
	"prefix": types.StringType, "environment": types.StringType, "key_id": types.StringType, "checksum_valid": types.BoolType,
}

func (f *parseKeyFunction) Metadata(_ context.Context, _ function.MetadataRequest, resp *function.MetadataResponse) {
	resp.Name = "parse_key"
}

func (f *parseKeyFunction) Definition(_ context.Context, _ function.DefinitionRequest, resp *function.DefinitionResponse) {
	resp.Definition = function.Definition{
		Summary:     "Split a cryptokeys API key into its public parts.",
		Description: "Returns the prefix, environment and key_id of a key, and whether its checksum holds. Offline: nothing is sent to Vault. A string that is not key-shaped is an error.",
		Parameters: []function.Parameter{function.StringParameter{
			Name: "key", Description: "An API key, e.g. ck_prod_…", AllowNullValue: false,
		}},
		Return: function.ObjectReturn{AttributeTypes: parseKeyResult},
	}
}

func (f *parseKeyFunction) Run(ctx context.Context, req function.RunRequest, resp *function.RunResponse) {
	var key string
	resp.Error = function.ConcatFuncErrors(resp.Error, req.Arguments.Get(ctx, &key))
	if resp.Error != nil {
		return
	}
	k, err := keyformat.Parse(key)
	valid := err == nil
	if errors.Is(err, keyformat.ErrBadChecksum) {
		// The shape holds, so the public parts can still be told.
		if m := keyformat.Find([]byte(key)); len(m) == 1 && m[0].Offset == 0 {
			k = m[0].Key
			err = nil
		}
	}
	if err != nil {
		// The message never repeats the argument: it may be a real key.
		resp.Error = function.NewArgumentFuncError(0, "not a well-formed cryptokeys key: want <prefix>_<environment>_<50 base62 characters>")
		return
	}
	obj, diags := types.ObjectValue(parseKeyResult, map[string]attr.Value{
		"prefix": types.StringValue(k.Prefix), "environment": types.StringValue(k.Environment),
		"key_id": types.StringValue(k.KeyID), "checksum_valid": types.BoolValue(valid),
	})
	resp.Error = function.ConcatFuncErrors(resp.Error, function.FuncErrorFromDiags(ctx, diags))
	resp.Error = function.ConcatFuncErrors(resp.Error, resp.Result.Set(ctx, obj))
}
