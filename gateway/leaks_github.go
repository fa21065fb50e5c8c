package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// GitHub's secret-scanning partner program, as GitHub documents it: a POST
// whose body is a JSON array of {token, type, url, source}, signed with
// ECDSA P-256 over SHA-256 of the raw body (base64 of the DER signature in
// Github-Public-Key-Signature), under the key named by
// Github-Public-Key-Identifier in the public-keys document
// ({"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}). The
// answer is GitHub's feedback format: a JSON array of {token_hash,
// token_type, label} with label true_positive or false_positive.
const (
	HeaderGitHubKeyID     = "Github-Public-Key-Identifier"
	HeaderGitHubSignature = "Github-Public-Key-Signature"
)

const (
	// MaxGitHubBody bounds an alert's body. GitHub sends many matches in
	// one request; a match is about 250 bytes, so this is some 16,000.
	MaxGitHubBody = 4 << 20
	// githubReplyWithin is how long the gateway works on an alert before
	// it answers with the labels it has (GitHub gives partners that send
	// feedback 30 s, others less); revocations not done by then go on in
	// the background.
	githubReplyWithin = 8 * time.Second
	// githubRevokeParallel is how many revoke/leaked calls one alert runs
	// at once (one per alert URL and source, as each gets its own reason).
	githubRevokeParallel = 8
	// githubBackgroundLimit bounds the revocations left running after the
	// answer.
	githubBackgroundLimit = 2 * time.Minute
	// maxKeysDocument bounds the public-keys document.
	maxKeysDocument = 1 << 20
	// keysMaxAge: a cached document older than this is fetched again
	// (conditionally, with its ETag) before use, so a key GitHub withdrew
	// stops being trusted within the hour.
	keysMaxAge = time.Hour
	// defaultKeysRefetch is the least time between fetches for an unknown
	// identifier: a flood of made-up identifiers costs one fetch a minute
	// (GitHub rate-limits unauthenticated API calls to 60 an hour).
	defaultKeysRefetch = time.Minute
	// keysRetry is the least time between fetches while no document could
	// be fetched at all.
	keysRetry = 5 * time.Second
)

// Feedback labels.
const (
	LabelTruePositive  = "true_positive"
	LabelFalsePositive = "false_positive"
)

// githubMatch is one element of an alert's body.
type githubMatch struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// githubFeedback is one element of the answer. The token is sent back
// hashed (SHA-256, lowercase hex), never raw: the answer may be logged.
type githubFeedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

var errUnknownKeyID = errors.New("the public-keys document has no key with this identifier")

// githubKeys is the public-keys document, fetched when first needed, kept,
// refreshed after keysMaxAge, and fetched again (at most every refetch)
// for an identifier it does not hold, which is how GitHub's key rotation
// reaches the gateway.
type githubKeys struct {
	url     string
	refetch time.Duration
	client  *http.Client

	mu      sync.Mutex
	keys    map[string]*ecdsa.PublicKey
	etag    string
	fetched time.Time // last fetch that answered (200 or 304)
	tried   time.Time // last attempt
}

func newGitHubKeys(url string, refetch time.Duration) *githubKeys {
	if refetch <= 0 {
		refetch = defaultKeysRefetch
	}
	return &githubKeys{url: url, refetch: refetch, client: &http.Client{Timeout: 10 * time.Second}}
}

// key returns the public key named id.
func (k *githubKeys) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	pub := k.keys[id]
	var fetchErr error
	switch {
	case k.keys == nil:
		if k.tried.IsZero() || now.Sub(k.tried) >= keysRetry {
			fetchErr = k.fetch(ctx, now)
		} else {
			fetchErr = errors.New("the public-keys document could not be fetched a moment ago")
		}
	case now.Sub(k.fetched) >= keysMaxAge && now.Sub(k.tried) >= keysRetry:
		// Stale: refresh; on failure keep trusting the old document
		// rather than refusing GitHub while its API is down.
		fetchErr = k.fetch(ctx, now)
	case pub == nil && now.Sub(k.tried) >= k.refetch:
		fetchErr = k.fetch(ctx, now)
	}
	if k.keys == nil {
		return nil, fetchErr
	}
	if pub = k.keys[id]; pub == nil {
		return nil, errUnknownKeyID
	}
	return pub, nil
}

// fetch reads the document (holding k.mu, so concurrent alerts wait for
// one fetch instead of each making their own).
func (k *githubKeys) fetch(ctx context.Context, now time.Time) error {
	k.tried = now
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cryptokeys-gateway")
	if k.etag != "" && k.keys != nil {
		req.Header.Set("If-None-Match", k.etag)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && k.keys != nil {
		k.fetched = now
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", k.url, resp.Status)
	}
	var doc struct {
		PublicKeys []struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		} `json:"public_keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxKeysDocument)).Decode(&doc); err != nil {
		return fmt.Errorf("reading %s: %w", k.url, err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, pk := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(pk.Key))
		if block == nil || pk.KeyIdentifier == "" {
			continue
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		// Every listed key is accepted, current or not: GitHub lists the
		// previous key while alerts signed with it may still arrive.
		if ec, ok := parsed.(*ecdsa.PublicKey); ok && ec.Curve == elliptic.P256() {
			keys[pk.KeyIdentifier] = ec
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%s holds no ECDSA P-256 key", k.url)
	}
	k.keys, k.etag, k.fetched = keys, resp.Header.Get("ETag"), now
	return nil
}

// verifyGitHub checks an alert's signature over the raw body.
func verifyGitHub(pub *ecdsa.PublicKey, body []byte, sig string) bool {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(der) == 0 || len(der) > 128 {
		return false
	}
	digest := sha256.Sum256(body)
	return ecdsa.VerifyASN1(pub, digest[:], der)
}

func (l *leaks) githubRefuse(w http.ResponseWriter, status int, outcome, code, message string) {
	l.alerts.WithLabelValues("github", outcome).Inc()
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "10")
	}
	writeJSON(w, status, map[string]string{"code": code, "message": message})
}

// serveGitHub is POST /leaks/github. The signature is checked before the
// body is parsed or anything is sent to the engine.
func (l *leaks) serveGitHub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		l.githubRefuse(w, http.StatusMethodNotAllowed, "bad_request", "METHOD_NOT_ALLOWED", "POST GitHub's secret-scanning alerts here")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxGitHubBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			l.githubRefuse(w, http.StatusRequestEntityTooLarge, "too_large", "BODY_TOO_LARGE", fmt.Sprintf("an alert may be at most %d bytes", MaxGitHubBody))
			return
		}
		l.githubRefuse(w, http.StatusBadRequest, "bad_request", "BAD_REQUEST", "the request body could not be read")
		return
	}
	keyID, sig := strings.TrimSpace(r.Header.Get(HeaderGitHubKeyID)), r.Header.Get(HeaderGitHubSignature)
	if keyID == "" || sig == "" {
		l.githubRefuse(w, http.StatusUnauthorized, "bad_signature", "UNSIGNED", "an alert needs the "+HeaderGitHubKeyID+" and "+HeaderGitHubSignature+" headers")
		return
	}
	pub, err := l.gh.key(r.Context(), keyID)
	switch {
	case errors.Is(err, errUnknownKeyID):
		l.g.log.Warn("GitHub alert refused: unknown public key identifier", "key_identifier", printable(keyID), "from", l.g.clientIP(r))
		l.githubRefuse(w, http.StatusUnauthorized, "unknown_key_id", "UNKNOWN_KEY_IDENTIFIER", "no GitHub public key has this identifier")
		return
	case err != nil:
		l.g.log.Error("GitHub alert not checked: cannot read GitHub's public keys", "url", l.cfg.GitHubPublicKeysURL, "error", err)
		l.githubRefuse(w, http.StatusServiceUnavailable, "unavailable", "KEYS_UNAVAILABLE", "GitHub's public keys cannot be read; try again later")
		return
	}
	if !verifyGitHub(pub, body, sig) {
		l.g.log.Warn("GitHub alert refused: bad signature", "key_identifier", printable(keyID), "from", l.g.clientIP(r))
		l.githubRefuse(w, http.StatusUnauthorized, "bad_signature", wire.CodeBadSignature, "the signature does not verify")
		return
	}
	var matches []githubMatch
	if err := json.Unmarshal(body, &matches); err != nil {
		l.githubRefuse(w, http.StatusBadRequest, "bad_request", "BAD_REQUEST", "the body must be a JSON array of {token, type, url, source}")
		return
	}
	start := time.Now()
	fb, err := l.handleAlert(r.Context(), matches)
	if err != nil {
		l.g.log.Error("GitHub alert: revocation failed; answering 503 so GitHub sends it again", "matches", len(matches), "error", err)
		l.githubRefuse(w, http.StatusServiceUnavailable, "unavailable", wire.CodeUnavailable, "the keys could not be revoked now; send the alert again")
		return
	}
	l.alerts.WithLabelValues("github", "accepted").Inc()
	l.g.log.Info("GitHub alert handled", "matches", len(matches), "labels", len(fb), "took", time.Since(start).Round(time.Millisecond))
	if fb == nil {
		fb = []githubFeedback{}
	}
	b, _ := json.Marshal(fb)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// keyIn reads the key a token holds: the token itself, or, when GitHub's
// match took in a neighbour (a letter of an escape such as \n, or of %20),
// the key keyformat.Find finds in it, preferring one of prefix. ok is false
// when the token holds no well-formed key.
func keyIn(token, prefix string) (k keyformat.Key, ok bool) {
	if k, err := keyformat.Parse(token); err == nil {
		return k, true
	}
	if len(token) > 4*keyformat.MaxKeyLen {
		return keyformat.Key{}, false
	}
	for _, m := range keyformat.Find([]byte(token)) {
		if m.ChecksumOK && (!ok || m.Key.Prefix == prefix && k.Prefix != prefix) {
			k, ok = m.Key, true
		}
	}
	return k, ok
}

// alertToken is one distinct token of an alert.
type alertToken struct {
	// raw is the key the token holds (the token itself, or the key found in
	// it); hash is the SHA-256 of the token as GitHub sent it.
	raw, typ, hash string
	key            keyformat.Key
	reason         string
	// label is "" until known, and stays "" for another mount's key.
	label string
	// same is the token with the same raw value under another type,
	// whose label this one shares.
	same *alertToken
}

// handleAlert revokes the alert's keys and labels every token. A token that
// is not a well-formed key (shape and checksum) is a false positive; a
// well-formed key of another prefix belongs to another mount and is left
// out of the answer (this gateway cannot tell whether it is real); a key of
// this prefix is a true positive when the engine knows it (revoked now, or
// already revoked or expired) and a false positive when it does not.
func (l *leaks) handleAlert(ctx context.Context, matches []githubMatch) ([]githubFeedback, error) {
	var toks, toRevoke []*alertToken
	byTypeAndHash := map[string]bool{}
	byRaw := map[string]*alertToken{}
	for _, m := range matches {
		h := sha256.Sum256([]byte(m.Token))
		t := &alertToken{raw: m.Token, typ: m.Type, hash: hex.EncodeToString(h[:])}
		if byTypeAndHash[t.typ+"\x00"+t.hash] {
			continue // the same token found twice: revoked once, labelled once
		}
		byTypeAndHash[t.typ+"\x00"+t.hash] = true
		toks = append(toks, t)
		k, ok := keyIn(m.Token, l.cfg.KeyPrefix)
		switch {
		case !ok:
			t.label = LabelFalsePositive
			l.tokens.WithLabelValues("github", "malformed").Inc()
		case k.Prefix != l.cfg.KeyPrefix:
			l.tokens.WithLabelValues("github", "other_prefix").Inc()
		case byRaw[k.Raw()] != nil:
			t.same = byRaw[k.Raw()]
		default:
			t.key, t.reason = k, githubReason(m.URL, m.Source)
			t.raw = k.Raw()
			byRaw[t.raw] = t
			toRevoke = append(toRevoke, t)
		}
	}
	if err := l.revokeAlertTokens(ctx, toRevoke); err != nil {
		return nil, err
	}
	l.labelMu.Lock()
	defer l.labelMu.Unlock()
	var out []githubFeedback
	for _, t := range toks {
		label := t.label
		if t.same != nil {
			label = t.same.label
		}
		if label != "" {
			out = append(out, githubFeedback{TokenHash: t.hash, TokenType: t.typ, Label: label})
		}
	}
	return out, nil
}

// revokeAlertTokens revokes toks through revoke/leaked, one call per
// reason (alert URL and source) and at most one token per key_id in a call
// (so the key_ids the engine revoked name the tokens), several calls at
// once. It returns when every token is labelled, or when githubReplyWithin
// has passed (the rest goes on in the background and is not labelled), or
// with the first error.
func (l *leaks) revokeAlertTokens(ctx context.Context, toks []*alertToken) error {
	if len(toks) == 0 {
		return nil
	}
	type batch struct {
		reason string
		toks   []*alertToken
	}
	var batches []*batch
	open := map[string][]*batch{} // reason -> batches, to find one without the key_id
	ids := map[*batch]map[string]bool{}
	for _, t := range toks {
		var b *batch
		for _, cand := range open[t.reason] {
			if !ids[cand][t.key.KeyID] && len(cand.toks) < maxTokensPerCall {
				b = cand
				break
			}
		}
		if b == nil {
			b = &batch{reason: t.reason}
			batches = append(batches, b)
			open[t.reason] = append(open[t.reason], b)
			ids[b] = map[string]bool{}
		}
		b.toks = append(b.toks, t)
		ids[b][t.key.KeyID] = true
	}

	// The work outlives the request if it must: GitHub's answer cannot
	// wait for it, but the keys must still be revoked.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), githubBackgroundLimit)
	jobs := make(chan *batch)
	errc := make(chan error, len(batches))
	var wg sync.WaitGroup
	for i := 0; i < min(githubRevokeParallel, len(batches)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				errc <- l.revokeAndLabel(work, b.reason, b.toks)
			}
		}()
	}
	go func() {
		for _, b := range batches {
			jobs <- b
		}
		close(jobs)
		wg.Wait()
		cancel()
		close(errc)
	}()
	deadline := time.NewTimer(githubReplyWithin)
	defer deadline.Stop()
	for {
		select {
		case err, ok := <-errc:
			if !ok {
				return nil
			}
			if err != nil {
				return err
			}
		case <-deadline.C:
			l.g.log.Warn("GitHub alert: answering before every revocation is done; the rest goes on in the background and is not labelled", "tokens", len(toks), "calls", len(batches))
			go func() {
				for err := range errc {
					if err != nil {
						l.g.log.Error("GitHub alert: background revocation failed", "error", err)
					}
				}
			}()
			return nil
		}
	}
}

// maxTokensPerCall keeps one revoke/leaked text far below the engine's
// limit (4 MiB; a key is at most 76 bytes).
const maxTokensPerCall = 5000

// revokeAndLabel revokes toks (all with one reason and distinct key_ids)
// and labels them. Tokens the call did not revoke are unknown or already
// ended; the engine answers only how many of each, so when both occur the
// rest is asked again in halves (nothing more gets revoked by asking
// again: the live ones were revoked by the first call).
func (l *leaks) revokeAndLabel(ctx context.Context, reason string, toks []*alertToken) error {
	keys := make([]string, len(toks))
	for i, t := range toks {
		keys[i] = t.raw
	}
	res, err := l.revokeLeaked(ctx, keys, reason)
	if err != nil {
		return err
	}
	var rest []*alertToken
	l.labelMu.Lock()
	for _, t := range toks {
		if res.revoked[t.key.KeyID] {
			t.label = LabelTruePositive
			l.tokens.WithLabelValues("github", "revoked").Inc()
		} else {
			rest = append(rest, t)
		}
	}
	switch {
	case len(rest) == 0:
	case res.alreadyEnded == 0:
		for _, t := range rest {
			t.label = LabelFalsePositive
		}
		l.tokens.WithLabelValues("github", "unknown").Add(float64(len(rest)))
		rest = nil
	case res.unknown == 0:
		for _, t := range rest {
			t.label = LabelTruePositive
		}
		l.tokens.WithLabelValues("github", "already_ended").Add(float64(len(rest)))
		rest = nil
	}
	l.labelMu.Unlock()
	if len(rest) == 0 {
		return nil
	}
	half := len(rest) / 2
	if err := l.revokeAndLabel(ctx, reason, rest[:half]); err != nil {
		return err
	}
	return l.revokeAndLabel(ctx, reason, rest[half:])
}

// longRun is what the engine's reason rule would redact (a run of 24 or
// more base62 characters, which could be key material): a commit SHA in
// the alert's URL is one. Such runs are cut to their first 12 characters,
// which still name the commit.
var longRun = regexp.MustCompile(`[0-9A-Za-z]{24,}`)

// maxReasonLen is the engine's limit on a revocation reason.
const maxReasonLen = 512

// githubReason is the revocation reason of a key found by GitHub: where
// it was found, within the engine's rules for a reason (at most 512
// characters, no control characters, no key-like runs).
func githubReason(url, source string) string {
	src := strings.ToLower(strings.TrimSpace(source))
	if src == "" || len(src) > 40 || strings.IndexFunc(src, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r == '_') }) >= 0 {
		src = "unknown"
	}
	u := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, url)
	u = longRun.ReplaceAllStringFunc(u, func(s string) string { return s[:12] + "…" })
	reason := "leaked: found by GitHub secret scanning in " + src
	if u != "" {
		reason += " at " + u
	}
	if len(reason) > maxReasonLen {
		cut := maxReasonLen - len("…")
		for cut > 0 && !utf8Start(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + "…"
	}
	return reason
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// printable shortens and cleans a header value for a log line.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
