variable "mount" {
  description = "Path to enable the cryptokeys secrets engine at."
  type        = string
  default     = "cryptokeys"
}

variable "plugin_version" {
  description = "Registered plugin version to pin the mount to (e.g. \"v0.1.0\"). Null lets Vault pick the latest registered version."
  type        = string
  default     = null
}

variable "environments" {
  description = "Environments to create a role and a key for."
  type        = list(string)
  default     = ["dev", "staging", "prod"]
}
