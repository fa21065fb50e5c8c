package vaultplugin

import "github.com/cryptokeys/terraform-provider-cryptokeys/wire"

// signatureValid checks a signed request's signature against the key's
// stored secret (hmac, in constant time) or public key (ed25519). The
// message and the client-side signing are wire's (wire.Message,
// wire.SignHMAC, wire.SignEd25519).
func signatureValid(rec *keyRecord, message []byte, signature string) bool {
	switch rec.KeyType {
	case keyTypeHMAC:
		return wire.CheckHMAC(rec.SecretKey, message, signature)
	case keyTypeEd25519:
		if rec.pub == nil {
			return false // no public key that parses: nothing verifies
		}
		return wire.CheckEd25519(rec.pub[:], message, signature)
	}
	return false
}
