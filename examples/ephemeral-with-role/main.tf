# One configuration that creates a role and opens an ephemeral key for it,
# and works on the first apply.
#
# Terraform opens an ephemeral resource during plan whenever its arguments
# are known then. `role = cryptokeys_role.deploy.name` is known at plan
# (it is the configured name), so on the first plan Terraform would ask the
# engine for a key from a role that does not exist yet; depends_on does not
# change that. The role's `id` is computed: unknown until the role is
# created, so Terraform opens the key during apply, after creating the
# role. On later runs the id is known and the key is opened at plan, as
# usual. (OpenTofu waits for the role either way; the id works there too.)
#
# Assumes the engine is mounted (see ../quickstart) and VAULT_ADDR /
# VAULT_TOKEN are set.

terraform {
  required_version = ">= 1.11"

  required_providers {
    cryptokeys = {
      source = "cryptokeys/cryptokeys"
    }
  }
}

provider "cryptokeys" {
  mount = var.mount
}

resource "cryptokeys_role" "deploy" {
  name        = var.role
  environment = var.environment
  scopes      = ["read"]
  ttl         = "15m"
}

ephemeral "cryptokeys_api_key" "smoke_test" {
  role = cryptokeys_role.deploy.id # not .name: see above
  name = "deploy-smoke-test"
}

# A post-deployment smoke test with the key: the default command asks the
# engine whether it verifies. A new release re-runs it.
resource "terraform_data" "smoke_test" {
  triggers_replace = [var.release]

  provisioner "local-exec" {
    command = var.smoke_test_command
    environment = {
      API_KEY     = ephemeral.cryptokeys_api_key.smoke_test.api_key
      ENVIRONMENT = var.environment
      MOUNT       = var.mount
    }
  }
}
