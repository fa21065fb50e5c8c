package vaultplugin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Bulk revocation takes effect in one storage write: a watermark, "every
// key of this role (or environment) issued at or before T is revoked at T,
// by whom, why, by which job". Every read of a key record (verify, keys/<id>,
// rotate, renew, usage, tidy) applies the watermarks that cover it, so the
// key is refused and shown revoked before the background job (bulk_job.go)
// has written its record. The job then makes each record say so itself.
//
// A key is covered by a watermark of its role or environment when it was
// born at or before T and had not ended by then. Born is its created_at, or
// its predecessor's when it is a rotation's successor: a rotation that read
// its predecessor just before the watermark and wrote the successor just
// after must not let the successor escape (a live key rotated after T was
// itself born after T, so no legitimate successor is caught). Keys issued
// after the watermark get a created_at strictly after T (stampIssue), also
// when the engine's clock has not moved or runs behind another node's.
//
// Watermarks are held in memory (loaded once with one List per scope,
// replaced on every write of this node and dropped by Invalidate on
// others), so verify reads no storage for them.

const (
	watermarkPrefix = "watermarks/"
	scopeRole       = "role"
	scopeEnv        = "environment"
)

// watermark is one bulk revocation.
type watermark struct {
	Scope  string    `json:"scope"`
	Name   string    `json:"name"`
	Before time.Time `json:"revoked_before"`
	By     string    `json:"revoked_by"`
	Reason string    `json:"reason"`
	JobID  string    `json:"job_id"`
}

// watermarkEntry is what one scope's storage entry holds: its watermarks,
// oldest first.
type watermarkEntry struct {
	Marks []watermark `json:"marks"`
}

func watermarkKey(scope, name string) string { return watermarkPrefix + scope + "/" + name }

// markSnapshot is an immutable view of every watermark.
type markSnapshot struct {
	role, env map[string][]watermark
}

func (m *markSnapshot) empty() bool { return len(m.role) == 0 && len(m.env) == 0 }

// markSet caches the watermarks.
type markSet struct {
	cur atomic.Pointer[markSnapshot] // nil: not loaded
	mu  sync.Mutex                   // loads and writes
	gen uint64                       // bumped by invalidate, under mu
	// bumped is the latest created_at stampIssue moved past the clock
	// (unix nanoseconds): a later watermark is taken at or after it, so a
	// key born just after one watermark is not born after the next one
	// too when the clock has not moved.
	bumped atomic.Int64
}

// watermarkTime is the time a new watermark takes: now, or later if a key
// was stamped later than now.
func (ms *markSet) watermarkTime(now time.Time) time.Time {
	if b := time.Unix(0, ms.bumped.Load()); b.After(now) {
		return b
	}
	return now
}

// view returns the watermarks, loading them on first use.
func (ms *markSet) view(ctx context.Context, s logical.Storage) (*markSnapshot, error) {
	if v := ms.cur.Load(); v != nil {
		return v, nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if v := ms.cur.Load(); v != nil {
		return v, nil
	}
	v, err := loadMarks(ctx, s)
	if err != nil {
		return nil, err
	}
	ms.cur.Store(v)
	return v, nil
}

func loadMarks(ctx context.Context, s logical.Storage) (*markSnapshot, error) {
	v := &markSnapshot{role: map[string][]watermark{}, env: map[string][]watermark{}}
	for scope, into := range map[string]map[string][]watermark{scopeRole: v.role, scopeEnv: v.env} {
		names, err := s.List(ctx, watermarkPrefix+scope+"/")
		if err != nil {
			return nil, fmt.Errorf("listing bulk revocation watermarks: %w", err)
		}
		for _, name := range names {
			e, err := readMarks(ctx, s, scope, name)
			if err != nil {
				return nil, err
			}
			if len(e.Marks) > 0 {
				into[name] = e.Marks
			}
		}
	}
	return v, nil
}

func readMarks(ctx context.Context, s logical.Storage, scope, name string) (*watermarkEntry, error) {
	se, err := s.Get(ctx, watermarkKey(scope, name))
	if err != nil {
		return nil, fmt.Errorf("reading bulk revocation watermark %s/%s: %w", scope, name, err)
	}
	e := &watermarkEntry{}
	if se != nil {
		if err := se.DecodeJSON(e); err != nil {
			return nil, fmt.Errorf("decoding bulk revocation watermark %s/%s: %w", scope, name, err)
		}
	}
	slices.SortStableFunc(e.Marks, func(a, b watermark) int { return a.Before.Compare(b.Before) })
	return e, nil
}

// add stores a new watermark (read-modify-write of its scope's entry under
// ms.mu) and puts it in memory. A failed write may have committed, so the
// cache is dropped then: the next read takes what storage holds.
func (ms *markSet) add(ctx context.Context, s logical.Storage, w watermark) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	cur := ms.cur.Load()
	if cur == nil {
		var err error
		if cur, err = loadMarks(ctx, s); err != nil {
			return err
		}
	}
	e, err := readMarks(ctx, s, w.Scope, w.Name)
	if err != nil {
		return err
	}
	e.Marks = append(e.Marks, w)
	slices.SortStableFunc(e.Marks, func(a, b watermark) int { return a.Before.Compare(b.Before) })
	se, err := logical.StorageEntryJSON(watermarkKey(w.Scope, w.Name), e)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, se); err != nil {
		ms.cur.Store(nil)
		ms.gen++
		return fmt.Errorf("writing the bulk revocation watermark: %w", err)
	}
	next := &markSnapshot{role: cloneMarks(cur.role), env: cloneMarks(cur.env)}
	if w.Scope == scopeRole {
		next.role[w.Name] = e.Marks
	} else {
		next.env[w.Name] = e.Marks
	}
	ms.cur.Store(next)
	return nil
}

func cloneMarks(m map[string][]watermark) map[string][]watermark {
	out := make(map[string][]watermark, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// invalidate drops the cache when another node wrote a watermark.
func (ms *markSet) invalidate() {
	ms.mu.Lock()
	ms.cur.Store(nil)
	ms.gen++
	ms.mu.Unlock()
}

// born is the time a watermark compares with: a successor counts from its
// predecessor's birth.
func (r *keyRecord) born() time.Time {
	if !r.RotatedFromCreatedAt.IsZero() && r.RotatedFromCreatedAt.Before(r.CreatedAt) {
		return r.RotatedFromCreatedAt
	}
	return r.CreatedAt
}

// covering returns the earliest watermark that revokes r, or nil.
func (m *markSnapshot) covering(r *keyRecord) *watermark {
	if m.empty() {
		return nil
	}
	born, end := r.born(), r.end()
	var best *watermark
	for _, list := range [2][]watermark{m.role[r.Role], m.env[r.Environment]} {
		for i := range list {
			w := &list[i]
			if w.Before.Before(born) {
				continue // the key was issued after this one
			}
			// The first watermark at or after its birth: if the key had
			// ended by then it is not this revocation's (nor a later one's).
			if end.After(w.Before) && (best == nil || w.Before.Before(best.Before)) {
				best = w
			}
			break
		}
	}
	return best
}

// apply returns r as the watermark w makes it: a copy, revoked at w's
// time by w's author for w's reason.
func (w *watermark) apply(r *keyRecord) *keyRecord {
	c := *r
	c.RevokedAt = w.Before
	c.editNotes(func(n *KeyNotes) { n.RevokedBy, n.RevokeReason, n.RevokeJob = w.By, w.Reason, w.JobID })
	// In effect as written: no clock (a lagging standby's) brings it back.
	c.Ended = true
	if c.MaxExpiresAt.After(w.Before) {
		c.MaxExpiresAt = w.Before
	}
	return &c
}

// watermarked is r with the watermarks that cover it applied: what every
// reader of a record sees. r itself (shared with the cache) is never changed.
func (b *backend) watermarked(ctx context.Context, s logical.Storage, r *keyRecord) (*keyRecord, error) {
	if r == nil {
		return nil, nil
	}
	m, err := b.marks.view(ctx, s)
	if err != nil {
		return nil, err
	}
	if w := m.covering(r); w != nil {
		return w.apply(r), nil
	}
	return r, nil
}

// stampIssue runs on every key about to be stored by creds or rotate. A key
// issued after a watermark of its role or environment is born strictly
// after it, whatever the clock says; a successor remembers when its
// lineage began (see born).
func (b *backend) stampIssue(ctx context.Context, s logical.Storage, r *keyRecord, predecessor *keyRecord) error {
	m, err := b.marks.view(ctx, s)
	if err != nil {
		return err
	}
	for _, list := range [2][]watermark{m.role[r.Role], m.env[r.Environment]} {
		if n := len(list); n > 0 && !list[n-1].Before.Before(r.CreatedAt) {
			r.CreatedAt = list[n-1].Before.Add(time.Nanosecond)
		}
	}
	for {
		cur := b.marks.bumped.Load()
		if r.CreatedAt.UnixNano() <= cur || b.marks.bumped.CompareAndSwap(cur, r.CreatedAt.UnixNano()) {
			break
		}
	}
	if predecessor != nil {
		r.RotatedFromCreatedAt = predecessor.born()
	}
	return nil
}
