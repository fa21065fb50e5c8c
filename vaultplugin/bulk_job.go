package vaultplugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// A bulk revocation job completes what a watermark already decided: it
// writes each covered key's record (revoked_at = the watermark, who, why,
// the job) and its per-key feed event, a page at a time, keeping a cursor
// in its storage record so it resumes where it stopped after a restart or a
// failover (periodic and Initialize take up unfinished jobs on the active
// node). Nothing depends on it for safety: until a key's page is done, every
// read of the key applies the watermark.
//
// Leases are Vault's: the engine cannot revoke them. Each covered key's
// lease stays until it ends or is revoked, and its revocation then finds
// the key revoked (idempotent).

const (
	bulkJobPrefix = "bulkjobs/"
	// bulkPage is how many keys a job handles between two writes of its
	// cursor.
	bulkPage = 500
	// bulkWorkers is how many keys of a page are written at once (Vault's
	// storage batches concurrent writes).
	bulkWorkers = 8
	// bulkInline is how long the request itself works on its job before
	// answering; small revocations are done when it answers.
	bulkInline = 250 * time.Millisecond
	// bulkRetry is how long a job waits after a storage error.
	bulkRetry = 5 * time.Second
	// bulkKeyAttempts is how often a key that fails is tried before the job
	// moves past it (it stays revoked by the watermark; the job lists it).
	bulkKeyAttempts = 3
	// bulkKeyIDsInReply bounds the key_ids a finished job's reply lists.
	bulkKeyIDsInReply = 10_000
	maxFailedListed   = 100

	jobRunning = "running"
	jobDone    = "done"
)

// bulkJob is a job's storage record and status.
type bulkJob struct {
	ID         string    `json:"id"`
	Scope      string    `json:"scope"`
	Target     string    `json:"target"`
	Before     time.Time `json:"revoked_before"`
	By         string    `json:"revoked_by"`
	Reason     string    `json:"reason"`
	State      string    `json:"state"`
	Cursor     string    `json:"cursor"`
	Listed     int       `json:"listed"`
	Done       int       `json:"done"`
	Left       int       `json:"left"`
	Revoked    int       `json:"revoked"`
	Skipped    int       `json:"skipped"`
	Errors     int       `json:"errors"`
	LastError  string    `json:"last_error,omitempty"`
	Failed     []string  `json:"failed_key_ids,omitempty"`
	Relisted   bool      `json:"relisted,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

func (j *bulkJob) view() map[string]any {
	return map[string]any{
		"job_id":         j.ID,
		"scope":          j.Scope,
		"target":         j.Target,
		"revoked_before": formatEventTime(j.Before),
		"revoked_by":     j.By,
		"reason":         j.Reason,
		"state":          j.State,
		"listed":         j.Listed,
		"done":           j.Done,
		"left":           j.Left,
		"revoked":        j.Revoked,
		"skipped":        j.Skipped,
		"errors":         j.Errors,
		"last_error":     j.LastError,
		"failed_key_ids": nonNil(j.Failed),
		"started_at":     formatEventTime(j.StartedAt),
		"finished_at":    formatEventTime(j.FinishedAt),
	}
}

// bulkRunner runs jobs in the background on this node.
type bulkRunner struct {
	mu       sync.Mutex
	jobLocks map[string]*sync.Mutex
	// listings are the sorted key_ids of each job, taken once per node.
	listings map[string][]string
	// attempts counts failures per job and key.
	attempts map[string]int
	finished map[string]bool
	running  bool
	stopped  bool
	// inline is how long a request works on its own job (bulkInline).
	inline time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newBulkRunner() *bulkRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &bulkRunner{
		jobLocks: map[string]*sync.Mutex{}, listings: map[string][]string{},
		attempts: map[string]int{}, finished: map[string]bool{},
		ctx: ctx, cancel: cancel, inline: bulkInline,
	}
}

func (r *bulkRunner) jobLock(id string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.jobLocks[id]
	if l == nil {
		l = &sync.Mutex{}
		r.jobLocks[id] = l
	}
	return l
}

// stop ends the background worker (the mount is going away).
func (r *bulkRunner) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

func newJobID(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return now.UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b[:]), nil
}

func (b *backend) readJob(ctx context.Context, s logical.Storage, id string) (*bulkJob, error) {
	e, err := s.Get(ctx, bulkJobPrefix+id)
	if err != nil || e == nil {
		return nil, err
	}
	j := new(bulkJob)
	if err := e.DecodeJSON(j); err != nil {
		return nil, fmt.Errorf("decoding bulk revocation job %s: %w", id, err)
	}
	return j, nil
}

func (b *backend) writeJob(ctx context.Context, s logical.Storage, j *bulkJob) error {
	e, err := logical.StorageEntryJSON(bulkJobPrefix+j.ID, j)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, e); err != nil {
		return fmt.Errorf("writing bulk revocation job %s: %w", j.ID, err)
	}
	return nil
}

// startBulk is revoke/role and revoke/environment: the job record, then the
// watermark (from here on every covered key is refused), then one feed
// event that makes local verifiers drop the role's or environment's cached
// keys; then the request works on the job for up to bulkInline and leaves
// the rest to the background.
func (b *backend) startBulk(ctx context.Context, req *logical.Request, scope, target, reason string) (*logical.Response, error) {
	now := b.marks.watermarkTime(b.now())
	id, err := newJobID(now)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "bulk revocation of " + scope + " " + target
	}
	job := &bulkJob{ID: id, Scope: scope, Target: target, Before: now, By: requester(req), Reason: reason, State: jobRunning, StartedAt: now}
	if err := b.writeJob(ctx, req.Storage, job); err != nil {
		return nil, err
	}
	w := watermark{Scope: scope, Name: target, Before: now, By: job.By, Reason: reason, JobID: id}
	if err := b.marks.add(ctx, req.Storage, w); err != nil {
		if derr := req.Storage.Delete(ctx, bulkJobPrefix+id); derr != nil {
			b.Logger().Warn("removing the job of a bulk revocation whose watermark failed", "job_id", id, "error", derr)
		}
		return nil, err
	}
	ev := revocationEvent{Kind: eventRevokedRole, Role: target, Before: now}
	if scope == scopeEnv {
		ev = revocationEvent{Kind: eventRevokedEnvironment, Environment: target, Before: now}
	}
	if err := b.recordEvent(ctx, req.Storage, ev); err != nil {
		// The revocation is in effect in the engine; the event stays
		// pending in the feed and is written again (periodic), so local
		// verifiers hear of it late rather than never. The job runs.
		b.resumeBulkJobs(req.Storage)
		return nil, fmt.Errorf("bulk revocation %s is in effect, but its feed event failed (it is retried): %w", id, err)
	}
	b.Logger().Warn("bulk revocation", "scope", scope, "target", target, "job_id", id, "revoked_before", now, "by", job.By)

	var ids []string
	deadline := time.Now().Add(b.bulk.inline)
	for time.Now().Before(deadline) {
		var more bool
		job, more, err = b.bulkPageUntil(ctx, req.Storage, id, deadline, func(k string) { ids = append(ids, k) })
		if err != nil || !more {
			break
		}
	}
	if job == nil {
		return nil, fmt.Errorf("bulk revocation job %s vanished", id)
	}
	if job.State != jobDone {
		b.resumeBulkJobs(req.Storage)
	}
	data := job.view()
	data["status_path"] = "revoke/jobs/" + id
	if job.State == jobDone && len(ids) <= bulkKeyIDsInReply {
		slices.Sort(ids)
		data["key_ids"] = nonNil(ids)
	}
	resp := &logical.Response{Data: data}
	if err != nil {
		resp.AddWarning("the job met an error and continues in the background: " + err.Error())
	}
	return resp, nil
}

// listing returns the sorted key_ids of a job's role or environment, taken
// once per node and job.
func (b *backend) bulkListing(ctx context.Context, s logical.Storage, j *bulkJob, fresh bool) ([]string, error) {
	b.bulk.mu.Lock()
	ids, ok := b.bulk.listings[j.ID]
	b.bulk.mu.Unlock()
	if ok && !fresh {
		return ids, nil
	}
	var err error
	if j.Scope == scopeRole {
		ids, err = roleKeyIDs(ctx, s, j.Target)
	} else {
		ids, err = environmentKeyIDs(ctx, s, j.Target)
	}
	if err != nil {
		return nil, err
	}
	b.bulk.mu.Lock()
	b.bulk.listings[j.ID] = ids
	b.bulk.mu.Unlock()
	return ids, nil
}

// bulkPage handles the next page of a job and writes its cursor. more is
// false once the job is done (or gone). revoked is called with each key this
// page revoked.
func (b *backend) bulkPage(ctx context.Context, s logical.Storage, id string, revoked func(string)) (*bulkJob, bool, error) {
	return b.bulkPageUntil(ctx, s, id, time.Time{}, revoked)
}

// bulkPageUntil is bulkPage that stops early (cursor written) at deadline,
// unless deadline is zero.
func (b *backend) bulkPageUntil(ctx context.Context, s logical.Storage, id string, deadline time.Time, revoked func(string)) (*bulkJob, bool, error) {
	l := b.bulk.jobLock(id)
	l.Lock()
	defer l.Unlock()
	j, err := b.readJob(ctx, s, id)
	if err != nil || j == nil || j.State != jobRunning {
		return j, false, err
	}
	ids, err := b.bulkListing(ctx, s, j, false)
	if err != nil {
		return j, true, err
	}
	j.Listed = len(ids)
	start := sort.SearchStrings(ids, j.Cursor)
	if start < len(ids) && ids[start] == j.Cursor {
		start++
	}
	if j.Cursor == "" {
		start = 0
	}
	end := min(start+bulkPage, len(ids))
	// The page's keys are independent (each under its own lock): handle
	// them concurrently, then account for them in order, so the cursor
	// only passes keys that are done.
	page := ids[start:end]
	outs := make([]bulkOutcome, len(page))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(bulkWorkers, len(page)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(page) {
					return
				}
				if (!deadline.IsZero() && time.Now().After(deadline)) || ctx.Err() != nil {
					outs[i].notRun = true
					continue
				}
				outs[i] = b.bulkOne(ctx, s, page[i])
			}
		}()
	}
	wg.Wait()
	var pageErr error
	handled := start
	for i, k := range page {
		o := outs[i]
		if o.notRun {
			break
		}
		if o.err != nil {
			if ctx.Err() != nil {
				pageErr = o.err
				break
			}
			j.Errors++
			j.LastError = fmt.Sprintf("key %s: %v", k, o.err)
			b.bulk.mu.Lock()
			b.bulk.attempts[id+"/"+k]++
			n := b.bulk.attempts[id+"/"+k]
			b.bulk.mu.Unlock()
			if n < bulkKeyAttempts {
				pageErr = o.err
				break
			}
			if len(j.Failed) < maxFailedListed {
				j.Failed = append(j.Failed, k)
			}
		}
		j.account(o, revoked)
		j.Cursor = k
		j.Done++
		handled++
	}
	j.Left = len(ids) - handled
	if pageErr == nil && handled == len(ids) {
		if err := b.bulkFinish(ctx, s, j, ids, revoked); err != nil {
			pageErr = err
		}
	}
	if err := b.writeJob(ctx, s, j); err != nil {
		return j, true, err
	}
	if j.State == jobDone {
		b.bulk.mu.Lock()
		delete(b.bulk.listings, id)
		b.bulk.finished[id] = true
		b.bulk.mu.Unlock()
		b.Logger().Info("bulk revocation job done", "job_id", id, "revoked", j.Revoked, "skipped", j.Skipped, "errors", j.Errors)
	}
	return j, j.State == jobRunning, pageErr
}

// bulkFinish lists the keys once more (a key issued just before the
// watermark may have been indexed after the first listing), handles those
// the first listing missed, and marks the job done.
func (b *backend) bulkFinish(ctx context.Context, s logical.Storage, j *bulkJob, ids []string, revoked func(string)) error {
	if !j.Relisted {
		again, err := b.bulkListing(ctx, s, j, true)
		if err != nil {
			return err
		}
		for _, k := range again {
			if _, found := slices.BinarySearch(ids, k); found {
				continue
			}
			o := b.bulkOne(ctx, s, k)
			if o.err != nil {
				return o.err
			}
			j.account(o, revoked)
			j.Done++
			j.Listed++
		}
		j.Relisted = true
	}
	j.State, j.FinishedAt, j.Left = jobDone, b.now(), 0
	return nil
}

// bulkOutcome is what bulkOne did for one listed key.
type bulkOutcome struct {
	revoked []string // the key, and successors it led to
	skipped bool     // the key itself was not covered
	err     error
	notRun  bool // past the deadline: left for later
}

func (j *bulkJob) account(o bulkOutcome, revoked func(string)) {
	j.Revoked += len(o.revoked)
	if o.skipped {
		j.Skipped++
	}
	if revoked != nil {
		for _, k := range o.revoked {
			revoked(k)
		}
	}
}

// bulkOne writes one key's revocation if a watermark covers it, and follows
// its successor (a rotation racing the revocation).
func (b *backend) bulkOne(ctx context.Context, s logical.Storage, keyID string) (o bulkOutcome) {
	for hops := 0; keyID != "" && hops < 16; hops++ {
		ok, successor, err := b.revokeUnderMark(ctx, s, keyID)
		if err != nil {
			o.err = err
			return o
		}
		if ok {
			o.revoked = append(o.revoked, keyID)
		} else if hops == 0 {
			o.skipped = true
		}
		keyID = successor
	}
	return o
}

// revokeUnderMark makes a key's record say what the watermarks covering it
// say, and writes its feed event. ok is false when no watermark covers it
// (issued after, ended before) or its record is gone.
func (b *backend) revokeUnderMark(ctx context.Context, s logical.Storage, keyID string) (ok bool, successor string, err error) {
	lock := locksutil.LockForKey(b.keyLocks, keyID)
	lock.Lock()
	defer lock.Unlock()
	raw, err := b.loadStoredKey(ctx, s, keyID)
	if err != nil || raw == nil {
		return false, "", err
	}
	m, err := b.marks.view(ctx, s)
	if err != nil {
		return false, raw.RotatedTo, err
	}
	w := m.covering(raw)
	if w == nil {
		return false, raw.RotatedTo, nil
	}
	rec := w.apply(raw)
	if err := b.putKey(ctx, s, rec); err != nil {
		return false, raw.RotatedTo, err
	}
	if err := b.recordEvent(ctx, s, revocationEvent{KeyID: keyID, Kind: eventRevoked}); err != nil {
		return true, raw.RotatedTo, err
	}
	b.limiter.drop(keyID)
	b.anomalies.forget(keyID)
	return true, raw.RotatedTo, nil
}

// resumeBulkJobs starts the background worker unless it runs already. It
// finds unfinished jobs in storage, so it also takes up jobs a stopped node
// or a failed-over active node left.
func (b *backend) resumeBulkJobs(s logical.Storage) {
	r := b.bulk
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running || r.stopped || s == nil {
		return
	}
	r.running = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		b.bulkWorker(r.ctx, s)
	}()
}

func (b *backend) bulkWorker(ctx context.Context, s logical.Storage) {
	defer func() {
		b.bulk.mu.Lock()
		b.bulk.running = false
		b.bulk.mu.Unlock()
	}()
	for ctx.Err() == nil {
		ids, err := s.List(ctx, bulkJobPrefix)
		if err != nil {
			if !b.bulkSleep(ctx) {
				return
			}
			continue
		}
		worked, failed := false, false
		for _, id := range ids {
			b.bulk.mu.Lock()
			done := b.bulk.finished[id]
			b.bulk.mu.Unlock()
			if done {
				continue
			}
			for ctx.Err() == nil {
				j, more, err := b.bulkPage(ctx, s, id, nil)
				if j != nil && j.State == jobRunning {
					worked = true
				} else if err == nil {
					b.bulk.mu.Lock()
					b.bulk.finished[id] = true
					b.bulk.mu.Unlock()
				}
				if err != nil {
					b.Logger().Warn("bulk revocation job: will retry", "job_id", id, "error", err)
					failed = true
					break
				}
				if !more {
					break
				}
			}
		}
		if failed {
			if !b.bulkSleep(ctx) {
				return
			}
			continue
		}
		if !worked {
			return
		}
	}
}

func (b *backend) bulkSleep(ctx context.Context) bool {
	t := time.NewTimer(bulkRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// initialize takes up unfinished jobs when the mount starts on the active
// node (periodic does too, within a minute).
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	if req != nil && req.Storage != nil && b.WriteSafeReplicationState() {
		b.resumeBulkJobs(req.Storage)
	}
	return nil
}

func pathBulkJobs(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "revoke/jobs/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "revocation-jobs",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:  b.pathBulkJobsList,
					Responses: listed("The bulk revocation jobs.", "Per job: scope, target, state, done, left, revoked_before."),
					Summary:   "List bulk revocation jobs, with each one's state and progress.",
				},
			},
			HelpSynopsis:    "Bulk revocation jobs.",
			HelpDescription: "Lists the jobs of revoke/role and revoke/environment; key_info has each job's target, state, done and left.",
		},
		{
			Pattern: "revoke/jobs/" + framework.GenericNameRegex("job_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "revocation-job",
			},
			Fields: map[string]*framework.FieldSchema{
				"job_id": {Type: framework.TypeString, Description: "The job_id a bulk revocation replied with.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathBulkJobRead,
					Responses: okResponse("The job and its progress.", bulkJobResponseFields),
					Summary:   "Read a bulk revocation job's progress.",
				},
			},
			HelpSynopsis: "A bulk revocation job's progress.",
			HelpDescription: `A bulk revocation is in effect when revoke/role or revoke/environment
answers: every key of the target issued at or before revoked_before is
refused by verify and shown revoked by keys/<key_id>. The job then writes
each key's record and feed event in the background, in pages, resuming
after a restart or failover. state is running or done; listed, done and
left count keys of the target (done = revoked + skipped, skipped = issued
after the watermark or ended before it); errors counts failed attempts,
last_error names the last, failed_key_ids lists keys given up on (still
revoked by the watermark).`,
		},
	}
}

func (b *backend) pathBulkJobsList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	ids, err := req.Storage.List(ctx, bulkJobPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	info := make(map[string]any, len(ids))
	for _, id := range ids {
		j, err := b.readJob(ctx, req.Storage, id)
		if err != nil {
			return nil, err
		}
		if j == nil {
			continue
		}
		info[id] = map[string]any{"scope": j.Scope, "target": j.Target, "state": j.State, "done": j.Done, "left": j.Left, "revoked_before": formatEventTime(j.Before)}
	}
	return logical.ListResponseWithInfo(ids, info), nil
}

func (b *backend) pathBulkJobRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	j, err := b.readJob(ctx, req.Storage, d.Get("job_id").(string))
	if err != nil || j == nil {
		return nil, err
	}
	return &logical.Response{Data: j.view()}, nil
}
