package gateway

import (
	"context"
	"errors"
	"fmt"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Public revocation, POST /leaks/report: anyone who finds a key sends the
// text holding it, without a Vault token, and every key of this mount in
// the text is revoked with reason "reported". It is safe to offer: whoever
// holds a key can already use it, and revoking it only takes that away;
// the engine revokes only whole keys (key_id and secret), so knowing a
// key_id (public) revokes nothing. The answer depends on the text alone
// (counts of well-formed keys and look-alikes), never on what the engine
// knows, and the revocation runs after the answer, so neither the answer
// nor its timing tells whether a key existed.

const (
	// MaxReportBody bounds a report: a paste, not a file.
	MaxReportBody = 64 << 10
	// MaxReportKeys bounds the well-formed keys of one report (each costs
	// the engine a storage read); more is refused, whatever they are.
	MaxReportKeys = 100
	// ReportReason is the revocation reason of reported keys.
	ReportReason = "reported"
	// maxPendingReports bounds the reports being revoked at once; past it
	// the receiver answers 503 (to everyone alike).
	maxPendingReports = 64
	// reportRevokeLimit bounds one report's revocation.
	reportRevokeLimit = 30 * time.Second
)

// reportAnswer is the whole answer to an accepted report.
type reportAnswer struct {
	Status string `json:"status"`
	// Keys is how many distinct well-formed keys of this mount's prefix
	// (shape and checksum) the text holds: each is revoked if it exists.
	Keys int `json:"keys"`
	// OtherPrefix counts well-formed keys of other prefixes (another
	// service's): ignored.
	OtherPrefix int `json:"other_prefix"`
	// LookAlikes counts key-shaped strings whose checksum fails.
	LookAlikes int    `json:"look_alikes"`
	Message    string `json:"message"`
}

const reportMessage = "every key of this service in the text is being revoked; this answer is the same whether or not any of them existed"

func (l *leaks) reportRefuse(w http.ResponseWriter, status int, outcome, code, message string) {
	l.alerts.WithLabelValues("report", outcome).Inc()
	writeJSON(w, status, map[string]string{"code": code, "message": message})
}

// serveReport is POST /leaks/report. The body is any text (a paste, a log
// line, a JSON document); the source's rate limit is taken before it is
// read.
func (l *leaks) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		l.reportRefuse(w, http.StatusMethodNotAllowed, "bad_request", "METHOD_NOT_ALLOWED", "POST the text that holds the key")
		return
	}
	ip := l.g.clientIP(r)
	if ok, wait := l.reports.allow(reportSource(ip), time.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(wait)))
		l.reportRefuse(w, http.StatusTooManyRequests, "rate_limited", wire.CodeRateLimited, "too many reports from this address; try again later")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			l.reportRefuse(w, http.StatusRequestEntityTooLarge, "too_large", "BODY_TOO_LARGE", fmt.Sprintf("a report may be at most %d bytes: send the lines that hold the keys", MaxReportBody))
			return
		}
		l.reportRefuse(w, http.StatusBadRequest, "bad_request", "BAD_REQUEST", "the request body could not be read")
		return
	}
	ans := reportAnswer{Status: "accepted", Message: reportMessage}
	var keys []string
	seen := map[string]bool{}
	for _, m := range keyformat.Find(body) {
		switch {
		case !m.ChecksumOK:
			ans.LookAlikes++
		case m.Key.Prefix != l.cfg.KeyPrefix:
			if raw := m.Key.Raw(); !seen[raw] {
				seen[raw] = true
				ans.OtherPrefix++
			}
		default:
			if raw := m.Key.Raw(); !seen[raw] {
				seen[raw] = true
				keys = append(keys, raw)
			}
		}
	}
	ans.Keys = len(keys)
	if len(keys) > MaxReportKeys {
		l.reportRefuse(w, http.StatusRequestEntityTooLarge, "too_large", "TOO_MANY_KEYS", fmt.Sprintf("a report may hold at most %d keys: send several reports", MaxReportKeys))
		return
	}
	if len(keys) > 0 {
		select {
		case l.pending <- struct{}{}:
		default:
			w.Header().Set("Retry-After", "5")
			l.reportRefuse(w, http.StatusServiceUnavailable, "unavailable", "BUSY", "too many reports are being handled; try again shortly")
			return
		}
		l.tokens.WithLabelValues("report", "queued").Add(float64(len(keys)))
		go l.revokeReported(keys, ip)
	}
	l.alerts.WithLabelValues("report", "accepted").Inc()
	writeJSON(w, http.StatusAccepted, ans)
}

// revokeReported revokes a report's keys after it was answered.
func (l *leaks) revokeReported(keys []string, ip string) {
	defer func() { <-l.pending }()
	ctx, cancel := context.WithTimeout(context.Background(), reportRevokeLimit)
	defer cancel()
	res, err := l.revokeLeaked(ctx, keys, ReportReason)
	if err != nil {
		l.g.log.Error("public report: revocation failed", "keys", len(keys), "from", ip, "error", err)
		return
	}
	ids := make([]string, 0, len(res.revoked))
	for id := range res.revoked {
		ids = append(ids, id)
	}
	l.tokens.WithLabelValues("report", "revoked").Add(float64(len(ids)))
	l.tokens.WithLabelValues("report", "already_ended").Add(float64(res.alreadyEnded))
	l.tokens.WithLabelValues("report", "unknown").Add(float64(res.unknown))
	if len(ids) > 0 {
		l.g.log.Warn("public report: revoked keys", "key_ids", ids, "from", ip)
	} else {
		l.g.log.Info("public report: nothing to revoke", "keys", len(keys), "unknown", res.unknown, "already_ended", res.alreadyEnded, "from", ip)
	}
}

// reportSource is the rate limit's unit for a client address: the address
// itself for IPv4, its /64 for IPv6 (a host usually holds a whole /64).
func reportSource(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
