# Root-module outputs cannot hold ephemeral values, so only facts that are
# not secret are exported. The key itself exists only during the run.
output "smoke_test_release" {
  description = "Release the smoke test last ran for."
  value       = terraform_data.smoke_test.output
}
