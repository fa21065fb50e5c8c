# A key that never reaches Terraform's plan or state.
#
# The ephemeral cryptokeys_api_key issues a short-lived leased key each time
# Terraform runs (plan and apply), renews the lease while Terraform needs it,
# and revokes it when Terraform is done. Ephemeral values may only flow into
# places Terraform does not persist: locals, provider configurations,
# write-only arguments, ephemeral variables and outputs of child modules,
# and provisioner and connection blocks.
#
# Here the key runs a post-deployment smoke test: the provisioner gets it in
# its environment, so it is neither in the command line nor in state.
#
# Assumes the engine and a role exist (see ../quickstart) and VAULT_ADDR /
# VAULT_TOKEN are set. Requires Terraform >= 1.10 (ephemeral resources).

terraform {
  required_version = ">= 1.11"

  required_providers {
    cryptokeys = {
      source = "cryptokeys/cryptokeys"
    }
  }
}

provider "cryptokeys" {}

ephemeral "cryptokeys_api_key" "smoke_test" {
  mount  = var.mount
  role   = var.role
  ttl    = "15m"
  scopes = ["read"]

  metadata = {
    purpose = "deploy-smoke-test"
  }
}

locals {
  # Still ephemeral: a local that refers to an ephemeral value is ephemeral.
  smoke_env = {
    API_KEY     = ephemeral.cryptokeys_api_key.smoke_test.api_key
    ENVIRONMENT = var.environment
    MOUNT       = var.mount
  }
}

# Runs the smoke test once per release. The default command asks the engine
# itself whether the fresh key verifies; replace it with a call to your API,
# e.g. curl -fsS -H "X-API-KEY: $API_KEY" https://api.example.com/v1/ping
resource "terraform_data" "smoke_test" {
  input            = var.release
  triggers_replace = [var.release]

  provisioner "local-exec" {
    command     = var.smoke_test_command
    environment = local.smoke_env
  }
}
