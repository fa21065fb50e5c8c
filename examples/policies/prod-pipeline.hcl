# prod-pipeline: the CI/CD pipeline that deploys production services.
# It may issue production keys and nothing else in the engine.

# Issue a key from any role whose name starts with "prod-":
#   vault read  cryptokeys/creds/prod-trader
#   vault write cryptokeys/creds/prod-trader ttl=24h scopes=read
# Roles, and so environments, are owned by the platform team (platform-admin):
# name production roles "prod-*" and give them environment = "prod".
path "cryptokeys/creds/prod-*" {
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
# revokes the key through its lease (granted below), not by key_id.
path "cryptokeys/keys/*" {
  capabilities = ["read"]
}

# Renew the leases it holds (ephemeral keys while Terraform runs) and revoke
# them (terraform destroy, replacement, ephemeral close). A lease ID is
# <mount>/<path that issued it>/<random>, and the provider sends it in the
# URL (sys/leases/revoke/<lease_id>), so these grants reach only leases of
# keys issued from this mount's prod-* roles: not another role's, not
# another mount's, not any other secret in Vault. Never grant
# sys/leases/revoke or sys/leases/revoke/* to a pipeline.
path "sys/leases/renew/cryptokeys/creds/prod-*" {
  capabilities = ["update"]
}

path "sys/leases/revoke/cryptokeys/creds/prod-*" {
  capabilities = ["update"]
}

# Keys made by rotation (keys/<key_id>/rotate) hold their leases under
# cryptokeys/keys/<key_id>/rotate/..., not under the role's creds/ prefix.
# This pipeline has no rotate grant and the provider rotates by issuing a
# new key from creds/, so it never holds such a lease. A pipeline that is
# also given "cryptokeys/keys/+/rotate" (update) needs these to renew and
# revoke its successors; key_ids are random, so they cannot be narrowed to a
# role: they reach any rotated successor in the mount whose lease ID the
# token holds.
#
# path "sys/leases/renew/cryptokeys/keys/+/rotate/*" {
#   capabilities = ["update"]
# }
#
# path "sys/leases/revoke/cryptokeys/keys/+/rotate/*" {
#   capabilities = ["update"]
# }
