package certerr

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"testing"
)

func TestUntrusted(t *testing.T) {
	wrapped := &url.Error{Op: "Get", URL: "https://127.0.0.1:8200/v1/sys/health", Err: fmt.Errorf("tls: %w", x509.UnknownAuthorityError{})}
	if !Untrusted(wrapped) {
		t.Error("an unknown authority inside a url.Error is not recognised")
	}
	if !Untrusted(x509.HostnameError{Host: "vault.example"}) {
		t.Error("a hostname mismatch is not recognised")
	}
	if Untrusted(errors.New("connection refused")) || Untrusted(nil) {
		t.Error("an error that is not about the certificate is called untrusted")
	}
}
