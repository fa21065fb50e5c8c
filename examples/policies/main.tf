# The Vault policies of this directory as a map, name => policy text, so a
# configuration that manages Vault (for example with the hashicorp/vault
# provider's vault_policy resource) can use them as a module:
#
#   module "cryptokeys_policies" {
#     source = "./policies"
#   }
#
#   resource "vault_policy" "cryptokeys" {
#     for_each = module.cryptokeys_policies.policies
#     name     = "cryptokeys-${each.key}"
#     policy   = each.value
#   }
#
# Or write them with the vault CLI; see README.md.

terraform {
  required_version = ">= 1.11"
}

locals {
  policies = {
    for f in fileset(path.module, "*.hcl") :
    trimsuffix(f, ".hcl") => file("${path.module}/${f}")
  }
}
