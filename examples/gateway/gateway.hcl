# cryptokeys gateway -config /etc/cryptokeys/gateway.hcl
# Vault: VAULT_ADDR (+ VAULT_CACERT ...) from the environment; the token
# from VAULT_TOKEN or, as here, a Vault Agent sink.
mount           = "cryptokeys"
environment     = "prod"                  # keys of other environments are refused offline
listen          = "127.0.0.1:8181"        # /authz, /metrics, /healthz, /readyz
# grpc_listen   = "127.0.0.1:8182"        # Envoy ext_authz over gRPC (examples/gateway/envoy/)
token_file      = "/run/vault-agent/token" # re-read when it changes
trusted_proxies = ["127.0.0.1/32"]        # the proxy in front; its X-Forwarded-For is believed

# Optional tuning of the embedded verifier (defaults shown).
# cache_ttl      = "1m"
# poll_interval  = "250ms"
# max_staleness  = "5s"    # no feed read for this long: every request 503
# usage_interval = "10s"
# verify_by_read = true    # the mount must pass X-Cryptokeys-Api-Key through

route "GET /v1/market/*" {
  scopes = ["read"]
}
route "POST /v1/orders" {
  scopes = ["trade"]
}
route "* /v1/orders/*" {
  scopes = ["trade"]
}
# Unmatched routes are refused (403 NO_ROUTE). To let any valid key through
# elsewhere instead:
# default_scopes = []

# Leak receivers, off unless turned on here; they need leaks-policy.hcl on
# the gateway's token (see docs/guides/leak-receivers.md):
# leaks {
#   github = true   # POST /leaks/github: GitHub secret-scanning partner alerts
#   report = true   # POST /leaks/report: anyone may revoke a key they found
# }
