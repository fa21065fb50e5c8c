package verifier

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
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
			v.cache.dropWhere(func(e *entry) bool { return e.res.Role == role })
			return
		}
		v.cache.clear()
	case kind == wire.KindRevokedEnvironment && id == "":
		if env, _ := m["environment"].(string); env != "" {
			v.logger.Info("bulk revocation of an environment: dropping its cached keys", "environment", env)
			v.cache.dropWhere(func(e *entry) bool { return e.res.Environment == env || e.environment == env })
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
// applies it. Only a read that reached the feed's head counts as a
// successful read for staleness, dated when it was sent.
func (v *Verifier) poll(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for range maxFeedPages {
		sent := v.cfg.monotonic()
		more, err := v.pollOnce(ctx)
		if err != nil {
			return err
		}
		if !more {
			v.lastFeedOK.Store(int64(sent))
			v.polled.Store(true)
			return nil
		}
	}
	return nil
}

// pollOnce reads one reply from the cursor and applies it; more is true when
// the reply was a full page. v.mu is held.
func (v *Verifier) pollOnce(ctx context.Context) (more bool, err error) {
	var query map[string][]string
	if v.cursor != "" {
		query = map[string][]string{wire.FeedSince: {v.cursor}}
	}
	secret, err := v.cfg.Client.Logical().ReadWithDataWithContext(ctx, v.cfg.Mount+"/revocations", query)
	if err != nil {
		return false, err
	}
	if secret == nil {
		return false, errors.New("empty reply from revocations")
	}
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
	if next != "" {
		v.cursor = next
	}
	return sequenced >= feedPage, nil
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
