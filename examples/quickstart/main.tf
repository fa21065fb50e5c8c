# cryptokeys quickstart: one engine, one role and one API key per environment.
#
# The provider reads VAULT_ADDR and VAULT_TOKEN from the environment, like
# the vault CLI. The Vault server must have the vault-plugin-secrets-cryptokeys
# plugin registered in its catalog (`make demo` does this for you).

terraform {
  required_version = ">= 1.11"

  required_providers {
    cryptokeys = {
      source = "cryptokeys/cryptokeys"
    }
  }
}

provider "cryptokeys" {}

# Enables the plugin at cryptokeys/ and manages its config.
resource "cryptokeys_secrets_engine" "this" {
  path           = var.mount
  plugin_version = var.plugin_version

  # Vault caps every lease at the mount's max_lease_ttl (768h unless set):
  # without this, the roles' 2160h max_ttl would be cut to 768h.
  max_lease_ttl = "2160h"

  config = {
    key_prefix   = "ck"
    default_ttl  = "720h"
    max_ttl      = "2160h"
    scopes       = ["read", "trade", "withdraw"]
    environments = var.environments
  }
}

# One role per environment: dev-trader, staging-trader, prod-trader.
# A key issued from a role only verifies in that role's environment.
resource "cryptokeys_role" "trader" {
  for_each = toset(var.environments)

  mount       = cryptokeys_secrets_engine.this.path
  name        = "${each.key}-trader"
  environment = each.key
  scopes      = ["read", "trade"]
  ttl         = "720h"
  max_ttl     = "2160h"
  rate_limit  = 50
  rate_burst  = 100
  description = "Trading API access for ${each.key}"

  metadata = {
    team = "platform"
  }
}

# One key per environment. Inside the last week of its lease, the plan
# replaces it, creating the successor before revoking the old key.
resource "cryptokeys_api_key" "trader" {
  for_each = cryptokeys_role.trader

  mount         = cryptokeys_secrets_engine.this.path
  role          = each.value.name
  rotate_before = "168h"

  metadata = {
    service = "trading-bot"
  }

  lifecycle {
    create_before_destroy = true
  }
}
