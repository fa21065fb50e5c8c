# Rotation with overlap: a key that Terraform replaces before it expires,
# issuing the successor before it revokes the old key.
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

provider "cryptokeys" {}

resource "cryptokeys_role" "market_data" {
  mount       = var.mount
  name        = "${var.environment}-market-data"
  environment = var.environment
  scopes      = ["read"]
  ttl         = var.key_ttl
  max_ttl     = var.key_ttl
  description = "Read-only market data feed keys"
}

resource "cryptokeys_api_key" "market_data" {
  mount = var.mount
  role  = cryptokeys_role.market_data.name
  ttl   = var.key_ttl

  # Once expires_at is less than rotate_before away, ready_for_rotation
  # becomes true and the plan shows a replacement (-/+).
  rotate_before = var.rotate_before

  # Change any value here (e.g. an incident number) to rotate now.
  rotation_triggers = {
    epoch = var.rotation_epoch
  }

  metadata = {
    consumer = "market-data-feed"
  }

  # Create the successor first, deliver it, then revoke the old key: both
  # verify during the apply, so consumers never see a gap.
  lifecycle {
    create_before_destroy = true
  }
}

# Stands in for whatever delivers the key to its consumer (a secret store,
# a deployment). replace_triggered_by re-runs the delivery whenever the key
# is replaced, by rotate_before or by rotation_triggers.
#
# create_before_destroy here too: the new delivery happens before the old
# one is undone, so the consumer always holds a key that verifies. Without
# it Terraform destroys the old delivery first, and the consumer has no key
# until the new one arrives.
resource "terraform_data" "deliver" {
  input = cryptokeys_api_key.market_data.key_id

  lifecycle {
    replace_triggered_by  = [cryptokeys_api_key.market_data]
    create_before_destroy = true
  }
}
