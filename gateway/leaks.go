package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
)

// The leak receivers (design, "Leak receivers"): POST /leaks/github takes
// GitHub's secret-scanning partner alerts, POST /leaks/report takes text
// from anyone. Both revoke through the engine's revoke/leaked, so the
// engine alone decides what a leaked key is (the whole key, not its key_id)
// and records who revoked it (the gateway's token) and why.

// leaks is the receivers' state, created by New when one is on.
type leaks struct {
	g   *Gateway
	cfg LeaksConfig

	gh      *githubKeys
	reports *reportLimiter
	// pending bounds the reports being revoked in the background.
	pending chan struct{}

	// labelMu guards alert tokens' labels, which revocations still
	// running after an alert was answered go on writing.
	labelMu sync.Mutex

	alerts *prometheus.CounterVec // receiver, outcome
	tokens *prometheus.CounterVec // receiver, label
}

// registerLeaks adds the receivers the config turns on to mux. Routes of
// receivers that are off are not registered at all (404, or the upstream
// in reverse-proxy mode).
func (g *Gateway) registerLeaks(mux *http.ServeMux) {
	if g.leaks == nil {
		return
	}
	if g.cfg.Leaks.GitHub {
		mux.HandleFunc("/leaks/github", g.leaks.serveGitHub)
	}
	if g.cfg.Leaks.Report {
		mux.HandleFunc("/leaks/report", g.leaks.serveReport)
	}
}

func newLeaks(g *Gateway) *leaks {
	l := &leaks{g: g, cfg: g.cfg.Leaks, pending: make(chan struct{}, maxPendingReports)}
	if l.cfg.GitHub {
		l.gh = newGitHubKeys(l.cfg.GitHubPublicKeysURL, g.opts.GitHubKeysRefetch)
	}
	if l.cfg.Report {
		l.reports = newReportLimiter(l.cfg.ReportsPerMinute)
	}
	l.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_leak_requests_total",
		Help: "Requests to the leak receivers, by receiver (github, report) and outcome (accepted, bad_signature, unknown_key_id, too_large, bad_request, rate_limited, unavailable).",
	}, []string{"receiver", "outcome"})
	l.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_leak_tokens_total",
		Help: "Tokens the leak receivers looked at, by receiver and what became of them (revoked, already_ended, unknown, malformed, other_prefix, queued).",
	}, []string{"receiver", "result"})
	g.m.reg.MustRegister(l.alerts, l.tokens)
	return l
}

// revokeResult is what one revoke/leaked call answered.
type revokeResult struct {
	revoked       map[string]bool // key_ids this call revoked
	unknown       int
	alreadyEnded  int // already revoked, or expired
	badChecksums  int
	revokedInCall int
}

// revokeLeaked sends keys (whole keys, one a line, nothing else) to the
// engine's revoke/leaked with reason.
func (l *leaks) revokeLeaked(ctx context.Context, keys []string, reason string) (revokeResult, error) {
	res := revokeResult{revoked: map[string]bool{}}
	sec, err := l.g.client.Logical().WriteWithContext(ctx, l.g.cfg.Mount+"/revoke/leaked", map[string]any{
		"text":   strings.Join(keys, "\n") + "\n",
		"reason": reason,
	})
	if err != nil {
		return res, engineError(l.g.cfg.Mount, err)
	}
	if sec == nil || sec.Data == nil {
		return res, fmt.Errorf("%s/revoke/leaked returned no data", l.g.cfg.Mount)
	}
	for field, dst := range map[string]*int{
		"revoked_count":         &res.revokedInCall,
		"unknown_count":         &res.unknown,
		"already_revoked_count": &res.alreadyEnded,
		"bad_checksum_count":    &res.badChecksums,
	} {
		v, err := toInt(sec.Data[field])
		if err != nil {
			return res, fmt.Errorf("%s/revoke/leaked: %s: %v", l.g.cfg.Mount, field, err)
		}
		*dst = v
	}
	ids, _ := sec.Data["revoked"].([]any)
	for _, id := range ids {
		if s, ok := id.(string); ok {
			res.revoked[s] = true
		}
	}
	if len(res.revoked) != res.revokedInCall {
		return res, fmt.Errorf("%s/revoke/leaked: revoked_count %d but %d key_ids", l.g.cfg.Mount, res.revokedInCall, len(res.revoked))
	}
	return res, nil
}

// engineError says what to do when Vault refuses the gateway's token.
func engineError(mount string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return fmt.Errorf("permission denied on %s/revoke/leaked (403): the gateway's token needs update on it; add examples/gateway/leaks-policy.hcl to its policies", mount)
	}
	return fmt.Errorf("%s/revoke/leaked: %s", mount, shortErr(err))
}

// reportLimiter is a token bucket per source (an IPv4 address, or an IPv6
// /64: one host is usually given a whole /64).
type reportLimiter struct {
	mu      sync.Mutex
	perMin  int
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxSources bounds the limiter's memory; past it, buckets that are full
// again (idle for a minute) are dropped, and if none is, the oldest go.
const maxSources = 100000

func newReportLimiter(perMin int) *reportLimiter {
	return &reportLimiter{perMin: perMin, buckets: map[string]*bucket{}}
}

// allow takes one token from source's bucket, or says how long until one
// is there.
func (r *reportLimiter) allow(source string, now time.Time) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rate := float64(r.perMin) / 60 // tokens per second
	if len(r.buckets) >= maxSources && now.Sub(r.swept) > time.Second {
		r.swept = now
		for k, b := range r.buckets {
			if now.Sub(b.at) >= time.Minute {
				delete(r.buckets, k)
			}
		}
		for k := range r.buckets { // still full: drop arbitrary ones
			if len(r.buckets) < maxSources*9/10 {
				break
			}
			delete(r.buckets, k)
		}
	}
	b := r.buckets[source]
	if b == nil {
		b = &bucket{tokens: float64(r.perMin), at: now}
		r.buckets[source] = b
	}
	b.tokens = min(float64(r.perMin), b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

func toInt(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	case int:
		return n, nil
	case nil:
		return 0, errors.New("missing")
	}
	return 0, fmt.Errorf("unexpected type %T", v)
}
