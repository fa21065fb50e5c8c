# Import by key_id (or <mount>/<key_id>). Only metadata is imported: the
# secret is never readable again, so api_key stays empty.
terraform import cryptokeys_api_key.trading_bot cryptokeys/7Fq2LxR9aTbZ
