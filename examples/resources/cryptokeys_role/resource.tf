resource "cryptokeys_role" "prod_trader" {
  name            = "prod-trader"
  environment     = "prod"
  scopes          = ["read", "trade"]
  key_type        = "bearer"
  ttl             = "720h"
  max_ttl         = "2160h"
  allowed_cidrs   = ["10.0.0.0/8"]
  rate_limit      = 50
  rate_burst      = 100
  max_active_keys = 10
  on_anomaly      = "suspend"
  anomaly_rate    = 200
  flag_new_source = true
  description     = "Trading bots in production"

  metadata = {
    team = "quant"
  }
}

# Withdrawals need proof of possession: an hmac (or ed25519) role.
resource "cryptokeys_role" "prod_withdraw" {
  name        = "prod-withdraw"
  environment = "prod"
  scopes      = ["read", "withdraw"]
  key_type    = "hmac"
  recv_window = 5000
  ttl         = "168h"
}
