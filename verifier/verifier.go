// Package verifier is the local verifier an API service embeds to check
// cryptokeys API keys on every request without a round trip per request.
//
// It rejects malformed keys offline, asks the engine's verify path on a
// cache miss, caches positive answers (bounded, with a TTL), and enforces
// scopes, source CIDRs and rate limits locally on a hit. It follows the
// engine's revocations feed (every PollInterval, 250 ms by default) and drops
// revoked, rotated-out and suspended keys from its cache, so a revocation
// reaches it within about a second. When it cannot read the feed for longer
// than MaxStaleness it fails closed: every request is refused with
// UNAVAILABLE until the feed is back. Usage it counts is reported to the
// engine in batches, so keys/<key_id> stays true.
//
// Signed requests (hmac and ed25519 keys) always go to the engine: the
// verifier holds no signing secrets.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"golang.org/x/time/rate"
)

// Codes the verifier adds to the engine's.
const (
	// CodeUnavailable: the engine or its revocation feed could not be
	// reached for longer than MaxStaleness; the verifier fails closed.
	CodeUnavailable = "UNAVAILABLE"
)

// ErrStale is returned with CodeUnavailable.
var ErrStale = errors.New("verifier: revocation feed is stale; failing closed")

// Config configures a Verifier. Client and its token need: update on
// <mount>/verify and <mount>/usage, read on <mount>/revocations (and read
// on <mount>/verify with VerifyByRead).
type Config struct {
	Client *api.Client
	// Mount is the engine's mount path. Default "cryptokeys".
	Mount string
	// VerifyByRead asks the engine on a cache miss with a read, the key in
	// the X-Cryptokeys-Api-Key header, instead of a write: about a third
	// cheaper for Vault and the engine, because for a write Vault makes two
	// more round trips to the plugin (an existence check, and a second
	// Type() call for a JSON body). The mount must pass that header
	// through (cryptokeys_secrets_engine mounts do). Signed requests are
	// always asked with a write: their body does not belong in a URL.
	VerifyByRead bool
	// Environment, when set, refuses keys of other environments offline.
	Environment string
	// CacheSize bounds cached keys. Default 100,000.
	CacheSize int
	// CacheTTL is how long a positive answer is reused. Default 1 minute.
	CacheTTL time.Duration
	// PollInterval is how often the revocations feed is read. Default 250 ms.
	PollInterval time.Duration
	// MaxStaleness is how long the verifier keeps answering without a
	// successful feed read before failing closed. Default 5 s.
	MaxStaleness time.Duration
	// UsageInterval is how often usage is reported. Default 10 s.
	UsageInterval time.Duration
	// Now is the clock; tests inject one. Default time.Now.
	Now    func() time.Time
	Logger hclog.Logger
}

// Request is what an API service knows about one incoming request.
type Request struct {
	APIKey   string
	Scopes   []string
	SourceIP string
	// Signed requests only.
	Signature, Timestamp, Method, Path, Body string
}

// Result is the verdict. Code is one of the engine's verify codes or
// CodeUnavailable.
type Result struct {
	Valid       bool
	Code        string
	Message     string
	KeyID       string
	Role        string
	Environment string
	Scopes      []string
	ExpiresAt   time.Time
	Metadata    map[string]string
	RetryAfter  time.Duration
	// Cached is true when the answer came from the local cache.
	Cached bool
}

// Verifier is safe for concurrent use.
type Verifier struct {
	cfg    Config
	logger hclog.Logger
	cache  *cache

	mu     sync.Mutex // guards cursor
	cursor string
	// lastFeedOK is when the feed was last read, in unix nanoseconds.
	lastFeedOK atomic.Int64

	// usage holds counts of entries that left the cache before their
	// usage was reported.
	usageMu sync.Mutex
	usage   map[string]*usageCount

	stop chan struct{}
	done sync.WaitGroup
}

type usageCount struct {
	count    uint64
	last     time.Time
	sourceIP string
}

// New starts a verifier: it reads the feed's current cursor (so it fails if
// the engine is unreachable) and starts polling.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Client == nil {
		return nil, errors.New("verifier: Config.Client is required")
	}
	if cfg.Mount == "" {
		cfg.Mount = "cryptokeys"
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = 5 * time.Second
	}
	if cfg.UsageInterval <= 0 {
		cfg.UsageInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	v := &Verifier{
		cfg:    cfg,
		logger: cfg.Logger,
		cache:  newCache(cfg.CacheSize),
		usage:  map[string]*usageCount{},
		stop:   make(chan struct{}),
	}
	v.cache.evicted = v.keepUsage
	if err := v.poll(ctx); err != nil {
		return nil, fmt.Errorf("verifier: reading the revocations feed: %w", err)
	}
	v.done.Add(2)
	go v.loop(v.cfg.PollInterval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), v.cfg.MaxStaleness)
		defer cancel()
		if err := v.poll(ctx); err != nil {
			v.logger.Warn("reading revocations feed", "error", err)
		}
	})
	go v.loop(v.cfg.UsageInterval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.ReportUsage(ctx); err != nil {
			v.logger.Warn("reporting usage", "error", err)
		}
	})
	return v, nil
}

func (v *Verifier) loop(every time.Duration, f func()) {
	defer v.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// Close stops polling and reports the usage counted so far.
func (v *Verifier) Close(ctx context.Context) error {
	select {
	case <-v.stop:
		return nil
	default:
	}
	close(v.stop)
	v.done.Wait()
	return v.ReportUsage(ctx)
}

// Verify decides one request.
func (v *Verifier) Verify(ctx context.Context, req Request) (Result, error) {
	key, err := keyformat.Parse(req.APIKey)
	if err != nil {
		return Result{Code: "MALFORMED", Message: err.Error()}, nil
	}
	if v.cfg.Environment != "" && key.Environment != v.cfg.Environment {
		return Result{Code: "ENVIRONMENT_MISMATCH", Message: "key belongs to another environment"}, nil
	}
	now := v.cfg.Now()
	if v.stale(now) {
		return Result{Code: CodeUnavailable, Message: ErrStale.Error()}, ErrStale
	}
	if req.Signature == "" {
		if res, ok := v.fromCache(key, req, now); ok {
			return res, nil
		}
	}
	return v.askEngine(ctx, key, req, now)
}

func (v *Verifier) stale(now time.Time) bool {
	return now.UnixNano()-v.lastFeedOK.Load() > int64(v.cfg.MaxStaleness)
}

// fromCache answers from a cached positive verdict when it covers the
// request. ok is false when the engine must be asked.
func (v *Verifier) fromCache(key keyformat.Key, req Request, now time.Time) (Result, bool) {
	e := v.cache.get(key.KeyID)
	if e == nil || !now.Before(e.cachedUntil) || !now.Before(e.expiresAt) || !e.matches(key, secretHash(key)) {
		return Result{}, false
	}
	// Only scopes the engine has approved for this key are granted
	// locally: the engine also applies rules (signed scopes) the cache
	// does not know.
	for _, s := range req.Scopes {
		if !slices.Contains(e.approved, s) {
			return Result{}, false
		}
	}
	res := e.result()
	res.Cached = true
	if len(e.cidrs) > 0 && !allowed(req.SourceIP, e.cidrs) {
		res.Valid, res.Code, res.Message = false, "IP_NOT_ALLOWED", "source_ip is not in the key's allowed_cidrs"
		return res, true
	}
	if e.limiter != nil {
		if r := e.limiter.ReserveN(now, 1); r.DelayFrom(now) > 0 {
			res.RetryAfter = r.DelayFrom(now)
			r.CancelAt(now)
			res.Valid, res.Code, res.Message = false, "RATE_LIMITED", "rate limit exceeded"
			return res, true
		}
	}
	e.countUse(now, req.SourceIP)
	return res, true
}

func (v *Verifier) askEngine(ctx context.Context, key keyformat.Key, req Request, now time.Time) (Result, error) {
	body := map[string]any{"api_key": req.APIKey}
	if len(req.Scopes) > 0 {
		body["scopes"] = req.Scopes
	}
	for k, val := range map[string]string{
		"environment": v.cfg.Environment, "source_ip": req.SourceIP, "signature": req.Signature,
		"timestamp": req.Timestamp, "method": req.Method, "path": req.Path, "body": req.Body,
	} {
		if val != "" {
			body[k] = val
		}
	}
	var secret *api.Secret
	var err error
	if v.cfg.VerifyByRead && req.Signature == "" {
		secret, err = v.cfg.Client.Logical().ReadWithRequest(ctx, api.NewLogicalReadRequest(v.cfg.Mount+"/verify", verifyQuery(body), http.Header{keyformat.VerifyHeader: {req.APIKey}}))
	} else {
		secret, err = v.cfg.Client.Logical().WriteWithContext(ctx, v.cfg.Mount+"/verify", body)
	}
	if err != nil || secret == nil {
		if err == nil {
			err = errors.New("empty reply")
		}
		return Result{Code: CodeUnavailable, Message: "engine unreachable"}, fmt.Errorf("verifier: asking the engine: %w", err)
	}
	res, facts := parseVerdict(secret.Data)
	if res.Valid && req.Signature == "" && res.KeyID == key.KeyID {
		e := newEntry(res, facts, req.Scopes, now.Add(v.cfg.CacheTTL))
		e.prefix, e.environment, e.secretHash = key.Prefix, key.Environment, secretHash(key)
		v.cache.put(key.KeyID, e)
	}
	return res, nil
}

// verifyQuery is a verify body as the query string of a verify read: every
// field but the key, scopes comma-separated.
func verifyQuery(body map[string]any) url.Values {
	q := url.Values{}
	for k, val := range body {
		switch val := val.(type) {
		case string:
			if k != "api_key" {
				q.Set(k, val)
			}
		case []string:
			q.Set(k, strings.Join(val, ","))
		}
	}
	return q
}

// ReportUsage sends the usage counted from cache hits to the engine.
func (v *Verifier) ReportUsage(ctx context.Context) error {
	v.cache.each(v.keepUsage)
	v.usageMu.Lock()
	batch := v.usage
	v.usage = map[string]*usageCount{}
	v.usageMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	reports := make([]map[string]any, 0, len(batch))
	for id, u := range batch {
		r := map[string]any{"key_id": id, "count": u.count, "last_used_at": u.last.UTC().Format(time.RFC3339Nano)}
		if u.sourceIP != "" {
			r["source_ip"] = u.sourceIP
		}
		reports = append(reports, r)
	}
	if _, err := v.cfg.Client.Logical().WriteWithContext(ctx, v.cfg.Mount+"/usage", map[string]any{"reports": reports}); err != nil {
		// Keep the counts for the next attempt.
		v.usageMu.Lock()
		for id, u := range batch {
			v.addUse(id, u.count, u.last, u.sourceIP)
		}
		v.usageMu.Unlock()
		return err
	}
	return nil
}

// keepUsage moves an entry's unreported uses into the next report.
func (v *Verifier) keepUsage(keyID string, e *entry) {
	n, last, ip := e.takeUsage()
	if n == 0 {
		return
	}
	v.usageMu.Lock()
	v.addUse(keyID, n, last, ip)
	v.usageMu.Unlock()
}

// addUse needs usageMu held.
func (v *Verifier) addUse(keyID string, n uint64, at time.Time, sourceIP string) {
	u := v.usage[keyID]
	if u == nil {
		u = &usageCount{}
		v.usage[keyID] = u
	}
	u.count += n
	if at.After(u.last) {
		u.last = at
		if sourceIP != "" {
			u.sourceIP = sourceIP
		}
	}
}

// poll reads the revocations feed once and applies it.
func (v *Verifier) poll(ctx context.Context) error {
	v.mu.Lock()
	cursor := v.cursor
	v.mu.Unlock()
	var query map[string][]string
	if cursor != "" {
		query = map[string][]string{"since": {cursor}}
	}
	secret, err := v.cfg.Client.Logical().ReadWithDataWithContext(ctx, v.cfg.Mount+"/revocations", query)
	if err != nil {
		return err
	}
	if secret == nil {
		return errors.New("empty reply from revocations")
	}
	next, _ := secret.Data["cursor"].(string)
	if reset, _ := secret.Data["reset"].(bool); reset {
		v.cache.clear()
	}
	if evs, ok := secret.Data["events"].([]any); ok {
		for _, ev := range evs {
			if m, ok := ev.(map[string]any); ok {
				if id, _ := m["key_id"].(string); id != "" {
					v.cache.drop(id)
				}
			}
		}
	}
	v.mu.Lock()
	if next != "" {
		v.cursor = next
	}
	v.mu.Unlock()
	v.lastFeedOK.Store(v.cfg.Now().UnixNano())
	return nil
}

func allowed(sourceIP string, cidrs []netip.Prefix) bool {
	a, err := netip.ParseAddr(sourceIP)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range cidrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// facts are what the cache needs beyond the Result.
type facts struct {
	cidrs     []netip.Prefix
	rateLimit float64
	rateBurst int
}

func parseVerdict(d map[string]any) (Result, facts) {
	var r Result
	var f facts
	r.Valid, _ = d["valid"].(bool)
	r.Code, _ = d["code"].(string)
	r.Message, _ = d["message"].(string)
	r.KeyID, _ = d["key_id"].(string)
	r.Role, _ = d["role"].(string)
	r.Environment, _ = d["environment"].(string)
	r.Scopes = stringList(d["scopes"])
	if s, _ := d["expires_at"].(string); s != "" {
		r.ExpiresAt, _ = time.Parse(time.RFC3339, s)
	}
	if md, ok := d["metadata"].(map[string]any); ok {
		r.Metadata = make(map[string]string, len(md))
		for k, val := range md {
			r.Metadata[k], _ = val.(string)
		}
	}
	if ms := number(d["retry_after_ms"]); ms > 0 {
		r.RetryAfter = time.Duration(ms) * time.Millisecond
	}
	for _, c := range stringList(d["allowed_cidrs"]) {
		if p, err := netip.ParsePrefix(c); err == nil {
			f.cidrs = append(f.cidrs, p)
		}
	}
	f.rateLimit = number(d["rate_limit"])
	f.rateBurst = int(number(d["rate_burst"]))
	return r, f
}

func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case interface{ Float64() (float64, error) }: // json.Number
		f, _ := n.Float64()
		return f
	}
	return 0
}

func newEntry(r Result, f facts, approved []string, cachedUntil time.Time) *entry {
	e := &entry{res: r, cidrs: f.cidrs, expiresAt: r.ExpiresAt, cachedUntil: cachedUntil, approved: slices.Clone(approved)}
	if f.rateLimit > 0 {
		burst := f.rateBurst
		if burst <= 0 {
			burst = int(f.rateLimit + 0.999999)
		}
		e.limiter = rate.NewLimiter(rate.Limit(f.rateLimit), burst)
	}
	return e
}
