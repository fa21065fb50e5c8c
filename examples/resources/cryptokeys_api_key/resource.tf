# A key rotated a week before it expires; the successor is created before
# the old key is revoked, so the service never holds a dead key.
resource "cryptokeys_api_key" "trading_bot" {
  role          = "prod-trader"
  name          = "trading-bot"
  scopes        = ["read", "trade"]
  rotate_before = "168h"

  # Change a value here to rotate on demand.
  rotation_triggers = {
    incident = "none"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# Bring your own Ed25519 key: only the public half reaches Vault, through a
# write-only attribute (Terraform 1.11+), so it is never stored in state.
resource "cryptokeys_api_key" "signer" {
  role                  = "prod-signer"
  public_key_wo         = var.client_public_key_pem
  public_key_wo_version = 1
}

variable "client_public_key_pem" {
  description = "The client's Ed25519 public key, PEM (SubjectPublicKeyInfo)."
  type        = string
  ephemeral   = true
}
