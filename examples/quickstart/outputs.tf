output "key_ids" {
  description = "Public identifier of each environment's key (safe to print and log)."
  value       = { for env, k in cryptokeys_api_key.trader : env => k.key_id }
}

output "expires_at" {
  description = "When each environment's key stops verifying unless renewed or rotated."
  value       = { for env, k in cryptokeys_api_key.trader : env => k.expires_at }
}

output "api_keys" {
  description = "The keys themselves. Read one with: terraform output -json api_keys | jq -r .prod"
  value       = { for env, k in cryptokeys_api_key.trader : env => k.api_key }
  sensitive   = true
}
