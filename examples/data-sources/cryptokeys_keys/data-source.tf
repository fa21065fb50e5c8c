# Every live key of the prod environment.
data "cryptokeys_keys" "prod" {
  environment = "prod"
  status      = "active"
}

output "prod_key_ids" {
  value = [for k in data.cryptokeys_keys.prod.keys : k.key_id]
}
