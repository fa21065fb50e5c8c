package vaultplugin

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

// Published test vectors (docs/guides/signing-requests.md). The expected
// signatures were computed with Python's hmac and the `cryptography`
// package, not with this code.
const (
	vectorHMACSecret = "cryptokeys-test-vector-secret-key-0123456789abcdefghijklmnopqrstu"
	vectorTimestamp  = "1700000000000"
	vectorPath       = "/api/v3/order?symbol=BTCUSDT"
	vectorBody       = `{"side":"BUY","qty":"0.01"}`
	vectorHMACPost   = "dfb9177dc1cb069f7b457aa0886bfa657a27530c247b78a71b40d8472b0d909a"
	vectorHMACGet    = "82af37c23cf2792f3a57a3db840c5f1b7a3381abf94eb4b14bc3659ea87ea821"
	// Ed25519 private key with seed bytes 0x00..0x1f.
	vectorEd25519Private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n-----END PRIVATE KEY-----\n"
	vectorEd25519Public  = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n-----END PUBLIC KEY-----\n"
	vectorEd25519Post    = "7I0zra/dVUObW0aWzlAQAyVoS/Xd9rMsSL5mvXSHu8Kk/yDU5ddXWMj97PRxBPVFowbiCYm+2e/xWBC3VbTfCA=="
)

func TestSigning_hmacVectors(t *testing.T) {
	post := wire.Message(vectorTimestamp, "post", vectorPath, vectorBody)
	if got := wire.SignHMAC(vectorHMACSecret, post); got != vectorHMACPost {
		t.Fatalf("POST vector: %s", got)
	}
	get := wire.Message(vectorTimestamp, "GET", "/api/v3/account", "")
	if got := wire.SignHMAC(vectorHMACSecret, get); got != vectorHMACGet {
		t.Fatalf("GET vector: %s", got)
	}
	rec := &keyRecord{KeyType: keyTypeHMAC, SecretKey: []byte(vectorHMACSecret)}
	if !signatureValid(rec, post, vectorHMACPost) {
		t.Fatal("engine refuses the published vector")
	}
	for name, msg := range map[string][]byte{
		"changed body":   wire.Message(vectorTimestamp, "POST", vectorPath, `{"side":"SELL","qty":"0.01"}`),
		"changed path":   wire.Message(vectorTimestamp, "POST", "/api/v3/order?symbol=ETHUSDT", vectorBody),
		"changed method": wire.Message(vectorTimestamp, "PUT", vectorPath, vectorBody),
		"changed time":   wire.Message("1700000000001", "POST", vectorPath, vectorBody),
	} {
		if signatureValid(rec, msg, vectorHMACPost) {
			t.Errorf("%s: signature still accepted", name)
		}
	}
	if signatureValid(rec, post, "DFB9177DC1CB069F7B457AA0886BFA657A27530C247B78A71B40D8472B0D909A"[:10]) {
		t.Error("truncated signature accepted")
	}
}

func TestSigning_ed25519Vectors(t *testing.T) {
	blk, _ := pem.Decode([]byte(vectorEd25519Private))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	msg := wire.Message(vectorTimestamp, "POST", vectorPath, vectorBody)
	if got := base64.StdEncoding.EncodeToString(ed25519.Sign(k.(ed25519.PrivateKey), msg)); got != vectorEd25519Post {
		t.Fatalf("ed25519 vector: %s", got)
	}
	rec := &keyRecord{KeyType: keyTypeEd25519, PublicKey: vectorEd25519Public}
	rec.prepare()
	if !signatureValid(rec, msg, vectorEd25519Post) {
		t.Fatal("engine refuses the published ed25519 vector")
	}
	if signatureValid(rec, wire.Message(vectorTimestamp, "POST", vectorPath, vectorBody+" "), vectorEd25519Post) {
		t.Fatal("signature over another body accepted")
	}
	if signatureValid(rec, msg, "not base64!") {
		t.Fatal("garbage signature accepted")
	}
}
