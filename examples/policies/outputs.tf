output "policies" {
  description = "Vault policy texts by name: prod-pipeline, staging-pipeline, app-agent, api-gateway, incident-responder, auditor, platform-admin."
  value       = local.policies
}
