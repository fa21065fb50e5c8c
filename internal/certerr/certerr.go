// Package certerr recognises a TLS certificate that could not be verified,
// so the provider and the scanner CLI can say how to fix it (a CA file)
// instead of showing a bare handshake error.
package certerr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Untrusted reports whether err, anywhere in its chain, is a failure to
// verify the server's certificate.
func Untrusted(err error) bool {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
