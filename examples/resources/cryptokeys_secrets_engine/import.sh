# Import by mount path.
terraform import cryptokeys_secrets_engine.this cryptokeys
