package vaultplugin

import (
	"context"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// features lists what this engine build supports, so clients (the Terraform
// provider) can check compatibility without guessing from the version.
var features = []string{"bearer", "hmac", "ed25519", "rotate", "revoke_bulk", "revoke_leaked", "rate_limit", "usage", "anomaly", "tidy"}

func pathInfo(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "info",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "info",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:  b.pathInfoRead,
				Responses: okResponse("This engine build.", infoResponseFields),
				Summary:   "Engine version, key format and features. Touches no storage.",
			},
		},
		HelpSynopsis:    "Describe this engine build.",
		HelpDescription: "Returns the engine version, the key format (pattern and lengths), key types, verify codes and features. It reads no storage, so it also measures the bare cost of a request through the plugin.",
	}}
}

func (b *backend) pathInfoRead(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{
		"version": Version,
		"key_format": map[string]any{
			"pattern":         keyformat.Pattern,
			"default_prefix":  keyformat.DefaultPrefix,
			"key_id_length":   keyformat.KeyIDLen,
			"secret_length":   keyformat.SecretLen,
			"checksum_length": keyformat.ChecksumLen,
			"checksum":        "crc32-ieee-base62",
		},
		"key_types":    keyTypes,
		"verify_codes": wire.Codes,
		"features":     features,
	}}, nil
}
