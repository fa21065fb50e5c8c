# platform-admin: the Terraform workspace (or team) that owns the engine:
# it mounts the plugin, sets the config and defines the roles, and so decides
# which environment and scopes each role's keys get. It does not issue keys;
# give it a pipeline policy too if the same workspace declares
# cryptokeys_api_key resources.
#
# The plugin must already be registered in Vault's catalog (a step for
# Vault operators: vault plugin register -sha256=... -version=...).

# Enable, read, tune (plugin version) and disable the mount at cryptokeys/.
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

path "cryptokeys/config" {
  capabilities = ["read", "update"]
}

path "cryptokeys/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "cryptokeys/info" {
  capabilities = ["read"]
}
