package vaultplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// The revocations feed is a sequence: event n is stored at
// revocations/<n as 20 zero-padded digits>, n = 1, 2, 3 ... with no holes.
// A reader that has seen every event up to n asks for n+1, n+2 ... up to
// the head and so never misses one that became visible after its last read,
// whatever that event's timestamp (an earlier scheme keyed events by time,
// and an event stamped before a cursor but written after it was lost).
//
// One writer (the node that may write: the active node) allocates numbers
// under one mutex held across the allocation and the storage Put. head, the
// last number whose Put succeeded, advances only after success. A failed Put
// may still have committed (storage answered an error after writing), so the
// event is kept pending at its number with its exact bytes and written again,
// same number, same bytes, before any later event gets a number: a late
// commit only ever writes what is already there, and readers, who never read
// past head, see no holes.
//
// Other nodes learn of new events through Invalidate of revocations/<n>,
// which raises their head.

const (
	// feedSeqDigits is the width of a stored event's number.
	feedSeqDigits = 20
	// feedEpochFallback is the mount's epoch when Vault gave no BackendUUID
	// (unit tests' logical.TestBackendConfig leaves it empty).
	feedEpochFallback = "00000000"

	eventFlush = wire.KindFlush
)

// feedEpoch is the short stable id of a mount that cursors carry, so a
// cursor of another mount (or of this path on a mount that was disabled and
// enabled again) is recognised and answered with a reset.
func feedEpoch(backendUUID string) string {
	if backendUUID == "" {
		return feedEpochFallback
	}
	sum := sha256.Sum256([]byte(backendUUID))
	return hex.EncodeToString(sum[:4])
}

func feedKey(seq uint64) string {
	return fmt.Sprintf("%s%0*d", revocationPrefix, feedSeqDigits, seq)
}

// parseFeedName reads a stored event's name (without the prefix). Legacy
// time-keyed events ("<20 digits>-<key_id>") are not sequence numbers.
func parseFeedName(name string) (uint64, bool) {
	if len(name) != feedSeqDigits || strings.Trim(name, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(name, 10, 64)
	return n, err == nil && n > 0
}

type pendingEvent struct {
	seq   uint64
	value []byte
	ev    revocationEvent
}

// recentEvents is how many of the newest events a node keeps decoded in
// memory. A revocation wakes every reader held at the head, all at the same
// cursor; without this each of them would read the same event from storage
// (a round trip from the plugin to Vault), and for a fleet of verifiers
// those reads were most of the burst. An event's bytes never change once
// its Put succeeded (a failed one is rewritten with the same bytes), so a
// copy taken then, or read from storage below head, stays true.
const recentEvents = 1024

type feedLog struct {
	epoch string

	mu     sync.Mutex
	loaded bool
	head   uint64 // last event known to be in storage
	// tail is the lowest event storage still holds (head+1 when none):
	// tidy deletes from the low end, so every number in [tail, head] exists.
	tail    uint64
	pending *pendingEvent
	// recent holds event seq at recent[seq%recentEvents] when its Seq is
	// seq (see recentEvents).
	recent []revocationEvent
	// changed is closed (and replaced) whenever head advances, so a reader
	// can wait for an event newer than its cursor.
	changed chan struct{}
}

func newFeedLog() *feedLog {
	return &feedLog{epoch: feedEpochFallback, changed: make(chan struct{}), recent: make([]revocationEvent, recentEvents)}
}

// loadLocked reads head and tail from storage once: one List of the feed.
// f.mu must be held.
func (f *feedLog) loadLocked(ctx context.Context, s logical.Storage) error {
	if f.loaded {
		return nil
	}
	return f.relistLocked(ctx, s)
}

func (f *feedLog) relistLocked(ctx context.Context, s logical.Storage) error {
	names, err := s.List(ctx, revocationPrefix)
	if err != nil {
		return fmt.Errorf("listing the revocations feed: %w", err)
	}
	var lo, hi uint64
	for _, name := range names {
		n, ok := parseFeedName(name)
		if !ok {
			continue
		}
		if lo == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if f.pending != nil {
		// A pending event that committed is listed: it is the caller's to
		// confirm by writing it again, not head yet.
		if hi >= f.pending.seq {
			hi = f.pending.seq - 1
		}
	}
	f.raiseLocked(hi)
	// Storage is what was just listed: forget copies taken before (a
	// restore may have put other events under the same numbers).
	clear(f.recent)
	if lo == 0 || lo > f.head {
		lo = f.head + 1
	}
	if !f.loaded || lo > f.tail {
		f.tail = lo
	}
	f.loaded = true
	return nil
}

// raiseLocked advances head and wakes waiting readers. f.mu must be held.
func (f *feedLog) raiseLocked(seq uint64) {
	if seq <= f.head {
		return
	}
	// When the feed was empty (tail == head+1) the first new event is
	// the lowest kept, so tail needs no change.
	f.head = seq
	close(f.changed)
	f.changed = make(chan struct{})
}

// append writes ev as the next event and returns its number. A pending
// event from a failed write goes first; if that fails again ev is not
// written at all. Either way the caller gets the error.
func (f *feedLog) append(ctx context.Context, s logical.Storage, ev revocationEvent) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.loadLocked(ctx, s); err != nil {
		return 0, err
	}
	if err := f.flushPendingLocked(ctx, s); err != nil {
		return 0, err
	}
	ev.Seq = f.head + 1
	value, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: feedKey(ev.Seq), Value: value}); err != nil {
		f.pending = &pendingEvent{seq: ev.Seq, value: value, ev: ev}
		return 0, fmt.Errorf("writing revocations feed event %d: %w", ev.Seq, err)
	}
	f.rememberLocked(ev)
	f.raiseLocked(ev.Seq)
	return ev.Seq, nil
}

// flushPendingLocked writes a pending event again (same number, same bytes).
// f.mu must be held.
func (f *feedLog) flushPendingLocked(ctx context.Context, s logical.Storage) error {
	p := f.pending
	if p == nil {
		return nil
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: feedKey(p.seq), Value: p.value}); err != nil {
		return fmt.Errorf("writing revocations feed event %d again: %w", p.seq, err)
	}
	f.pending = nil
	f.rememberLocked(p.ev)
	f.raiseLocked(p.seq)
	return nil
}

// rememberLocked keeps a copy of an event that is in storage. f.mu must be
// held.
func (f *feedLog) rememberLocked(ev revocationEvent) {
	f.recent[ev.Seq%recentEvents] = ev
}

// remember keeps a copy of an event read from storage.
func (f *feedLog) remember(ev revocationEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rememberLocked(ev)
}

// recall appends to out the copies it holds of events from, from+1 ... up
// to head, at most limit in all, stopping at the first it does not hold.
func (f *feedLog) recall(out []revocationEvent, from, head uint64, limit int) []revocationEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	for seq := from; seq <= head && len(out) < limit; seq++ {
		ev := f.recent[seq%recentEvents]
		if ev.Seq != seq {
			break
		}
		out = append(out, ev)
	}
	return out
}

// retryPending writes a pending event again without waiting for the next
// event (periodic calls it), so a failed write heals on a quiet mount.
func (f *feedLog) retryPending(ctx context.Context, s logical.Storage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushPendingLocked(ctx, s)
}

// bounds returns head and tail, loading them on first use.
func (f *feedLog) bounds(ctx context.Context, s logical.Storage) (head, tail uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.loadLocked(ctx, s); err != nil {
		return 0, 0, err
	}
	return f.head, f.tail, nil
}

// refresh lists the feed again: a cursor above this node's head may come
// from a node whose writes have not been announced here yet.
func (f *feedLog) refresh(ctx context.Context, s logical.Storage) (head, tail uint64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.relistLocked(ctx, s); err != nil {
		return 0, 0, err
	}
	return f.head, f.tail, nil
}

// invalidated raises head when another node wrote event seq. A name that is
// not a sequence number (a legacy event being tidied) changes nothing; so
// does one below head (a delete by tidy).
func (f *feedLog) invalidated(name string) {
	seq, ok := parseFeedName(name)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recent[seq%recentEvents].Seq == seq {
		// Written by another node: read it from storage, not a copy.
		f.recent[seq%recentEvents] = revocationEvent{}
	}
	if f.loaded {
		f.raiseLocked(seq)
	}
}

// trimmed records that tidy deleted every event up to seq.
func (f *feedLog) trimmed(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq+1 > f.tail {
		f.tail = seq + 1
	}
}

// headChanged returns a channel closed when head next advances: the hook
// for a blocking read ("wait until there is an event after my cursor").
func (f *feedLog) headChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// feedCursor is a parsed "<epoch>.<seq>" cursor.
type feedCursor struct {
	epoch string
	seq   uint64
}

func (c feedCursor) String() string { return c.epoch + "." + strconv.FormatUint(c.seq, 10) }

// parseCursor reads a cursor. legacy is true for a cursor of the earlier
// time-keyed feed, which is answered with a reset; ok is false for anything
// else that is not a cursor.
func parseCursor(s string) (c feedCursor, legacy, ok bool) {
	if legacyCursor(s) {
		return feedCursor{}, true, true
	}
	epoch, seq, found := strings.Cut(s, ".")
	if !found || len(epoch) != len(feedEpochFallback) || strings.Trim(epoch, "0123456789abcdef") != "" ||
		seq == "" || len(seq) > feedSeqDigits || strings.Trim(seq, "0123456789") != "" {
		return feedCursor{}, false, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return feedCursor{}, false, false
	}
	return feedCursor{epoch: epoch, seq: n}, false, true
}

// legacyCursor matches the time-keyed cursors earlier builds handed out:
// 20 digits of unix nanoseconds, "-", and an optional key_id.
func legacyCursor(c string) bool {
	ts, keyID, ok := strings.Cut(c, "-")
	if !ok || len(ts) != 20 || strings.Trim(ts, "0123456789") != "" {
		return false
	}
	return keyID == "" || keyformat.ValidKeyID(keyID)
}

// feedRead is one reply of the feed.
type feedRead struct {
	events []revocationEvent
	cursor feedCursor
	reset  bool
}

// readFeed returns the events after since (at most limit), contiguous in
// number from since.seq+1. Its cost is one storage read per event returned
// (plus one List on this node's first read, or when since is ahead of what
// this node has heard of).
func (b *backend) readFeed(ctx context.Context, s logical.Storage, since string, limit int) (*feedRead, error) {
	head, tail, err := b.feed.bounds(ctx, s)
	if err != nil {
		return nil, err
	}
	current := feedCursor{epoch: b.feed.epoch, seq: head}
	if since == "" {
		return &feedRead{cursor: current}, nil
	}
	c, legacy, ok := parseCursor(since)
	if !ok {
		return nil, badField("since", "must be a cursor returned by this path (\"<epoch>.<seq>\")")
	}
	if legacy || c.epoch != b.feed.epoch {
		return &feedRead{cursor: current, reset: true}, nil
	}
	if c.seq > head {
		if head, tail, err = b.feed.refresh(ctx, s); err != nil {
			return nil, err
		}
		current.seq = head
		if c.seq > head {
			// Storage was restored, or the feed is gone.
			return &feedRead{cursor: current, reset: true}, nil
		}
	}
	if c.seq+1 < tail {
		// Events after the cursor were tidied.
		return &feedRead{cursor: current, reset: true}, nil
	}
	out := &feedRead{cursor: c}
	// The copies this node holds first (a burst of readers at one cursor
	// reads storage at most once), storage for the rest.
	out.events = b.feed.recall(nil, c.seq+1, head, limit)
	if n := len(out.events); n > 0 {
		out.cursor.seq = out.events[n-1].Seq
	}
	for seq := out.cursor.seq + 1; seq <= head && len(out.events) < limit; seq++ {
		e, err := s.Get(ctx, feedKey(seq))
		if err != nil {
			return nil, err
		}
		if e == nil {
			// Tidied while we read (or on another node since this one
			// last listed): the reader cannot have the whole sequence.
			return &feedRead{cursor: current, reset: true}, nil
		}
		var ev revocationEvent
		if err := e.DecodeJSON(&ev); err != nil {
			return nil, fmt.Errorf("decoding revocations feed event %d: %w", seq, err)
		}
		ev.Seq = seq
		b.feed.remember(ev)
		out.events = append(out.events, ev)
		out.cursor.seq = seq
	}
	return out, nil
}

// recordEvent appends an event to the feed, stamped with the time it is
// written. It is called after the record write the event describes; when it
// fails the key's cached record is dropped (the next verify reads storage)
// and the caller must return the error.
func (b *backend) recordEvent(ctx context.Context, s logical.Storage, ev revocationEvent) error {
	ev.At = b.now()
	if _, err := b.feed.append(ctx, s, ev); err != nil {
		if ev.KeyID != "" {
			b.cache.drop(ev.KeyID)
		}
		return err
	}
	return nil
}

// recordFlush writes a "flush" event: every local verifier drops its whole
// cache. Config writes that change what a cached answer may grant
// (signed_scopes, the scope catalog) call it after their own write.
func (b *backend) recordFlush(ctx context.Context, s logical.Storage) error {
	return b.recordEvent(ctx, s, revocationEvent{Kind: eventFlush})
}

// tidyEvents deletes feed events older than the feed keeps, lowest number
// first (never the newest: its number must survive a restart, or numbers
// would be reused), and every legacy time-keyed event.
func (b *backend) tidyEvents(ctx context.Context, s logical.Storage) (int, error) {
	names, err := s.List(ctx, revocationPrefix)
	if err != nil {
		return 0, err
	}
	head, _, err := b.feed.bounds(ctx, s)
	if err != nil {
		return 0, err
	}
	horizon := b.now().Add(-feedRetention)
	var seqs []uint64
	n := 0
	for _, name := range names {
		if seq, ok := parseFeedName(name); ok {
			seqs = append(seqs, seq)
			continue
		}
		if err := s.Delete(ctx, revocationPrefix+name); err != nil {
			return n, err
		}
		n++
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		if seq >= head {
			break
		}
		e, err := s.Get(ctx, feedKey(seq))
		if err != nil {
			return n, err
		}
		if e != nil {
			var ev revocationEvent
			if err := e.DecodeJSON(&ev); err != nil {
				return n, err
			}
			if !ev.At.Before(horizon) {
				break
			}
			if err := s.Delete(ctx, feedKey(seq)); err != nil {
				return n, err
			}
			n++
		}
		b.feed.trimmed(seq)
	}
	return n, nil
}

// wire is the event as the feed's reply carries it.
func (ev revocationEvent) wire() wire.FeedEvent {
	return wire.FeedEvent{
		Seq: ev.Seq, KeyID: ev.KeyID, Kind: ev.Kind,
		At: formatEventTime(ev.At), ExpiresAt: formatTime(ev.ExpiresAt),
		Role: ev.Role, Environment: ev.Environment, RevokedBefore: formatEventTime(ev.Before),
	}
}

func formatEventTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
