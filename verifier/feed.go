package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/api"
)

// The revocations feed.
//
// The engine numbers feed events: a cursor is "<epoch>.<seq>" (epoch names
// the mount's feed, seq the last event a reply covers) and a reply's events
// carry seq, contiguous from the cursor's seq+1. Events with seq 0 are out
// of band (suspensions the engine holds in memory and has not written yet)
// and are sent with every reply. The verifier drops its whole cache when it
// cannot be sure it saw every event since its cursor: on reset, on a gap
// (the first sequenced event is not cursor seq+1, a hole between events,
// or a reply cursor that is not the last event's seq), when the epoch or
// the cursor format changes, on a flush event, and on any event of a kind
// it does not know. A bulk revocation event (revoked_role,
// revoked_environment) drops every cached key of that role or environment. An engine of the older format (a cursor without a '.', events
// without seq) is followed as before: reset drops everything, each event
// drops its key.
const (
	// feedPage is the most events the engine sends in one reply; a full
	// page means more may be waiting.
	feedPage = 1000
	// maxFeedPages bounds the pages one poll reads to catch up.
	maxFeedPages = 20
)

// perKeyKinds are the kinds that name the one key they concern.
var perKeyKinds = map[string]bool{wire.KindRevoked: true, wire.KindRotated: true, wire.KindSuspended: true}

// apply applies one event to the cache. A kind this verifier does not know
// drops everything (so does any event that names no key and is not a bulk
// revocation naming its role or environment): a newer engine's event can
// only make fewer keys valid.
func (v *Verifier) apply(m map[string]any) {
	kind, _ := m["kind"].(string)
	id, _ := m["key_id"].(string)
	switch {
	case perKeyKinds[kind] && id != "":
		v.cache.drop(id)
	case kind == wire.KindRevokedRole && id == "":
		if role, _ := m["role"].(string); role != "" {
			v.logger.Info("bulk revocation of a role: dropping its cached keys", "role", role)
			v.cache.dropWhere(func(e *entry) bool { return e.role == role })
			return
		}
		v.cache.clear()
	case kind == wire.KindRevokedEnvironment && id == "":
		if env, _ := m["environment"].(string); env != "" {
			v.logger.Info("bulk revocation of an environment: dropping its cached keys", "environment", env)
			v.cache.dropWhere(func(e *entry) bool { return e.keyEnv == env || e.environment == env })
			return
		}
		v.cache.clear()
	default:
		v.cache.clear()
	}
}

// feedCursor is a parsed cursor; seq is false for a legacy or empty one.
type feedCursor struct {
	epoch string
	n     uint64
	seq   bool
}

func parseCursor(c string) (feedCursor, bool) {
	i := strings.LastIndexByte(c, '.')
	if i < 0 {
		return feedCursor{}, true
	}
	n, err := strconv.ParseUint(c[i+1:], 10, 64)
	if i == 0 || err != nil {
		return feedCursor{}, false
	}
	return feedCursor{epoch: c[:i], n: n, seq: true}, true
}

// poll reads the feed until caught up (at most maxFeedPages replies) and
// applies it, without holding any read. Only a read that reached the feed's
// head counts as a successful read for staleness, dated when it was sent.
func (v *Verifier) poll(ctx context.Context) error {
	_, _, err := v.pollWait(ctx, 0)
	return err
}

// pollWait is poll whose first read is a blocking one of wait (0: none).
// held is true when that read came back empty, after the whole wait: the
// engine held it and nothing happened; news when a reply carried a
// sequenced event or a reset.
//
// Staleness is dated from when the read that reached the head was sent,
// except for such a held read: the engine starts its wait after the read
// was sent and answered empty only when it ended, so the verifier was
// caught up at least wait after sending it. A held read that comes back
// sooner, or with anything in it, is dated when it was sent. A read that
// never comes back dates nothing: a hung Vault fails closed after
// MaxStaleness as before.
func (v *Verifier) pollWait(ctx context.Context, wait time.Duration) (held, news bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for range maxFeedPages {
		sent := v.cfg.monotonic()
		r, err := v.pollOnce(ctx, wait)
		if err != nil {
			return false, news, err
		}
		news = news || r.news
		if !r.more {
			caughtUp := sent
			held = wait > 0 && r.quiet && v.cfg.monotonic()-sent >= wait
			if held {
				caughtUp += wait
			}
			v.lastFeedOK.Store(int64(caughtUp))
			v.polled.Store(true)
			// A verifier that serves nothing still polls: its held wall
			// clock (notBefore) moves with every read, so a step back
			// after an idle spell cannot bring back a key whose end passed.
			v.notBefore(v.cfg.Now())
			return held, news, nil
		}
		wait = 0 // the next pages are there already
	}
	return false, news, nil
}

// errNoWait is the engine refusing the wait field: an engine that predates
// blocking reads.
var errNoWait = errors.New("the engine refused a blocking read")

// retryWaitAfter is how long a verifier whose engine refused a blocking read
// polls before trying one again.
const retryWaitAfter = 10 * time.Minute

// pollReply is what one read told.
type pollReply struct {
	// more: the reply was a full page.
	more bool
	// quiet: no event (sequenced or not) and no reset.
	quiet bool
	// news: a sequenced event or a reset.
	news bool
}

// pollOnce reads one reply from the cursor (held up to wait when wait > 0)
// and applies it. v.mu is held.
func (v *Verifier) pollOnce(ctx context.Context, wait time.Duration) (pollReply, error) {
	var query map[string][]string
	if v.cursor != "" {
		query = map[string][]string{wire.FeedSince: {v.cursor}}
		if wait > 0 {
			query[wire.FeedWait] = []string{strconv.Itoa(int(wait / time.Second))}
		}
	}
	secret, err := v.cfg.Client.Logical().ReadWithDataWithContext(ctx, v.cfg.Mount+"/revocations", query)
	if err != nil {
		var re *api.ResponseError
		if wait > 0 && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			// An engine without blocking reads refuses the unknown field:
			// poll it, and try again after a while (it may be upgraded).
			v.noWaitUntil.Store(int64(v.cfg.monotonic() + retryWaitAfter))
			return pollReply{}, fmt.Errorf("%w: %w", errNoWait, err)
		}
		return pollReply{}, err
	}
	if secret == nil {
		return pollReply{}, errors.New("empty reply from revocations")
	}
	v.waitMax.Store(waitMaxOf(secret.Data[wire.FeedWaitMax]))
	next, _ := secret.Data["cursor"].(string)
	evs, _ := secret.Data["events"].([]any)
	reset, _ := secret.Data["reset"].(bool)
	dropAll := reset
	if !dropAll && v.cursor != "" {
		dropAll = !v.follows(next, evs)
	}
	if dropAll {
		v.logger.Info("revocations feed reset or skipped events; dropping every cached key", "reset", reset)
		v.cache.clear()
	}
	sequenced := 0
	for _, ev := range evs {
		m, ok := ev.(map[string]any)
		if !ok {
			continue
		}
		if n, _ := eventSeq(m["seq"]); n > 0 {
			sequenced++
		}
		v.apply(m)
	}
	if next != "" && next != v.cursor {
		v.cursor = next
		v.cursorSeen.Store(&next)
	}
	return pollReply{more: sequenced >= feedPage, quiet: len(evs) == 0 && !reset, news: sequenced > 0 || dropAll}, nil
}

// waitMaxOf reads a reply's wait_max (seconds); 0 when the engine does not
// block.
func waitMaxOf(v any) int64 {
	n, ok := eventSeq(v)
	if !ok || n > 3600 {
		return 0
	}
	return int64(n)
}

// feedWait is the wait of the next blocking read: half of MaxStaleness in
// whole seconds, at most what the engine allows and below the client's own
// timeout; 0 (poll every PollInterval) when the engine does not block or
// that leaves less than a second.
//
// Half, because staleness is dated as pollWait says: between a held read
// dated sent+wait and the next one's reply lie that read's wait and two
// round trips, which must stay within MaxStaleness.
func (v *Verifier) feedWait() time.Duration {
	most := time.Duration(v.waitMax.Load()) * time.Second
	if most <= 0 || int64(v.cfg.monotonic()) < v.noWaitUntil.Load() {
		return 0
	}
	w := min(v.cfg.MaxStaleness/2, most)
	if t := v.cfg.Client.CloneConfig().Timeout; t > 0 {
		w = min(w, t-time.Second)
	}
	w = w.Truncate(time.Second)
	if w < time.Second {
		return 0
	}
	return w
}

// follow keeps the verifier caught up with the feed until Close: blocking
// reads back to back against an engine that answers them (a revocation
// reaches the verifier as soon as the engine writes it), else a poll every
// PollInterval. A failed read, or a held read the engine answered early
// with nothing new (it does so while it holds suspensions it has not
// written), waits PollInterval before the next, so the verifier never
// spins on the engine.
func (v *Verifier) follow(ctx context.Context) {
	defer v.done.Done()
	pause := func() bool {
		t := time.NewTimer(v.cfg.PollInterval)
		defer t.Stop()
		select {
		case <-v.stop:
			return false
		case <-t.C:
			return true
		}
	}
	for {
		wait := v.feedWait()
		if wait == 0 && !pause() {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, wait+v.cfg.MaxStaleness)
		sent := v.cfg.monotonic()
		held, news, err := v.pollWait(rctx, wait)
		cancel()
		select {
		case <-v.stop:
			return
		default:
		}
		switch {
		case errors.Is(err, errNoWait):
			v.logger.Info("the engine does not answer blocking reads of the revocations feed; polling it", "every", v.cfg.PollInterval)
			continue
		case err != nil:
			v.logger.Warn("reading revocations feed", "error", err)
		case wait == 0 || held || news || v.cfg.monotonic()-sent >= wait/2:
			continue
		}
		if wait > 0 && !pause() {
			return
		}
	}
}

// follows reports whether a reply (its cursor and events) continues from
// v.cursor without a gap. v.mu is held.
func (v *Verifier) follows(next string, evs []any) bool {
	since, ok := parseCursor(v.cursor)
	if !ok {
		return false
	}
	to, ok := parseCursor(next)
	if !ok || since.seq != to.seq {
		return false
	}
	if !since.seq {
		return true // the older format: nothing to check
	}
	if since.epoch != to.epoch {
		return false
	}
	last := since.n
	for _, ev := range evs {
		m, ok := ev.(map[string]any)
		if !ok {
			return false
		}
		n, ok := eventSeq(m["seq"])
		if !ok {
			return false
		}
		if n == 0 {
			continue // out of band
		}
		if n != last+1 {
			return false
		}
		last = n
	}
	return to.n == last
}

// eventSeq reads an event's seq; a missing one is 0 (out of band).
func eventSeq(v any) (uint64, bool) {
	switch n := v.(type) {
	case nil:
		return 0, true
	case interface{ String() string }: // json.Number
		u, err := strconv.ParseUint(n.String(), 10, 64)
		return u, err == nil
	case float64:
		if n < 0 || n != float64(uint64(n)) {
			return 0, false
		}
		return uint64(n), true
	}
	return 0, false
}
