# platform-admin: the Terraform workspace (or team) that owns the engine:
# it mounts the plugin, sets the config and defines the roles, and so decides
# which environment and scopes each role's keys get. It does not issue keys;
# give it a pipeline policy too if the same workspace declares
# cryptokeys_api_key resources.
#
# The plugin must already be registered in Vault's catalog (a step for
# Vault operators: vault plugin register -sha256=... -version=...).

# Enable, read, tune and disable the mount at cryptokeys/. cryptokeys_secrets_engine
# tunes plugin_version, description, default_lease_ttl / max_lease_ttl and
# the audit_non_hmac_* lists, and reads them back (tune) to show drift;
# cryptokeys_role reads the mount's max_lease_ttl to warn about a role
# max_ttl above it.
path "sys/mounts/cryptokeys" {
  capabilities = ["create", "read", "update", "delete"]
}

path "sys/mounts/cryptokeys/tune" {
  capabilities = ["read", "update"]
}

# The provider refreshes cryptokeys_secrets_engine from the mount table.
path "sys/mounts" {
  capabilities = ["read"]
}

# Changing plugin_version tunes the mount, then reloads its plugin.
path "sys/plugins/reload/backend" {
  capabilities = ["update"]
}

# The first apply of a new mount writes its config: Vault calls that a
# create (no config stored yet), later applies an update.
path "cryptokeys/config" {
  capabilities = ["create", "read", "update"]
}

path "cryptokeys/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "cryptokeys/info" {
  capabilities = ["read"]
}
