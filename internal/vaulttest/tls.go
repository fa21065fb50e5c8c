package vaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSServer is a Server whose listener speaks only HTTPS, with a
// certificate (for 127.0.0.1 and localhost) signed by a CA of its own that
// nothing trusts by default: Vault's -dev-tls mode generates both.
//
// Server's CLI, MustCLI, Mount, MountAt, Enable, EnableFileAudit and Env
// pass the CA on (VAULT_CACERT), and its Client and NewClient trust it.
type TLSServer struct {
	*Server
	// CAFile is the PEM file of the CA that signed the server's
	// certificate.
	CAFile string
}

// StartTLS starts a TLS server with the plugin registered and stops it when
// the test ends.
func StartTLS(tb testing.TB) *TLSServer {
	tb.Helper()
	s := start(tb, true)
	return &TLSServer{Server: s, CAFile: s.caFile}
}

// LaunchTLS is Launch for a TLS server. The caller must Stop it.
func LaunchTLS(dir string) (*TLSServer, error) {
	s, err := launch(dir, true)
	if err != nil {
		return nil, err
	}
	return &TLSServer{Server: s, CAFile: s.caFile}, nil
}

// OtherCAFile writes the certificate of a fresh CA that signed nothing this
// server presents, for tests that a client refuses the server's
// certificate when given the wrong CA.
func OtherCAFile(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vaulttest other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
