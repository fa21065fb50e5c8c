package wire

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Message is the message a client signs and verify checks:
// timestamp + METHOD + path (with its query) + body, plainly concatenated,
// the method upper-cased. It is built in one allocation.
func Message(timestamp, method, path, body string) []byte {
	msg := make([]byte, 0, len(timestamp)+len(method)+len(path)+len(body))
	msg = append(msg, timestamp...)
	for i := 0; i < len(method); i++ {
		c := method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		msg = append(msg, c)
	}
	msg = append(msg, path...)
	return append(msg, body...)
}

// SignHMAC is what a client of an hmac key sends as the signature:
// lowercase hex of HMAC-SHA256(secret_key, message).
func SignHMAC(secretKey string, message []byte) string {
	return hex.EncodeToString(hmacSum([]byte(secretKey), message))
}

// SignEd25519 is what a client of an ed25519 key sends as the signature:
// standard base64 of the Ed25519 signature of message.
func SignEd25519(privateKey ed25519.PrivateKey, message []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(privateKey, message))
}

// CheckHMAC reports whether signature is SignHMAC's for secretKey and
// message, in constant time.
func CheckHMAC(secretKey, message []byte, signature string) bool {
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, hmacSum(secretKey, message))
}

// CheckEd25519 reports whether signature is a valid SignEd25519 of message
// for publicKey (nil: never). Ed25519 verification depends on no secret.
func CheckEd25519(publicKey ed25519.PublicKey, message []byte, signature string) bool {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize || len(publicKey) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(publicKey, message, sig)
}

func hmacSum(key, message []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(message)
	return m.Sum(nil)
}
