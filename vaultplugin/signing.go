package vaultplugin

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// signingMessage is the canonical message a client signs:
// timestamp + METHOD + path (with query) + body, plainly concatenated.
func signingMessage(timestamp, method, path, body string) []byte {
	var sb strings.Builder
	sb.Grow(len(timestamp) + len(method) + len(path) + len(body))
	sb.WriteString(timestamp)
	sb.WriteString(strings.ToUpper(method))
	sb.WriteString(path)
	sb.WriteString(body)
	return []byte(sb.String())
}

// SignHMAC is what a client computes for an hmac key: lowercase hex of
// HMAC-SHA256(secret_key, message).
func SignHMAC(secretKey string, message []byte) string {
	m := hmac.New(sha256.New, []byte(secretKey))
	m.Write(message)
	return hex.EncodeToString(m.Sum(nil))
}

// signatureValid checks a signature in constant time for hmac keys; Ed25519
// verification does not depend on secret data.
func signatureValid(rec *keyRecord, message []byte, signature string) bool {
	switch rec.KeyType {
	case keyTypeHMAC:
		got, err := hex.DecodeString(signature)
		if err != nil || len(got) != sha256.Size {
			return false
		}
		m := hmac.New(sha256.New, rec.SecretKey)
		m.Write(message)
		return hmac.Equal(got, m.Sum(nil))
	case keyTypeEd25519:
		sig, err := base64.StdEncoding.DecodeString(signature)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return false
		}
		pub := rec.ed25519Key()
		return pub != nil && ed25519.Verify(pub, message, sig)
	}
	return false
}
