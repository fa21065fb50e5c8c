package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/certerr"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/api"
)

// revokeChunk keeps each request well under the engine's 4 MiB limit on
// revoke/leaked text; one key is at most 76 bytes, so this is ~13k keys.
const revokeChunk = 1 << 20

type revokeResult struct {
	sent, revoked, unknown, alreadyRevoked int
	revokedIDs                             []string
}

// vaultClient builds a client from the Vault CLI's environment variables,
// read through getenv rather than the process environment so that callers
// (and tests) decide what it sees.
func vaultClient(getenv func(string) string, stderr io.Writer) (*api.Client, error) {
	addr := getenv("VAULT_ADDR")
	if addr == "" {
		// Keys are about to be sent over the network: never guess where.
		return nil, errors.New("VAULT_ADDR is not set")
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("VAULT_ADDR %q is not an http(s) URL", addr)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(stderr, "cryptokeys scan: warning: sending keys to %s without TLS\n", addr)
	}

	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	// DefaultConfig also applied the process's own VAULT_* TLS settings;
	// start from a clean TLS config so only getenv's apply.
	if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	skip := false
	if v := getenv("VAULT_SKIP_VERIFY"); v != "" {
		if skip, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("VAULT_SKIP_VERIFY: %v", err)
		}
	}
	if skip && u.Scheme == "https" {
		fmt.Fprintf(stderr, "cryptokeys scan: warning: VAULT_SKIP_VERIFY is set: the TLS certificate of %s is not verified, so the keys may go to whoever answers there\n", addr)
	}
	if err := cfg.ConfigureTLS(&api.TLSConfig{
		CACert:        getenv("VAULT_CACERT"),
		CAPath:        getenv("VAULT_CAPATH"),
		ClientCert:    getenv("VAULT_CLIENT_CERT"),
		ClientKey:     getenv("VAULT_CLIENT_KEY"),
		TLSServerName: getenv("VAULT_TLS_SERVER_NAME"),
		Insecure:      skip,
	}); err != nil {
		return nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	token, err := vaultToken(getenv)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	if ns := getenv("VAULT_NAMESPACE"); ns != "" {
		c.SetNamespace(ns)
	} else {
		c.ClearNamespace()
	}
	return c, nil
}

// vaultToken is VAULT_TOKEN, or else what `vault login` stored with the
// default token helper, as the vault CLI does.
func vaultToken(getenv func(string) string) (string, error) {
	if t := getenv("VAULT_TOKEN"); t != "" {
		return t, nil
	}
	if home := getenv("HOME"); home != "" {
		b, err := os.ReadFile(filepath.Join(home, ".vault-token")) // #nosec G304 -- the Vault CLI token helper's file, in the user's own HOME
		if err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", errors.New("VAULT_TOKEN is not set and there is no ~/.vault-token")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// revokeLeaked sends the keys to <mount>/revoke/leaked and adds up the
// engine's counts. Only whole keys are sent, one per line: the engine needs
// the secret to prove a leak, and nothing else from the scanned files should
// leave the machine.
//
// Only keys of the mount's key_prefix are sent (prefix, or else the mount's
// config says which): keys of other mounts or other Vaults would only be
// refused there, and should not leave the machine for a server that does
// not own them. The key_ids of those held back are named on stderr.
func revokeLeaked(ctx context.Context, getenv func(string) string, mount, prefix, reason string, keys []string, stderr io.Writer) (revokeResult, error) {
	var res revokeResult
	c, err := vaultClient(getenv, stderr)
	if err != nil {
		return res, err
	}
	if prefix == "" {
		if prefix, err = mountPrefix(ctx, c, mount); err != nil {
			return res, err
		}
	}
	var mine, other []string
	for _, k := range keys {
		if p, err := keyformat.Parse(k); err == nil && p.Prefix == prefix {
			mine = append(mine, k)
		} else if err == nil {
			other = append(other, p.KeyID)
		}
	}
	if len(other) > 0 {
		fmt.Fprintf(stderr, "cryptokeys scan: %d key(s) not sent to %s: their prefix is not the mount's %q (key_id %s)\n", len(other), mount, prefix, strings.Join(other, ", "))
	}
	if len(mine) == 0 {
		fmt.Fprintf(stderr, "cryptokeys scan: no key with the prefix %q of %s found, nothing to revoke\n", prefix, mount)
		return res, nil
	}
	keys = mine
	res.sent = len(keys)
	for len(keys) > 0 {
		var text strings.Builder
		n := 0
		for n < len(keys) && (n == 0 || text.Len()+len(keys[n])+1 <= revokeChunk) {
			text.WriteString(keys[n])
			text.WriteByte('\n')
			n++
		}
		keys = keys[n:]
		sec, err := c.Logical().WriteWithContext(ctx, mount+"/revoke/leaked", map[string]any{
			"text":   text.String(),
			"reason": reason,
		})
		if err != nil {
			return res, withTLSHint(err)
		}
		if sec == nil || sec.Data == nil {
			return res, fmt.Errorf("%s/revoke/leaked returned no data", mount)
		}
		reply, err := wire.Decode[wire.LeakedReply](sec.Data)
		if err != nil {
			return res, fmt.Errorf("%s/revoke/leaked: decoding the reply: %v", mount, err)
		}
		res.revoked += reply.RevokedCount
		res.unknown += reply.UnknownCount
		res.alreadyRevoked += reply.AlreadyRevoked
		res.revokedIDs = append(res.revokedIDs, reply.Revoked...)
	}
	return res, nil
}

// mountPrefix reads the key_prefix of the engine at mount from its config.
// (info tells only the engine's default prefix, not the mount's.)
func mountPrefix(ctx context.Context, c *api.Client, mount string) (string, error) {
	sec, err := c.Logical().ReadWithContext(ctx, mount+"/config")
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return "", fmt.Errorf("reading %s/config to learn the mount's key_prefix: permission denied (grant the token read on %s/config, or pass --prefix)", mount, mount)
		}
		return "", fmt.Errorf("reading %s/config to learn the mount's key_prefix: %w", mount, withTLSHint(err))
	}
	var p string
	if sec != nil {
		p, _ = sec.Data["key_prefix"].(string)
	}
	if !keyformat.ValidPrefix(p) {
		return "", fmt.Errorf("%s/config has no valid key_prefix: is a cryptokeys engine mounted there? (--mount)", mount)
	}
	return p, nil
}

// withTLSHint says how to fix a certificate that could not be verified.
func withTLSHint(err error) error {
	if certerr.Untrusted(err) {
		return fmt.Errorf("%w (Vault's TLS certificate is not trusted: set VAULT_CACERT to the PEM file of the CA that signed it; VAULT_SKIP_VERIFY=true turns verification off, never in production)", err)
	}
	return err
}
