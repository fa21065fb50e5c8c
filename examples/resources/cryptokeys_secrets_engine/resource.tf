# Enables the plugin (registered in Vault's catalog as
# vault-plugin-secrets-cryptokeys) at cryptokeys/ and configures it.
resource "cryptokeys_secrets_engine" "this" {
  path           = "cryptokeys"
  plugin_version = "v0.1.0"
  description    = "API keys for the trading API"

  # Mount tune settings. Vault caps every lease at max_lease_ttl (768h
  # unless set), whatever config.max_ttl or a role's max_ttl says.
  default_lease_ttl = "720h"
  max_lease_ttl     = "2160h"

  # Fields the audit log shows in clear (all others are HMAC'd). The
  # default, key_id, lets auditors follow a key; api_key, secret_key,
  # private_key and text are refused.
  audit_non_hmac_request_keys  = ["key_id"]
  audit_non_hmac_response_keys = ["key_id"]

  config = {
    key_prefix    = "ck"
    default_ttl   = "720h"
    max_ttl       = "2160h"
    scopes        = ["read", "trade", "withdraw"]
    signed_scopes = ["withdraw"]
    environments  = ["dev", "staging", "prod"]
    retention     = "720h"
  }
}
