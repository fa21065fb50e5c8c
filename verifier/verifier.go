// Package verifier is the local verifier an API service embeds to check
// cryptokeys API keys on every request without a round trip per request.
//
// It rejects malformed keys offline, asks the engine's verify path on a
// cache miss, caches positive answers (bounded, with a TTL), and enforces
// scopes, source CIDRs and rate limits locally on a hit. It follows the
// engine's revocations feed and drops revoked, rotated-out and suspended
// keys from its cache. Against an engine that answers blocking reads (its
// replies carry wait_max) it keeps one read held at the head of the feed,
// so a revocation reaches it as soon as the engine writes it; against one
// that does not, it polls every PollInterval (250 ms by default). When the
// feed says it was reset, skips
// a sequence number, or sends a flush, it drops its whole cache. When it
// has not been caught up with the feed for longer than MaxStaleness
// (measured on the monotonic clock, so wall-clock steps change nothing) it
// fails closed: every request is refused with UNAVAILABLE until the feed is
// back. Usage it counts is reported to the engine in batches, each entry
// with the usage ticket of the engine's last VALID answer for the key, so
// keys/<key_id> stays true.
//
// Keys the engine answered NOT_FOUND for are remembered for 2 s, and each
// source address may cause only so many NOT_FOUND answers
// (NotFoundRate, NotFoundBurst): past that its cache misses are answered
// RATE_LIMITED without asking the engine, so forged well-formed keys do not
// become load on Vault.
//
// Signed requests (hmac and ed25519 keys) always go to the engine: the
// verifier holds no signing secrets.
package verifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"golang.org/x/time/rate"
)

// CodeUnavailable is the code the verifier adds to the engine's: the
// engine or its revocation feed could not be reached for longer than
// MaxStaleness, and the verifier fails closed.
const CodeUnavailable = wire.CodeUnavailable

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
	// the X-Cryptokeys-Api-Key header, instead of a write: cheaper for
	// Vault and the engine (docs/performance.md), because for a write Vault makes two
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
	// PollInterval is how often the revocations feed is read from an engine
	// without blocking reads, and the pause after a failed read. Default
	// 250 ms. Against an engine with them, a read is held for
	// MaxStaleness/2 (in whole seconds, at most the engine's wait_max) and
	// the next sent as soon as it is answered.
	PollInterval time.Duration
	// MaxStaleness is how long the verifier keeps answering without a
	// successful feed read before failing closed. Default 5 s.
	MaxStaleness time.Duration
	// UsageInterval is how often usage is reported. Default 10 s.
	UsageInterval time.Duration
	// NotFoundRate and NotFoundBurst bound the NOT_FOUND answers one
	// source address (an IPv4 address or an IPv6 /64) may cause: a token
	// bucket of NotFoundBurst (default 20) refilled at NotFoundRate per
	// second (default 5). Once a source has spent it, its requests that
	// the cache cannot answer get RATE_LIMITED (with RetryAfter) without
	// asking the engine (keys it has cached still verify). Requests without SourceIP are not
	// limited this way.
	NotFoundRate  float64
	NotFoundBurst int
	// Now is the wall clock, used for cache lifetimes and key expiry;
	// tests inject one. Default time.Now. Staleness is measured on the
	// monotonic clock, never on Now.
	Now    func() time.Time
	Logger hclog.Logger

	// monotonic is the clock staleness and the NOT_FOUND cache use: time
	// elapsed since some fixed start. Default time.Since(start); tests
	// inject one.
	monotonic func() time.Duration
}

// Request is what an API service knows about one incoming request.
type Request struct {
	APIKey   string
	Scopes   []string
	SourceIP string
	// Signed requests only.
	Signature, Timestamp, Method, Path, Body string
}

// Result is the verdict. Code is one of the engine's verify codes
// (wire.Codes) or CodeUnavailable.
type Result struct {
	Valid       bool
	Code        string
	Message     string
	KeyID       string
	Role        string
	Environment string
	Scopes      []string
	ExpiresAt   time.Time
	// Labels is nil for a key without labels. Scopes and Labels may be
	// shared with other answers for the same key: read them, do not write.
	Labels     map[string]string
	RetryAfter time.Duration
	// Cached is true when the answer came from the local cache.
	Cached bool
}

// Verifier is safe for concurrent use.
type Verifier struct {
	cfg    Config
	logger hclog.Logger
	cache  *cache

	notFound *notFoundCache
	sources  *sourceLimits

	// start is the origin of cfg.monotonic. With the default clocks,
	// monoFromNow is set: time.Now carries a monotonic reading, so the
	// monotonic time of a request is now.Sub(start), with no second clock
	// read on the hot path.
	start       time.Time
	monoFromNow bool

	mu     sync.Mutex // guards cursor; held across a whole poll
	cursor string
	// lastFeedOK is when the verifier was last caught up with the feed: the
	// monotonic time (cfg.monotonic) at which the read that reached the
	// feed's head was sent.
	lastFeedOK atomic.Int64
	// wallHW is the latest wall time (unix nanoseconds) Verify has seen,
	// kept to the millisecond: see notBefore.
	wallHW atomic.Int64
	// waitMax is the longest blocking read the engine's last reply said it
	// answers, in seconds; 0 when it does not block (it is polled).
	waitMax atomic.Int64
	// noWaitUntil is when (cfg.monotonic) to try a blocking read again
	// after the engine refused one.
	noWaitUntil atomic.Int64
	// polled is set once a read reached the feed's head.
	polled atomic.Bool
	// cursorSeen is cursor for Status, which must not wait for mu (held
	// across a blocking read).
	cursorSeen atomic.Pointer[string]

	// misses counts requests the cache did not answer. Hits are counted
	// without a shared counter on the read path: each entry counts its
	// uses (which usage reports need anyway), the cache what retired
	// entries had, and refusedFromCache the cache's own refusals
	// (IP_NOT_ALLOWED, RATE_LIMITED); Status adds them up.
	misses, refusedFromCache atomic.Uint64

	// usage holds counts of entries that left the cache before their
	// usage was reported.
	usageMu sync.Mutex
	usage   map[string]*usageCount
	// countingSince is when the uses not yet handed to a report began to
	// be counted (the start of the previous ReportUsage, or New). usageMu.
	countingSince time.Time

	stop chan struct{}
	done sync.WaitGroup
}

type usageCount struct {
	count    uint64
	last     time.Time
	sourceIP string
	// others are the other source addresses of these uses, with when each
	// was last seen (unix nanoseconds), at most maxSources.
	others map[string]int64
	// since is when counting these uses began: the previous report.
	since time.Time
	// ticket is the newest usage ticket seen for the key, ticketAt when
	// it was received (monotonic nanoseconds).
	ticket   string
	ticketAt int64
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
	if cfg.NotFoundRate <= 0 {
		cfg.NotFoundRate = 5
	}
	if cfg.NotFoundBurst <= 0 {
		cfg.NotFoundBurst = 20
	}
	start := time.Now() // carries a monotonic reading
	monoFromNow := cfg.Now == nil && cfg.monotonic == nil
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.monotonic == nil {
		cfg.monotonic = func() time.Duration { return time.Since(start) }
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	v := &Verifier{
		cfg:      cfg,
		logger:   cfg.Logger,
		cache:    newCache(cfg.CacheSize),
		notFound: newNotFoundCache(),
		sources:  newSourceLimits(cfg.NotFoundRate, cfg.NotFoundBurst),
		usage:    map[string]*usageCount{},
		stop:     make(chan struct{}),

		start:       start,
		monoFromNow: monoFromNow,
	}
	v.cache.evicted = v.keepUsage
	v.countingSince = cfg.Now()
	if err := v.poll(ctx); err != nil {
		return nil, fmt.Errorf("verifier: reading the revocations feed: %w", err)
	}
	v.done.Add(3)
	// Close ends a blocking read in flight.
	followCtx, cancel := context.WithCancel(context.Background())
	go func() {
		defer v.done.Done()
		<-v.stop
		cancel()
	}()
	go v.follow(followCtx)
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
//
// The cached path reads the clock once, takes no lock and allocates
// nothing.
func (v *Verifier) Verify(ctx context.Context, req Request) (Result, error) {
	key, err := keyformat.Parse(req.APIKey)
	if err != nil {
		return Result{Code: wire.CodeMalformed, Message: err.Error()}, nil
	}
	if v.cfg.Environment != "" && key.Environment != v.cfg.Environment {
		return Result{Code: wire.CodeEnvironmentMismatch, Message: "key belongs to another environment"}, nil
	}
	now := v.cfg.Now()
	if v.stale(now) {
		return Result{Code: CodeUnavailable, Message: ErrStale.Error()}, ErrStale
	}
	// Expiry and cache lifetimes compare wall times; staleness (above) is
	// monotonic and reads now's own monotonic reading, so only what
	// follows gets the held wall clock.
	now = v.notBefore(now)
	if req.Signature == "" {
		if e := v.cache.get(key.KeyID); e != nil && e.matches(key, secretHash(key)) {
			if res, ok := v.fromCache(e, req, now); ok {
				return res, nil
			}
		}
	}
	v.misses.Add(1)
	return v.askEngine(ctx, key, req, now)
}

// notBefore holds the wall clock at the latest time Verify has seen when
// the wall clock steps back (NTP, a VM restored): a cached key whose end
// this verifier has seen pass must not verify again because the clock now
// reads earlier. The engine's clock does the same (vaultplugin's
// neverBackwards). The high-water mark is written at most once a
// millisecond, so parallel verifies rarely write the shared word.
func (v *Verifier) notBefore(now time.Time) time.Time {
	n := now.UnixNano()
	l := v.wallHW.Load()
	if n < l {
		return time.Unix(0, l)
	}
	if n-l > int64(time.Millisecond) {
		v.wallHW.CompareAndSwap(l, n)
	}
	return now
}

// stale reports whether the verifier has not been caught up with the feed
// for longer than MaxStaleness, on the monotonic clock (never on now's wall
// reading).
func (v *Verifier) stale(now time.Time) bool {
	var mono time.Duration
	if v.monoFromNow {
		mono = now.Sub(v.start) // both carry monotonic readings
	} else {
		mono = v.cfg.monotonic()
	}
	return int64(mono)-v.lastFeedOK.Load() > int64(v.cfg.MaxStaleness)
}

// fromCache answers from a cached positive verdict for the presented key
// (e matches it) when it covers the request. ok is false when the engine
// must be asked.
func (v *Verifier) fromCache(e *entry, req Request, now time.Time) (Result, bool) {
	if !now.Before(e.cachedUntil) || !now.Before(e.expiresAt) {
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
	if len(e.cidrs) > 0 && !wire.SourceAllowed(req.SourceIP, e.cidrs) {
		res.Valid, res.Code, res.Message = false, wire.CodeIPNotAllowed, "source_ip is not in the key's allowed_cidrs"
		v.refusedFromCache.Add(1)
		return res, true
	}
	if e.limiter != nil {
		if r := e.limiter.ReserveN(now, 1); r.DelayFrom(now) > 0 {
			res.RetryAfter = r.DelayFrom(now)
			r.CancelAt(now)
			res.Valid, res.Code, res.Message = false, wire.CodeRateLimited, "rate limit exceeded"
			v.refusedFromCache.Add(1)
			return res, true
		}
	}
	e.countUse(now, req.SourceIP)
	return res, true
}

func (v *Verifier) askEngine(ctx context.Context, key keyformat.Key, req Request, now time.Time) (Result, error) {
	h := secretHash(key)
	mono := v.cfg.monotonic()
	if v.notFound.has(key.KeyID, key.Prefix, key.Environment, h, mono) {
		return Result{Code: wire.CodeNotFound, Message: "no such key in this mount", Cached: true}, nil
	}
	// RATE_LIMITED, not NOT_FOUND: a real key not yet cached, sent from an
	// address an attacker shares (NAT, a proxy that hides clients), must be
	// told to retry, never that it does not exist.
	if over, wait := v.sources.exhausted(req.SourceIP, now); over {
		return Result{Code: wire.CodeRateLimited, Message: "too many unknown keys from this source; retry later", RetryAfter: wait}, nil
	}
	// Taken before the request: a VALID reply is cached only if the feed
	// dropped nothing while it was in flight.
	gen := v.cache.generation()
	vr := wire.VerifyRequest{
		APIKey: req.APIKey, Scopes: req.Scopes, Environment: v.cfg.Environment, SourceIP: req.SourceIP,
		Signature: req.Signature, Timestamp: req.Timestamp, Method: req.Method, Path: req.Path, Body: req.Body,
	}
	var secret *api.Secret
	var err error
	if v.cfg.VerifyByRead && req.Signature == "" {
		secret, err = v.cfg.Client.Logical().ReadWithRequest(ctx, api.NewLogicalReadRequest(v.cfg.Mount+"/verify", vr.Query(), http.Header{wire.VerifyHeader: {req.APIKey}}))
	} else {
		secret, err = v.cfg.Client.Logical().WriteWithContext(ctx, v.cfg.Mount+"/verify", vr.Data())
	}
	if err == nil && secret == nil {
		err = errors.New("empty reply")
	}
	var reply wire.VerifyResponse
	if err == nil {
		reply, err = wire.Decode[wire.VerifyResponse](secret.Data)
	}
	if err != nil {
		return Result{Code: CodeUnavailable, Message: "engine unreachable"}, fmt.Errorf("verifier: asking the engine: %w", err)
	}
	res, facts := verdictOf(reply)
	switch res.Code {
	case wire.CodeNotFound:
		// Only this answer is remembered as NOT_FOUND, for this very key.
		v.notFound.put(key.KeyID, key.Prefix, key.Environment, h, mono)
		v.sources.spend(req.SourceIP, now)
		v.cache.dropIf(key.KeyID, h)
	case wire.CodeRevoked, wire.CodeExpired, wire.CodeSuspended:
		v.notFound.forget(key.KeyID)
		v.cache.dropIf(key.KeyID, h)
	default:
		v.notFound.forget(key.KeyID)
	}
	if res.Valid && req.Signature == "" && res.KeyID == key.KeyID {
		e := newEntry(res, facts, req.Scopes, now.Add(v.cfg.CacheTTL))
		e.prefix, e.environment, e.secretHash = intern(key.Prefix), intern(key.Environment), h
		e.ticketAt = int64(v.cfg.monotonic())
		v.cache.put(e.keyID, e, gen, now)
	}
	return res, nil
}

// maxReportBatch bounds the entries of one usage report (the engine takes
// at most 10,000 per request).
const maxReportBatch = 1000

// ReportUsage sends the usage counted from cache hits to the engine, in
// batches of at most maxReportBatch entries, each with the newest usage
// ticket the engine gave for its key. A key used from several source
// addresses since the last report takes one entry per address (the engine's
// new-source detection sees each; every other address counts one use, the
// last address the rest), and every entry says since when it was counted
// (counted_since: the previous report), so the engine can tell a rate. A
// batch the engine refuses as a bad request (400) is dropped, with a
// warning: sending it again would be refused again. Any other failure keeps
// the unsent counts for the next report.
func (v *Verifier) ReportUsage(ctx context.Context) error {
	v.cache.each(v.keepUsage)
	v.usageMu.Lock()
	pending := v.usage
	v.usage = map[string]*usageCount{}
	v.countingSince = v.cfg.Now()
	v.usageMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	var errs []error
	for len(ids) > 0 {
		var batch []string
		report := wire.UsageRequest{}
		for len(ids) > 0 {
			entries := usageEntries(ids[0], pending[ids[0]])
			if len(report.Reports) > 0 && len(report.Reports)+len(entries) > maxReportBatch {
				break
			}
			batch, ids = append(batch, ids[0]), ids[1:]
			report.Reports = append(report.Reports, entries...)
		}
		secret, err := v.cfg.Client.Logical().WriteWithContext(ctx, v.cfg.Mount+"/usage", report.Data())
		var re *api.ResponseError
		switch {
		case errors.As(err, &re) && re.StatusCode == http.StatusBadRequest:
			// Counts and status only: entries carry tickets.
			v.logger.Warn("usage report refused by the engine as a bad request; dropping it", "entries", len(report.Reports), "status", re.StatusCode)
			errs = append(errs, fmt.Errorf("verifier: usage report of %d entries refused (400); dropped", len(report.Reports)))
		case err != nil:
			// Keep the counts of this and every unsent batch for the next
			// attempt.
			v.usageMu.Lock()
			for _, id := range append(batch, ids...) {
				v.mergeUse(id, pending[id])
			}
			v.usageMu.Unlock()
			return errors.Join(append(errs, err)...)
		default:
			if secret != nil {
				if r, _ := wire.Decode[wire.UsageReply](secret.Data); r.Rejected > 0 {
					v.logger.Warn("usage report entries rejected by the engine (ticket expired or key not live)", "rejected", r.Rejected, "entries", len(report.Reports))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// usageEntries are the report entries of one key: the last source first
// (the engine takes the newest last_used_at as the key's last source),
// then one use for each other source, newest first, at most maxReportSources in
// all and never more entries than uses.
func usageEntries(id string, u *usageCount) []wire.UsageReport {
	type src struct {
		ip string
		at int64
	}
	others := make([]src, 0, len(u.others))
	for ip, at := range u.others {
		others = append(others, src{ip, at})
	}
	slices.SortFunc(others, func(a, b src) int { return cmp.Compare(b.at, a.at) })
	others = others[:min(len(others), maxReportSources-1, int(min(u.count-1, uint64(maxReportSources))))]
	// Empty fields are left out (wire.UsageRequest.Data): an engine that
	// issues no tickets also refuses the ticket field.
	entry := func(n uint64, at time.Time, ip string) wire.UsageReport {
		r := wire.UsageReport{KeyID: id, Count: n, LastUsedAt: at.UTC().Format(time.RFC3339Nano), SourceIP: ip, Ticket: u.ticket}
		if !u.since.IsZero() && !u.since.After(at) {
			r.CountedSince = u.since.UTC().Format(time.RFC3339Nano)
		}
		return r
	}
	out := []wire.UsageReport{entry(u.count-uint64(len(others)), u.last, u.sourceIP)}
	for _, o := range others {
		at := time.Unix(0, o.at)
		if at.After(u.last) {
			at = u.last
		}
		out = append(out, entry(1, at, o.ip))
	}
	return out
}

// keepUsage moves an entry's unreported uses into the next report.
func (v *Verifier) keepUsage(keyID string, e *entry) {
	n, last, ip, others := e.takeUsage()
	if n == 0 {
		return
	}
	v.usageMu.Lock()
	v.addUse(keyID, n, last, ip, e.ticket, e.ticketAt)
	v.addSources(keyID, others)
	v.usageMu.Unlock()
}

// mergeUse puts back the counts of a report that could not be sent.
// usageMu is held.
func (v *Verifier) mergeUse(keyID string, u *usageCount) {
	v.addUse(keyID, u.count, u.last, u.sourceIP, u.ticket, u.ticketAt)
	v.addSources(keyID, u.others)
	if cur := v.usage[keyID]; !u.since.IsZero() && u.since.Before(cur.since) {
		cur.since = u.since
	}
}

// addUse needs usageMu held.
func (v *Verifier) addUse(keyID string, n uint64, at time.Time, sourceIP, ticket string, ticketAt int64) {
	u := v.usage[keyID]
	if u == nil {
		u = &usageCount{since: v.countingSince}
		v.usage[keyID] = u
	}
	u.count += n
	if at.After(u.last) {
		if sourceIP != "" && u.sourceIP != "" && u.sourceIP != sourceIP {
			v.addSourcesLocked(u, map[string]int64{u.sourceIP: u.last.UnixNano()})
		}
		u.last = at
		if sourceIP != "" {
			u.sourceIP = sourceIP
		}
	} else if sourceIP != "" && sourceIP != u.sourceIP {
		v.addSourcesLocked(u, map[string]int64{sourceIP: at.UnixNano()})
	}
	if ticket != "" && (u.ticket == "" || ticketAt >= u.ticketAt) {
		u.ticket, u.ticketAt = ticket, ticketAt
	}
}

// addSources adds other source addresses to a key's pending usage (after
// addUse). usageMu is held.
func (v *Verifier) addSources(keyID string, others map[string]int64) {
	if u := v.usage[keyID]; u != nil {
		v.addSourcesLocked(u, others)
	}
}

func (v *Verifier) addSourcesLocked(u *usageCount, others map[string]int64) {
	for ip, at := range others {
		if ip == u.sourceIP {
			continue
		}
		if u.others == nil {
			u.others = map[string]int64{}
		}
		if old, ok := u.others[ip]; ok || len(u.others) < maxReportSources {
			u.others[ip] = max(old, at)
		}
	}
}

// facts are what the cache needs beyond the Result.
type facts struct {
	cidrs     []netip.Prefix
	rateLimit float64
	rateBurst int
	ticket    string
}

// verdictOf is the engine's answer as a Result, and what the cache needs.
func verdictOf(d wire.VerifyResponse) (Result, facts) {
	r := Result{Valid: d.Valid, Code: d.Code, Message: d.Message}
	var f facts
	if d.RetryAfterMs > 0 {
		r.RetryAfter = time.Duration(d.RetryAfterMs) * time.Millisecond
	}
	f.ticket = d.UsageTicket
	k := d.VerifiedKey
	if k == nil {
		return r, f
	}
	r.KeyID, r.Role, r.Environment = k.KeyID, k.Role, k.Environment
	r.Scopes = wire.NonNil(k.Scopes)
	if k.ExpiresAt != "" {
		r.ExpiresAt, _ = time.Parse(time.RFC3339, k.ExpiresAt)
	}
	// No labels is nil (as in a Result without a key), not an empty map
	// per cached key.
	if len(k.Labels) > 0 {
		r.Labels = k.Labels
	}
	for _, c := range k.AllowedCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			f.cidrs = append(f.cidrs, p)
		}
	}
	f.rateLimit, f.rateBurst = k.RateLimit, k.RateBurst
	return r, f
}

// internAll is a copy of s (never nil for a non-nil s) holding interned
// strings.
func internAll(s []string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = intern(v)
	}
	return out
}

// newEntry caches the verdict r. Its key_id must be a string of its own
// (the engine's, not a substring of the presented key): it is the cache's
// map key.
func newEntry(r Result, f facts, approved []string, cachedUntil time.Time) *entry {
	e := &entry{
		keyID: r.KeyID, role: intern(r.Role), keyEnv: intern(r.Environment), scopes: internAll(r.Scopes),
		labels: r.Labels, expiresAt: r.ExpiresAt, cachedUntil: cachedUntil,
		cidrs: f.cidrs, approved: internAll(approved), ticket: f.ticket,
	}
	if f.rateLimit > 0 {
		burst := f.rateBurst
		if burst <= 0 {
			burst = int(f.rateLimit + 0.999999)
		}
		e.limiter = rate.NewLimiter(rate.Limit(f.rateLimit), burst)
	}
	return e
}
