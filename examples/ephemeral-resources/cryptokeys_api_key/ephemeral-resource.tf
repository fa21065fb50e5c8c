# A key that exists only while Terraform runs: never in plan or state,
# renewed while needed, revoked at the end.
ephemeral "cryptokeys_api_key" "smoke_test" {
  role = "staging-reader"
  ttl  = "15m"
  name = "ci-smoke-test"
}

# When the same configuration creates the role, name it by its id: the id
# is unknown until the role exists, so Terraform opens the key during
# apply, after creating the role (by name, Terraform would open it during
# the first plan, before the role exists, and fail).
resource "cryptokeys_role" "deploy" {
  name        = "deploy-smoke"
  environment = "prod"
  ttl         = "15m"
}

ephemeral "cryptokeys_api_key" "deploy" {
  role = cryptokeys_role.deploy.id
}
