# Enables the plugin (registered in Vault's catalog as
# vault-plugin-secrets-cryptokeys) at cryptokeys/ and configures it.
resource "cryptokeys_secrets_engine" "this" {
  path           = "cryptokeys"
  plugin_version = "v0.1.0"
  description    = "API keys for the trading API"

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
