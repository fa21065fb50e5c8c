package vaultplugin

import (
	"slices"
	"sync"
	"time"
)

const (
	anomalyNone    = "none"
	anomalyFlag    = "flag"
	anomalySuspend = "suspend"

	anomalyKindRate      = "rate"
	anomalyKindNewSource = "new_source"

	// anomalyWindow is the span over which anomaly_rate must be exceeded:
	// long enough that one burst is not "sustained", short enough to act
	// while abuse is still going on.
	anomalyWindow = 10 * time.Second

	// maxSourceIPs bounds the distinct source addresses kept per key.
	maxSourceIPs = 16
)

var anomalyActions = []string{anomalyNone, anomalyFlag, anomalySuspend}

// anomalyPolicy is copied from the role onto each key.
type anomalyPolicy struct {
	OnAnomaly     string  `json:"on_anomaly,omitempty"`
	AnomalyRate   float64 `json:"anomaly_rate,omitempty"`
	FlagNewSource bool    `json:"flag_new_source,omitempty"`
}

// anomaly is one kind of abnormal behaviour seen on a key.
type anomaly struct {
	Kind      string    `json:"kind"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Count     uint64    `json:"count"`
}

// anomalyTracker watches verify traffic in memory. What it finds reaches
// storage with the usage flush; until then it is visible on this node and
// already enforced here (a suspension takes effect on the very request that
// triggered it).
type anomalyTracker struct {
	mu      sync.Mutex
	windows map[string]*rateWindow
	// reported are the rate windows of usage reports (traffic local
	// verifiers answered from their caches, which verify never saw).
	reported map[string]*reportWindow
	pending  map[string]*pendingAnomalies
	// decided is closed (and replaced) when a suspension is decided, so a
	// held read of the feed, which carries unwritten suspensions, answers
	// at once without looking for them on a timer.
	decided chan struct{}
}

type rateWindow struct {
	start time.Time
	count int
}

// reportWindow sums the rates usage reports give for one key over
// anomalyWindow: each entry's count over the span it covers, so reporters
// with different report intervals, and several reporters, add up to the
// key's rate.
type reportWindow struct {
	start time.Time
	rate  float64
}

// maxReportSpan bounds the span a usage report entry is taken to cover.
const maxReportSpan = 10 * time.Minute

type pendingAnomalies struct {
	found       map[string]*anomaly
	suspendedAt time.Time
	// resumes is the key record's Resumes when the suspension was decided.
	resumes uint64
	newIPs  []string
}

// liftedBy reports that rec was resumed after this suspension was decided.
func (pa *pendingAnomalies) liftedBy(rec *keyRecord) bool {
	return rec.Resumes != pa.resumes
}

func newAnomalyTracker() *anomalyTracker {
	return &anomalyTracker{windows: map[string]*rateWindow{}, reported: map[string]*reportWindow{}, pending: map[string]*pendingAnomalies{}, decided: make(chan struct{})}
}

// observe looks at one authenticated request of a key that watches for
// anomalies and reports whether the key is now suspended (by this request,
// or by a concurrent one that got the lock first).
func (t *anomalyTracker) observe(rec *keyRecord, now time.Time, sourceIP string, log func(keyID, kind string)) (suspended bool) {
	p := rec.anomalyPolicy
	if !rec.watchesAnomalies() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pa := t.pending[rec.KeyID]
	if pa != nil && !pa.suspendedAt.IsZero() {
		if !pa.liftedBy(rec) {
			return true
		}
		// Lifted by a resume that raced the flush holding it (the flush
		// then gave it back): forgotten, as the resume meant.
		pa.suspendedAt = time.Time{}
	}
	var kinds []string
	if p.AnomalyRate > 0 {
		w := t.windows[rec.KeyID]
		if w == nil || now.Sub(w.start) >= anomalyWindow {
			w = &rateWindow{start: now}
			t.windows[rec.KeyID] = w
		}
		w.count++
		if float64(w.count) > p.AnomalyRate*anomalyWindow.Seconds() {
			kinds = append(kinds, anomalyKindRate)
		}
	}
	if t.newSourceLocked(rec, sourceIP) {
		kinds = append(kinds, anomalyKindNewSource)
	}
	return t.foundLocked(rec, now, kinds, log)
}

// newSourceLocked reports whether sourceIP is news for a key with
// flag_new_source, and remembers it. t.mu is held.
func (t *anomalyTracker) newSourceLocked(rec *keyRecord, sourceIP string) bool {
	if !rec.anomalyPolicy.FlagNewSource || sourceIP == "" {
		return false
	}
	pa := t.pending[rec.KeyID]
	known := slices.Contains(rec.SourceIPs, sourceIP) || (pa != nil && slices.Contains(pa.newIPs, sourceIP))
	if known {
		return false
	}
	// The first address a key is used from is its baseline, not news.
	hasBaseline := len(rec.SourceIPs) > 0 || (pa != nil && len(pa.newIPs) > 0)
	if pa == nil {
		pa = &pendingAnomalies{found: map[string]*anomaly{}}
		t.pending[rec.KeyID] = pa
	}
	if len(pa.newIPs) < maxSourceIPs {
		pa.newIPs = append(pa.newIPs, sourceIP)
	}
	return hasBaseline
}

// foundLocked records findings and applies the key's on_anomaly; it
// reports whether the key is now suspended. t.mu is held.
func (t *anomalyTracker) foundLocked(rec *keyRecord, now time.Time, kinds []string, log func(keyID, kind string)) bool {
	p := rec.anomalyPolicy
	if len(kinds) == 0 {
		return false
	}
	pa := t.pending[rec.KeyID]
	if pa == nil {
		pa = &pendingAnomalies{found: map[string]*anomaly{}}
		t.pending[rec.KeyID] = pa
	}
	for _, k := range kinds {
		a := pa.found[k]
		if a == nil {
			a = &anomaly{Kind: k, FirstSeen: now}
			pa.found[k] = a
			log(rec.KeyID, k)
		}
		a.LastSeen = now
		a.Count++
	}
	if p.OnAnomaly == anomalySuspend {
		pa.suspendedAt, pa.resumes = now, rec.Resumes
		close(t.decided)
		t.decided = make(chan struct{})
		return true
	}
	return false
}

// observeReport looks at one usage report entry: count uses of the key
// between countedSince and now, the newest from sourceIP, answered by a
// local verifier from its cache. The same rules as verify's apply: a
// source address new for a key with flag_new_source is an anomaly, and so
// is a rate above anomaly_rate, the rate being the sum over anomalyWindow
// of each entry's count over the span it covers (at least anomalyWindow,
// at most maxReportSpan; anomalyWindow when the reporter does not say).
// With on_anomaly=suspend the key is suspended in memory as by verify, so
// the revocations feed carries it to every verifier at once. It reports
// whether the key is now suspended.
func (t *anomalyTracker) observeReport(rec *keyRecord, now time.Time, count uint64, countedSince time.Time, sourceIP string, log func(keyID, kind string)) (suspended bool) {
	p := rec.anomalyPolicy
	t.mu.Lock()
	defer t.mu.Unlock()
	if pa := t.pending[rec.KeyID]; pa != nil && !pa.suspendedAt.IsZero() {
		if !pa.liftedBy(rec) {
			return true
		}
		pa.suspendedAt = time.Time{} // lifted by a resume, as in observe
	}
	if p.OnAnomaly == "" || p.OnAnomaly == anomalyNone {
		return false
	}
	var kinds []string
	if p.AnomalyRate > 0 {
		span := anomalyWindow
		if !countedSince.IsZero() {
			span = min(max(now.Sub(countedSince), anomalyWindow), maxReportSpan)
		}
		w := t.reported[rec.KeyID]
		if w == nil || now.Sub(w.start) >= anomalyWindow {
			w = &reportWindow{start: now}
			t.reported[rec.KeyID] = w
		}
		w.rate += float64(count) / span.Seconds()
		if w.rate > p.AnomalyRate {
			kinds = append(kinds, anomalyKindRate)
		}
	}
	if t.newSourceLocked(rec, sourceIP) {
		kinds = append(kinds, anomalyKindNewSource)
	}
	return t.foundLocked(rec, now, kinds, log)
}

// take removes and returns what was found since the last flush. A
// suspension stays behind as a marker (its time, nothing else) until the
// flush has written it (settled) or given it back (putBack): between the
// take and the record reaching the cache, verify on this node must still
// refuse the key.
func (t *anomalyTracker) take() map[string]*pendingAnomalies {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.pending
	t.pending = map[string]*pendingAnomalies{}
	for id, pa := range out {
		if !pa.suspendedAt.IsZero() {
			t.pending[id] = &pendingAnomalies{found: map[string]*anomaly{}, suspendedAt: pa.suspendedAt, resumes: pa.resumes}
		}
	}
	return out
}

// settled removes the marker take left for a suspension the flush has now
// written (record and feed event), unless something newer joined it.
func (t *anomalyTracker) settled(keyID string, suspendedAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.pending[keyID]; cur != nil && cur.suspendedAt.Equal(suspendedAt) && len(cur.found) == 0 && len(cur.newIPs) == 0 {
		delete(t.pending, keyID)
	}
}

// putBack re-queues findings a failed flush could not store.
func (t *anomalyTracker) putBack(keyID string, pa *pendingAnomalies) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.pending[keyID]; cur != nil {
		for k, a := range cur.found {
			pa.found[k] = a
		}
		if !cur.suspendedAt.IsZero() {
			pa.suspendedAt, pa.resumes = cur.suspendedAt, cur.resumes
		}
	}
	t.pending[keyID] = pa
}

// peek returns this node's unflushed findings for rec's key, and when this
// node suspended it if that suspension still holds (see suspendedAt).
func (t *anomalyTracker) peek(rec *keyRecord) (found []anomaly, suspendedAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pa := t.pending[rec.KeyID]
	if pa == nil {
		return nil, time.Time{}
	}
	for _, a := range pa.found {
		found = append(found, *a)
	}
	if pa.liftedBy(rec) {
		return found, time.Time{}
	}
	return found, pa.suspendedAt
}

// suspendedAt is when this node suspended rec's key, if it has, the
// suspension is not yet flushed, and no resume of rec lifted it since.
func (t *anomalyTracker) suspendedAt(rec *keyRecord) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pa := t.pending[rec.KeyID]; pa != nil && !pa.liftedBy(rec) {
		return pa.suspendedAt
	}
	return time.Time{}
}

func (t *anomalyTracker) pendingKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.pending))
	for id, pa := range t.pending {
		if len(pa.found) > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// suspensionDecided returns a channel closed when this node next decides a
// suspension. Take it before looking at suspendedKeys, so none is missed
// between the look and the wait.
func (t *anomalyTracker) suspensionDecided() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.decided
}

// suspendedKeys lists keys suspended on this node and not yet flushed.
func (t *anomalyTracker) suspendedKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for id, pa := range t.pending {
		if !pa.suspendedAt.IsZero() {
			ids = append(ids, id)
		}
	}
	return ids
}

// forget clears a key's in-memory state (on resume, revoke and tidy).
func (t *anomalyTracker) forget(keyID string) {
	t.mu.Lock()
	delete(t.pending, keyID)
	delete(t.windows, keyID)
	delete(t.reported, keyID)
	t.mu.Unlock()
}

func anomalyMap(as []anomaly) map[string]*anomaly {
	m := make(map[string]*anomaly, len(as))
	for i := range as {
		m[as[i].Kind] = &as[i]
	}
	return m
}

// mergeAnomalies folds new findings into a record's list.
func mergeAnomalies(have []anomaly, found map[string]*anomaly) []anomaly {
	out := slices.Clone(have)
	for _, a := range found {
		i := slices.IndexFunc(out, func(x anomaly) bool { return x.Kind == a.Kind })
		if i < 0 {
			out = append(out, *a)
			continue
		}
		out[i].LastSeen = a.LastSeen
		out[i].Count += a.Count
	}
	slices.SortFunc(out, func(a, b anomaly) int { return a.FirstSeen.Compare(b.FirstSeen) })
	return out
}

// appendSourceIPs keeps the newest distinct addresses, at most maxSourceIPs.
func appendSourceIPs(have []string, ips ...string) []string {
	out := slices.Clone(have)
	for _, ip := range ips {
		if ip == "" {
			continue
		}
		if i := slices.Index(out, ip); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
		out = append(out, ip)
	}
	if len(out) > maxSourceIPs {
		out = out[len(out)-maxSourceIPs:]
	}
	return out
}
