# app-agent: the Vault Agent beside one application (a sidecar, the
# Kubernetes agent injector, or an agent on the host) that renders the
# application's key from one role and keeps it current:
#
#   template {
#     contents    = "{{ with secret \"cryptokeys/creds/prod-trader\" }}{{ .Data.api_key }}{{ end }}"
#     destination = "/run/secrets/api_key"
#   }
#
# See docs/guides/vault-agent.md. One policy per application: copy it and
# replace the role (prod-trader) with the application's own.

# Issue a key (the template's `secret` reads creds/<role>).
path "cryptokeys/creds/prod-trader" {
  capabilities = ["read"]
}

# Renew and revoke the leases of this role's keys, the lease in the URL
# (sys/leases/renew/<lease_id>): a lease ID is
# <mount>/creds/<role>/<random>, so these reach only keys of this mount's
# prod-trader role, for a pre-stop hook that ends the key
# (`vault write -f sys/leases/revoke/$(cat /run/secrets/lease_id)`) or a
# script that renews it.
#
# Vault Agent itself renews with the lease in the request body
# (PUT sys/leases/renew, lease_id=...), which no path can scope: that grant,
# like auth/token/lookup-self and renew-self (which the agent's auto-auth
# needs), comes from Vault's built-in `default` policy, attached to every
# token unless it is created with -no-default-policy. Keep `default` on the
# agent's token.
path "sys/leases/renew/cryptokeys/creds/prod-trader/*" {
  capabilities = ["update"]
}

path "sys/leases/revoke/cryptokeys/creds/prod-trader/*" {
  capabilities = ["update"]
}
