# auditor: read-only view of keys, their usage, revocation records and
# anomalies. Nothing here returns a secret: the engine never stores bearer
# keys or private keys, and no read path returns an hmac secret_key.

# vault list cryptokeys/keys ; vault read cryptokeys/keys/<key_id>
path "cryptokeys/keys/*" {
  capabilities = ["read", "list"]
}

path "cryptokeys/monitor/anomalies" {
  capabilities = ["read"]
}

# Roles and config (the pepper is never returned).
path "cryptokeys/roles/*" {
  capabilities = ["read", "list"]
}

path "cryptokeys/config" {
  capabilities = ["read"]
}

path "cryptokeys/info" {
  capabilities = ["read"]
}
