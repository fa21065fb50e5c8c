# Metadata of one key (never its secret): status, expiry, usage.
data "cryptokeys_key" "bot" {
  key_id = "7Fq2LxR9aTbZ"
}

output "bot_key_status" {
  value = data.cryptokeys_key.bot.status
}
