# A key that exists only while Terraform runs: never in plan or state,
# renewed while needed, revoked at the end.
ephemeral "cryptokeys_api_key" "smoke_test" {
  role = "staging-reader"
  ttl  = "15m"
  name = "ci-smoke-test"
}
