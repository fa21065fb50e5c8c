# staging-pipeline: the CI/CD pipeline that deploys staging services.
# It may issue staging keys and nothing else in the engine.

# Issue a key from any role whose name starts with "staging-":
#   vault read  cryptokeys/creds/staging-trader
#   vault write cryptokeys/creds/staging-trader ttl=24h scopes=read
# Roles, and so environments, are owned by the platform team (platform-admin):
# name staging roles "staging-*" and give them environment = "staging".
path "cryptokeys/creds/staging-*" {
  capabilities = ["read", "update"]
}

# What the cryptokeys Terraform provider needs besides issuing, when the
# pipeline runs `terraform apply` with cryptokeys_api_key resources or the
# ephemeral cryptokeys_api_key:

# Compatibility check of the engine (version, features). Reads no storage.
path "cryptokeys/info" {
  capabilities = ["read"]
}

# Drift detection: metadata of a key (never its secret), to notice a key
# revoked or expired outside Terraform. Read only: on destroy the provider
# revokes the key through its lease (sys/leases/revoke, granted below),
# not by key_id: it can end only leases whose (random) ids it holds.
path "cryptokeys/keys/*" {
  capabilities = ["read"]
}

# Renew the leases it holds (ephemeral keys while Terraform runs) and revoke
# them (terraform destroy, replacement, ephemeral close). These endpoints act
# on any lease whose ID the caller presents: lease IDs are random and are
# returned only in the response that created the lease (and in audit logs).
path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}
