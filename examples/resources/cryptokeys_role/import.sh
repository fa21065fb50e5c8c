# Import by <mount>/roles/<name>.
terraform import cryptokeys_role.prod_trader cryptokeys/roles/prod-trader
