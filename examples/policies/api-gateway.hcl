# api-gateway: the API gateway or service that checks every incoming request.
# It may ask whether a presented key is valid, and nothing else: it cannot
# issue, list, read, rotate or revoke keys.
#
#   vault write cryptokeys/verify api_key=... environment=prod scopes=trade source_ip=...
#
# or, the cheaper call, a read with the key in the X-Cryptokeys-Api-Key header:
#
#   GET /v1/cryptokeys/verify?environment=prod&scopes=trade&source_ip=...
path "cryptokeys/verify" {
  capabilities = ["read", "update"]
}

# Only for services that embed the local verifier (package
# github.com/cryptokeys/terraform-provider-cryptokeys/verifier): it follows
# the revocations feed and reports the usage it counted. Uncomment both.
#
# path "cryptokeys/revocations" {
#   capabilities = ["read"]
# }
#
# path "cryptokeys/usage" {
#   capabilities = ["update"]
# }
