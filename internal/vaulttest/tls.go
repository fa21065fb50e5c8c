package vaulttest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TLSServer is a Server whose listener speaks only HTTPS, with a
// certificate (for 127.0.0.1 and localhost) signed by a CA of its own that
// nothing trusts by default: Vault's -dev-tls mode generates both.
//
// Its CLI, MustCLI, Mount, MountAt, Enable, EnableFileAudit and Env pass
// the CA on (VAULT_CACERT), so they work as Server's do. Client trusts the
// CA.
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
	skipIfAsked(tb)
	s, err := LaunchTLS(tb.TempDir())
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	tb.Cleanup(func() { sweep(tb, s.Server) })
	tb.Cleanup(s.Stop)
	return s
}

// LaunchTLS is Launch for a TLS server. The caller must Stop it.
func LaunchTLS(dir string) (*TLSServer, error) {
	vaultBin, pluginBin := VaultBin(), PluginBin()
	for _, b := range []string{vaultBin, pluginBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make vault plugin` first (%v)", b, err)
		}
	}
	version, err := pluginVersion(pluginBin)
	if err != nil {
		return nil, err
	}
	pluginDir := filepath.Join(dir, "plugins")
	tlsDir := filepath.Join(dir, "tls")
	for _, d := range []string{pluginDir, tlsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	sum, err := copyFile(pluginBin, filepath.Join(pluginDir, PluginName))
	if err != nil {
		return nil, err
	}
	var s *TLSServer
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		// -dev-tls writes a fresh CA, certificate and key on every start.
		for _, f := range []string{"vault-ca.pem", "vault-cert.pem", "vault-key.pem"} {
			_ = os.Remove(filepath.Join(tlsDir, f))
		}
		s = &TLSServer{
			Server: &Server{
				Addr:          fmt.Sprintf("https://127.0.0.1:%d", port),
				Token:         "root-" + randomHex(12),
				Dir:           dir,
				LogPath:       filepath.Join(dir, "vault.log"),
				PluginVersion: version,
				PluginSHA256:  sum,
				done:          make(chan struct{}),
			},
			CAFile: filepath.Join(tlsDir, "vault-ca.pem"),
		}
		if err := s.startTLS(vaultBin, pluginDir, tlsDir); err != nil {
			return nil, err
		}
		err = s.waitReadyTLS()
		if err == nil {
			break
		}
		s.Stop()
		log := tail(s.LogPath)
		if attempt < 3 && strings.Contains(log, "address already in use") {
			continue
		}
		return nil, fmt.Errorf("%v (log: %s)", err, log)
	}
	if out, err := s.CLI(nil, "plugin", "register", "-sha256="+sum, "-version="+version, "secret", PluginName); err != nil {
		s.Stop()
		return nil, fmt.Errorf("registering the plugin: %v: %s", err, out)
	}
	return s, nil
}

func (s *TLSServer) startTLS(vaultBin, pluginDir, tlsDir string) error {
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return err
	}
	// #nosec G204 -- the Vault binary the test run names (CK_VAULT_BIN or bin/vault), with fixed options
	s.cmd = exec.Command(vaultBin, "server", "-dev", "-dev-tls",
		"-dev-tls-cert-dir="+tlsDir,
		"-dev-root-token-id="+s.Token,
		"-dev-listen-address="+strings.TrimPrefix(s.Addr, "https://"),
		"-dev-plugin-dir="+pluginDir,
		"-dev-no-store-token",
	)
	s.cmd.Env = append(os.Environ(), "HOME="+s.Dir, "VAULT_LOG_LEVEL=info")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// As in Start: own process group, and SIGTERM if the test binary dies.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	go func() {
		_ = s.cmd.Wait()
		_ = logf.Close()
		close(s.done)
	}()
	return nil
}

// waitReadyTLS waits for the CA file and then for a healthy server, reached
// through a client that trusts only that CA.
func (s *TLSServer) waitReadyTLS() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("vault exited during start")
		default:
		}
		if s.Client == nil {
			if _, err := os.Stat(s.CAFile); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c, err := s.NewClient()
			if err != nil {
				return err
			}
			c.SetToken(s.Token)
			s.Client = c
		}
		if h, err := s.Client.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault not ready after 60 s")
}

// NewClient returns a client for the server that trusts its CA and nothing
// else, whatever VAULT_* variables the test process has. It carries no
// token.
func (s *TLSServer) NewClient() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = s.Addr
	if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CAFile}); err != nil {
		return nil, err
	}
	// DefaultConfig applied the process's VAULT_SKIP_VERIFY and
	// VAULT_TLS_SERVER_NAME; undo them.
	t, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("unexpected transport %T", cfg.HttpClient.Transport)
	}
	t.TLSClientConfig.InsecureSkipVerify = false
	t.TLSClientConfig.ServerName = ""
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

// Env is what a subprocess needs to reach the server: its address, the
// root token and the CA file.
func (s *TLSServer) Env() []string {
	return append(s.Server.Env(), "VAULT_CACERT="+s.CAFile)
}

// CLI runs the real vault CLI against the server, as Server.CLI does.
func (s *TLSServer) CLI(tb testing.TB, args ...string) (string, error) {
	if tb != nil {
		tb.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, VaultBin(), args...) // #nosec G204 -- the Vault binary the test run names, with the test's own arguments
	// VAULT_SKIP_VERIFY is cleared, so the CLI checks the certificate.
	cmd.Env = append(os.Environ(), s.Env()...)
	cmd.Env = append(cmd.Env, "HOME="+s.Dir, "VAULT_FORMAT=", "NO_COLOR=1", "VAULT_SKIP_VERIFY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("vault %s: %w", firstWords(args), err)
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (s *TLSServer) MustCLI(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.CLI(tb, args...)
	if err != nil {
		tb.Fatalf("%v\n%s", err, out)
	}
	return out
}

// Mount enables the plugin at a fresh path, as Server.Mount does.
func (s *TLSServer) Mount(tb testing.TB) string {
	tb.Helper()
	path := "ck-" + randomHex(4)
	s.MountAt(tb, path)
	return path
}

// MountAt enables the plugin at path and disables it when the test ends.
func (s *TLSServer) MountAt(tb testing.TB, path string) {
	tb.Helper()
	if err := s.Enable(path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _, _ = s.CLI(nil, "secrets", "disable", path) })
}

// Enable enables the plugin, at its registered version, at path.
func (s *TLSServer) Enable(path string) error {
	if out, err := s.CLI(nil, "secrets", "enable", "-path="+path, "-plugin-version="+s.PluginVersion, PluginName); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// EnableFileAudit turns on a file audit device and returns the log's path.
func (s *TLSServer) EnableFileAudit(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(s.Dir, "audit-"+randomHex(4)+".log")
	s.MustCLI(tb, "audit", "enable", "-path=file-"+randomHex(3), "file", "file_path="+path)
	return path
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
