# Splits a key into its public parts offline; checksum_valid tells a typo
# from a key.
output "parsed" {
  value     = provider::cryptokeys::parse_key(var.api_key)
  sensitive = true
  # => { prefix = "ck", environment = "prod", key_id = "...", checksum_valid = true }
}

variable "api_key" {
  type      = string
  sensitive = true
}
