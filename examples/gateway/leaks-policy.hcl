# The extra Vault policy of a gateway that runs the leak receivers
# (leaks { github = true } or leaks { report = true } in gateway.hcl):
# they revoke the keys they are sent through the engine's revoke/leaked,
# which revokes only whole keys (key_id and secret) of this mount. Give it
# only to a gateway that turns a receiver on; gateway-policy.hcl is the rest.
path "cryptokeys/revoke/leaked" { capabilities = ["update"] }
