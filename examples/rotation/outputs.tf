output "key_id" {
  description = "Public identifier of the current key."
  value       = cryptokeys_api_key.market_data.key_id
}

output "expires_at" {
  description = "When the current key expires."
  value       = cryptokeys_api_key.market_data.expires_at
}

output "ready_for_rotation" {
  description = "True once the key is inside its rotate_before window; the next apply replaces it."
  value       = cryptokeys_api_key.market_data.ready_for_rotation
}

output "api_key" {
  description = "The current key: terraform output -raw api_key"
  value       = cryptokeys_api_key.market_data.api_key
  sensitive   = true
}
