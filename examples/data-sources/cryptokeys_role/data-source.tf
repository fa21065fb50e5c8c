data "cryptokeys_role" "prod_trader" {
  name = "prod-trader"
}

output "prod_trader_scopes" {
  value = data.cryptokeys_role.prod_trader.scopes
}
