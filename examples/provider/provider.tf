# Connection settings fall back to the Vault CLI's environment:
# VAULT_ADDR, VAULT_TOKEN (or ~/.vault-token), VAULT_NAMESPACE,
# VAULT_CACERT and VAULT_SKIP_VERIFY.
provider "cryptokeys" {}

# Or explicitly, e.g. for a second Vault:
provider "cryptokeys" {
  alias        = "eu"
  address      = "https://vault.eu.example.com:8200"
  ca_cert_file = "/etc/ssl/vault-ca.pem"
  namespace    = "payments"
  mount        = "cryptokeys"
}
