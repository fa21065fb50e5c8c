# The Vault policy of the gateway's token (the default policy adds
# auth/token/lookup-self and renew-self, which the gateway uses).
path "cryptokeys/verify"      { capabilities = ["read", "update"] }
path "cryptokeys/usage"       { capabilities = ["update"] }
path "cryptokeys/revocations" { capabilities = ["read"] }
