variable "mount" {
  description = "Path the cryptokeys engine is mounted at."
  type        = string
  default     = "cryptokeys"
}

variable "role" {
  description = "Name of the role this configuration creates."
  type        = string
  default     = "deploy-smoke"
}

variable "environment" {
  description = "Environment of the role's keys."
  type        = string
  default     = "prod"
}

variable "release" {
  description = "Release being deployed; a new value re-runs the smoke test."
  type        = string
  default     = "v1"
}

variable "smoke_test_command" {
  description = "Command run with API_KEY, ENVIRONMENT and MOUNT in its environment."
  type        = string
  default     = <<-EOT
    curl -fsS -H "X-Vault-Token: $VAULT_TOKEN" \
      --data "{\"api_key\":\"$API_KEY\",\"environment\":\"$ENVIRONMENT\",\"scopes\":[\"read\"]}" \
      "$VAULT_ADDR/v1/$MOUNT/verify" | grep -q '"code":"VALID"' && echo "smoke test: key VALID"
  EOT
}
