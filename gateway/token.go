package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// watchToken keeps the gateway's own Vault token alive: it looks the token
// up, renews it with a LifetimeWatcher while it is renewable, and fails
// closed (every request 503, /readyz unready) with one clear log line when
// the token cannot be renewed any more or is refused. With token_file, a
// new token in the file replaces the old one and lifts the failure.
func (g *Gateway) watchToken(ctx context.Context) {
	changed := make(chan struct{}, 1)
	if g.cfg.TokenFile != "" {
		g.bg.Add(1)
		go func() { defer g.bg.Done(); g.followTokenFile(ctx, changed) }()
	}
	for ctx.Err() == nil {
		g.keepToken(ctx, g.client.Token(), changed)
	}
}

func (g *Gateway) setTokenFail(reason string) {
	g.tokenMu.Lock()
	was := g.tokenFail
	g.tokenFail = reason
	g.tokenMu.Unlock()
	if reason != "" && was == "" {
		g.log.Error("FAILING CLOSED: " + reason + "; every request is refused (503) until the gateway has a working token" + g.tokenHint())
	}
	if reason == "" && was != "" {
		g.log.Info("the gateway's Vault token works again; no longer failing closed")
	}
}

func (g *Gateway) tokenHint() string {
	if g.cfg.TokenFile != "" {
		return " (write a new one to token_file " + g.cfg.TokenFile + ")"
	}
	return " (restart it with a new VAULT_TOKEN, or use token_file with a Vault Agent sink)"
}

// keepToken looks after one token until it changes or ctx ends.
func (g *Gateway) keepToken(ctx context.Context, tok string, changed <-chan struct{}) {
	waitChange := func() {
		select {
		case <-ctx.Done():
		case <-changed:
		}
	}
	var sec *api.Secret
	for {
		var err error
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sec, err = g.client.Auth().Token().LookupSelfWithContext(lctx)
		cancel()
		if err == nil && sec != nil {
			break
		}
		if refused(err) {
			g.setTokenFail("Vault refuses the gateway's token (auth/token/lookup-self: " + shortErr(err) + ")")
			waitChange()
			return
		}
		// Vault unreachable: the verifier's staleness bound covers that.
		select {
		case <-ctx.Done():
			return
		case <-changed:
			return
		case <-time.After(time.Second):
		}
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	g.setTokenFail("")
	if ttl <= 0 {
		g.tokenExpiry.Store(0)
		g.log.Info("the gateway's Vault token does not expire")
		waitChange()
		return
	}
	g.tokenExpiry.Store(time.Now().Add(ttl).UnixNano())
	if !renewable {
		g.log.Warn("the gateway's Vault token is not renewable; the gateway fails closed when it expires", "ttl", ttl.String())
		t := time.NewTimer(ttl)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			return
		case <-t.C:
			g.setTokenFail("the gateway's Vault token expired and is not renewable")
			waitChange()
			return
		}
	}
	w, err := g.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{
		Secret: &api.Secret{Auth: &api.SecretAuth{ClientToken: tok, Renewable: true, LeaseDuration: int(ttl.Seconds())}},
	})
	if err != nil {
		g.setTokenFail("cannot watch the gateway's Vault token: " + err.Error())
		waitChange()
		return
	}
	go w.Start()
	defer w.Stop()
	g.log.Info("renewing the gateway's Vault token while it runs", "ttl", ttl.String())
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			return
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				g.tokenExpiry.Store(r.RenewedAt.Add(time.Duration(r.Secret.Auth.LeaseDuration) * time.Second).UnixNano())
				g.m.tokenRenewals.Inc()
				g.log.Debug("renewed the gateway's Vault token", "ttl", r.Secret.Auth.LeaseDuration)
			}
		case err := <-w.DoneCh():
			why := "it reached its maximum TTL"
			if err != nil {
				why = shortErr(err)
			}
			g.setTokenFail("the gateway's Vault token can no longer be renewed (" + why + ")")
			waitChange()
			return
		}
	}
}

// followTokenFile re-reads token_file and switches to a new token.
func (g *Gateway) followTokenFile(ctx context.Context, changed chan<- struct{}) {
	t := time.NewTicker(g.opts.TokenFileInterval)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tok, err := readTokenFile(g.cfg.TokenFile)
		if err != nil {
			if err.Error() != lastErr {
				g.log.Warn("cannot read token_file; keeping the current token", "error", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if tok == g.client.Token() {
			continue
		}
		g.client.SetToken(tok)
		g.log.Info("token_file changed; using the new token", "path", g.cfg.TokenFile)
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// refused is true for Vault's answer to a bad or expired token.
func refused(err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized
	}
	return err != nil && strings.Contains(err.Error(), "permission denied")
}

// shortErr is the first line of an error (Vault's carry the URL and a
// multi-line body).
func shortErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if strings.Contains(s, "permission denied") {
		return "permission denied"
	}
	return s
}
