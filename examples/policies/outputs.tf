output "policies" {
  description = "Vault policy texts by name: prod-pipeline, staging-pipeline, api-gateway, incident-responder, auditor, platform-admin."
  value       = local.policies
}
