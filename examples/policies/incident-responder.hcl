# incident-responder: on-call security engineers. They may revoke keys (one,
# a role's, an environment's, or every key found in leaked text), lift
# anomaly suspensions and read metadata. They cannot issue or rotate keys,
# so they never hold a customer's secret, and cannot change roles or config.

# revoke/role/<role>, revoke/environment/<env>, revoke/leaked
path "cryptokeys/revoke/*" {
  capabilities = ["update"]
}

# The mount's key_prefix: cryptokeys scan --revoke reads it to send only
# this mount's keys (no secret is in the config).
path "cryptokeys/config" {
  capabilities = ["read"]
}

# List keys, read a key's metadata, revoke one key by key_id:
#   vault delete cryptokeys/keys/<key_id> reason="INC-4711"
path "cryptokeys/keys/*" {
  capabilities = ["read", "list", "delete"]
}

# Lift an anomaly suspension: vault write cryptokeys/keys/<key_id>/resume reason=...
path "cryptokeys/keys/+/resume" {
  capabilities = ["update"]
}

# Which keys behaved anomalously.
path "cryptokeys/monitor/anomalies" {
  capabilities = ["read"]
}

# Which roles exist and what they grant.
path "cryptokeys/roles/*" {
  capabilities = ["read", "list"]
}
