package vaultplugin

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// Concurrency: 64 goroutines issuing, rotating (with and without a grace
// period) and revoking keys of one capped role at once, in rounds; one
// round also revokes the whole role. Run with -race. After every round the
// engine's storage must agree exactly with what the successful requests
// said happened: the live keys are exactly the issued keys that no
// successful revoke or rotation retired (or that expired), the keys holding
// a max_active_keys slot (live, not rotated out: see countLiveKeys) never
// more than the cap, no issue refused while a slot was free, every record
// indexed, nothing orphaned; and verify answers each key accordingly.

const (
	concWorkers = 64
	concRounds  = 10
	concCap     = 16
	concGrace   = 90 * time.Second
)

// concKey is the test's model of one issued key.
type concKey struct {
	apiKey, keyID string
	secret        *logical.Secret
	ttl           time.Duration
	expiresAt     time.Time // model expiry (the fake clock only moves between rounds)
	retired       bool      // revoked: a successful revoke or grace-0 rotation targeted it
	rotatedOut    bool      // a rotation succeeded: its successor holds its slot
	revokeAt      time.Time // end of a rotation's grace, when before expiresAt
	rotations     int       // successful rotations of this key
	successor     string
}

func (k *concKey) want(now time.Time) string {
	switch {
	case k.retired, !k.revokeAt.IsZero() && !now.Before(k.revokeAt):
		return wire.CodeRevoked
	case !now.Before(k.expiresAt):
		return wire.CodeExpired
	}
	return wire.CodeValid
}

// holdsSlot: the key counts toward max_active_keys.
func (k *concKey) holdsSlot(now time.Time) bool {
	return k.want(now) == wire.CodeValid && !k.rotatedOut
}

// handle sends a request from any goroutine (testEnv's helpers call
// t.Fatal, which only the test goroutine may).
func (e *testEnv) handle(req *logical.Request) (*logical.Response, error) {
	req.Storage = e.storage
	if req.DisplayName == "" {
		req.DisplayName = "token-conc"
	}
	return e.b.HandleRequest(context.Background(), req)
}

func verifyCodeOf(e *testEnv, apiKey string) (string, error) {
	resp, err := e.handle(&logical.Request{Operation: logical.UpdateOperation, Path: "verify", Data: map[string]any{"api_key": apiKey}})
	if err != nil {
		return "", err
	}
	if resp == nil || resp.IsError() {
		return "", fmt.Errorf("verify: %v", resp)
	}
	code, _ := resp.Data["code"].(string)
	return code, nil
}

// waitTimeout is how long a test waits for requests that should finish in
// milliseconds: long enough for -race on a busy machine, short enough that
// a deadlock fails the test with a message well before go test's timeout.
func waitTimeout(t testing.TB) time.Duration {
	timeout := 30 * time.Second
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			timeout = min(timeout, max(time.Until(d)/2, time.Second))
		}
	}
	return timeout
}

// waitFor fails the test, with every goroutine's stack, when done is not
// closed in time.
func waitFor(t testing.TB, what string, done <-chan struct{}) {
	t.Helper()
	timeout := waitTimeout(t)
	select {
	case <-done:
	case <-time.After(timeout):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("%s did not finish within %s: deadlock? goroutines:\n%s", what, timeout, buf[:n])
	}
}

func TestConcurrency_issueRotateRevokeOneCappedRole(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "2h", "max_active_keys": concCap})

	var (
		mu    sync.Mutex
		keys  = map[string]*concKey{}
		order []string // key_ids in issue order, for stable reports
	)
	var issued, refused, rotated, graceRotated, revokedN, rotateLost, bulkRevoked int
	// A new seed each run widens coverage across runs; CK_CONC_SEED
	// replays one (the schedule still varies, the operations do not).
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CK_CONC_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CK_CONC_SEED: %v", err)
		}
	}
	t.Logf("seed %d (CK_CONC_SEED=%d replays the operations)", seed, seed)
	// #nosec G404 -- picks a reproducible mix of test operations; nothing secret or security-relevant depends on it.
	rng := rand.New(rand.NewPCG(seed, 0x636b))

	for round := range concRounds {
		if round == concRounds/2 || round == concRounds-1 {
			// Short-lived keys issued so far expire, freeing their slots,
			// and grace periods begun so far end.
			e.clock.Add(2 * time.Minute)
		}
		bulkRound := round == concRounds-3
		before := slices.Clone(order) // the keys issued before this round
		now := e.clock.Now()
		var live []*concKey
		slotsStart := 0
		for _, id := range order {
			k := keys[id]
			if k.want(now) == wire.CodeValid {
				live = append(live, k)
			}
			if k.holdsSlot(now) {
				slotsStart++
			}
		}

		// Each worker's operation, chosen up front so the round is
		// reproducible from the seed; targets come from the keys live at
		// the round's start (keys in a grace period included), so several
		// workers may race for one key.
		type op struct {
			kind   string // issue, issue-short, rotate, rotate-grace, revoke, lease-revoke, revoke-role
			target *concKey
		}
		ops := make([]op, concWorkers)
		for i := range ops {
			r := rng.IntN(100)
			switch {
			case bulkRound && i == 0:
				ops[i].kind = "revoke-role"
			case r < 40 || len(live) == 0:
				ops[i].kind = "issue"
			case r < 50:
				ops[i].kind = "issue-short"
			case r < 65:
				ops[i].kind = "rotate"
			case r < 75:
				ops[i].kind = "rotate-grace"
			case r < 88:
				ops[i].kind = "revoke"
			default:
				ops[i].kind = "lease-revoke"
			}
			if len(live) > 0 && !strings.HasPrefix(ops[i].kind, "issue") && ops[i].kind != "revoke-role" {
				ops[i].target = live[rng.IntN(len(live))]
			}
		}

		var wg sync.WaitGroup
		start := make(chan struct{})
		var problems []string
		fail := func(format string, args ...any) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		var roundIssued, roundRefused int
		var roundNew, roundSuccessors []*concKey
		var bulkIDs []string
		for w := range concWorkers {
			wg.Add(1)
			go func(o op) {
				defer wg.Done()
				<-start
				switch o.kind {
				case "issue", "issue-short":
					req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/r"}
					ttl := time.Hour
					if o.kind == "issue-short" {
						req.Operation, req.Data = logical.UpdateOperation, map[string]any{"ttl": "60s"}
						ttl = time.Minute
					}
					resp, err := e.handle(req)
					if err != nil {
						fail("worker %d creds: %v", w, err)
						return
					}
					if resp.IsError() {
						if strings.Contains(resp.Error().Error(), "max_active_keys") {
							mu.Lock()
							refused++
							roundRefused++
							mu.Unlock()
							return
						}
						fail("worker %d creds: %v", w, resp.Error())
						return
					}
					k := &concKey{apiKey: resp.Data["api_key"].(string), keyID: resp.Data["key_id"].(string), secret: resp.Secret, ttl: ttl, expiresAt: now.Add(ttl)}
					// Read your own write: a key just issued verifies
					// (unless the role's revocation got it first).
					if code, err := verifyCodeOf(e, k.apiKey); code != wire.CodeValid && (!bulkRound || code != wire.CodeRevoked) {
						fail("worker %d: key %s just issued verifies %s %v", w, k.keyID, code, err)
					}
					mu.Lock()
					if keys[k.keyID] != nil {
						problems = append(problems, "duplicate key_id "+k.keyID)
					}
					keys[k.keyID] = k
					order = append(order, k.keyID)
					roundNew = append(roundNew, k)
					issued++
					roundIssued++
					mu.Unlock()
				case "rotate", "rotate-grace":
					grace := time.Duration(0)
					if o.kind == "rotate-grace" {
						grace = concGrace
					}
					resp, err := e.handle(&logical.Request{Operation: logical.UpdateOperation, Path: "keys/" + o.target.keyID + "/rotate", Data: map[string]any{"grace": int(grace.Seconds())}})
					if err != nil {
						fail("worker %d rotate: %v", w, err)
						return
					}
					if resp.IsError() {
						// Lost the race to another rotation or a revocation,
						// or the target was rotated with a grace period in
						// an earlier round: a key has one successor at most.
						if msg := resp.Error().Error(); strings.Contains(msg, "is revoked") || strings.Contains(msg, "already rotated") {
							mu.Lock()
							rotateLost++
							mu.Unlock()
							return
						}
						fail("worker %d rotate %s: %v", w, o.target.keyID, resp.Error())
						return
					}
					// The successor gets the role's TTL (as it is now), from now.
					succ := &concKey{apiKey: resp.Data["api_key"].(string), keyID: resp.Data["key_id"].(string), secret: resp.Secret, ttl: time.Hour, expiresAt: now.Add(time.Hour)}
					if resp.Data["previous_key_id"] != o.target.keyID {
						fail("worker %d: rotation of %s names previous_key_id %v", w, o.target.keyID, resp.Data["previous_key_id"])
					}
					// The old key may also be revoked concurrently, and the
					// successor by the role's revocation.
					code, _ := verifyCodeOf(e, o.target.apiKey)
					if (grace == 0 && code != wire.CodeRevoked) || (grace > 0 && code != wire.CodeValid && code != wire.CodeRevoked) {
						fail("worker %d: key %s rotated out with grace %s verifies %s", w, o.target.keyID, grace, code)
					}
					if code, _ := verifyCodeOf(e, succ.apiKey); code != wire.CodeValid && (!bulkRound || code != wire.CodeRevoked) {
						fail("worker %d: successor %s verifies %s", w, succ.keyID, code)
					}
					mu.Lock()
					if grace == 0 {
						o.target.retired = true
					} else if end := now.Add(grace); end.Before(o.target.expiresAt) {
						o.target.revokeAt = end
						graceRotated++
					}
					o.target.rotatedOut = true
					o.target.rotations++
					o.target.successor = succ.keyID
					keys[succ.keyID] = succ
					order = append(order, succ.keyID)
					roundSuccessors = append(roundSuccessors, succ)
					rotated++
					mu.Unlock()
				case "revoke", "lease-revoke":
					req := &logical.Request{Operation: logical.DeleteOperation, Path: "keys/" + o.target.keyID}
					if o.kind == "lease-revoke" {
						req = &logical.Request{Operation: logical.RevokeOperation, Path: "creds/r", Secret: o.target.secret}
					}
					resp, err := e.handle(req)
					if err != nil || (resp != nil && resp.IsError()) {
						fail("worker %d %s %s: %v %v", w, o.kind, o.target.keyID, err, resp)
						return
					}
					if code, _ := verifyCodeOf(e, o.target.apiKey); code != wire.CodeRevoked {
						fail("worker %d: key %s verifies %s right after %s", w, o.target.keyID, code, o.kind)
					}
					mu.Lock()
					o.target.retired = true
					revokedN++
					mu.Unlock()
				case "revoke-role":
					resp, err := e.handle(&logical.Request{Operation: logical.UpdateOperation, Path: "revoke/role/r", Data: map[string]any{"reason": "concurrency test"}})
					if err != nil || resp == nil || resp.IsError() {
						fail("worker %d revoke/role/r: %v %v", w, err, resp)
						return
					}
					ids, _ := resp.Data["key_ids"].([]string)
					if n, _ := resp.Data["revoked"].(int); n != len(ids) {
						fail("revoke/role/r: revoked %v but %d key_ids", resp.Data["revoked"], len(ids))
					}
					mu.Lock()
					bulkIDs = ids
					mu.Unlock()
				}
			}(ops[w])
		}
		close(start)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		waitFor(t, fmt.Sprintf("round %d's %d requests", round, concWorkers), done)
		for _, p := range problems {
			t.Error(p)
		}

		if bulkRound {
			// Every key live when revoke/role began is revoked now, and so is
			// every successor of a rotation that succeeded (its predecessor
			// was live then). Keys issued during the revocation are
			// concurrent with it: either outcome is right, as long as
			// storage and verify agree (checked below and at the end).
			// Keys that had expired before the round keep their expiry:
			// revocation leaves an ended key's record as it is.
			for _, id := range before {
				if now.Before(keys[id].expiresAt) {
					keys[id].retired = true
				}
			}
			inBulk := map[string]bool{}
			for _, id := range bulkIDs {
				inBulk[id] = true
				if keys[id] == nil {
					t.Errorf("revoke/role/r revoked %s, which no request issued", id)
				}
			}
			for _, k := range roundSuccessors {
				if !inBulk[k.keyID] {
					t.Errorf("successor %s, rotated during revoke/role/r, was not revoked by it", k.keyID)
				}
				k.retired = true
			}
			stored := e.storageRecords(t)
			for _, k := range roundNew {
				if rec := stored[k.keyID]; rec != nil && rec.status(now) == statusRevoked {
					if !inBulk[k.keyID] {
						t.Errorf("key %s issued during revoke/role/r is revoked, but not by it", k.keyID)
					}
					k.retired = true
				}
			}
			bulkRevoked = len(bulkIDs)
		}

		// Storage agrees exactly with the replies.
		var wantLive, wantSlots []string
		for _, id := range order {
			if keys[id].want(now) == wire.CodeValid {
				wantLive = append(wantLive, id)
			}
			if keys[id].holdsSlot(now) {
				wantSlots = append(wantSlots, id)
			}
		}
		gotLive, gotSlots := e.storageLive(t, now)
		if !slices.Equal(gotLive, sortedCopy(wantLive)) {
			t.Fatalf("round %d: storage has %d live keys, the requests' replies imply %d:\nstorage %v\nmodel   %v", round, len(gotLive), len(wantLive), gotLive, sortedCopy(wantLive))
		}
		if !slices.Equal(gotSlots, sortedCopy(wantSlots)) {
			t.Fatalf("round %d: storage has %d keys holding a slot, the replies imply %d:\nstorage %v\nmodel   %v", round, len(gotSlots), len(wantSlots), gotSlots, sortedCopy(wantSlots))
		}
		// The cap holds exactly: never more keys holding a slot than
		// max_active_keys...
		if len(gotSlots) > concCap {
			t.Fatalf("round %d: %d keys hold a slot, more than max_active_keys %d", round, len(gotSlots), concCap)
		}
		// ...and no issue was refused while a slot was free. During a round
		// the slots taken are at most those taken at its start plus the
		// issues so far (a rotation swaps a slot, a revocation frees one),
		// so a refusal means the round's issues filled the rest.
		if roundRefused > 0 && slotsStart+roundIssued < concCap {
			t.Errorf("round %d: %d issues refused at the cap, but only %d slots were taken at the start and %d issues succeeded (cap %d)", round, roundRefused, slotsStart, roundIssued, concCap)
		}
	}

	// Afterwards, storage is consistent with every reply.
	now := e.clock.Now()
	stored := e.storageRecords(t)
	indexed := e.storageList(t, keyIndexPrefix+"r/prod/")
	if !slices.Equal(indexed, slices.Sorted(maps.Keys(stored))) {
		t.Errorf("index and records disagree: %d records, %d in the index", len(stored), len(indexed))
	}
	if len(stored) != len(keys) {
		t.Errorf("%d records in storage, %d keys issued", len(stored), len(keys))
	}
	counts := map[string]int{}
	for _, id := range order {
		k := keys[id]
		want := k.want(now)
		counts[want]++
		code, err := verifyCodeOf(e, k.apiKey)
		if err != nil || code != want {
			t.Errorf("key %s verifies %s (%v), want %s", id, code, err, want)
		}
		rec, ok := stored[id]
		if !ok {
			t.Errorf("key %s has no record", id)
			continue
		}
		if st := map[string]string{wire.CodeValid: statusActive, wire.CodeRevoked: statusRevoked, wire.CodeExpired: statusExpired}[want]; rec.status(now) != st {
			t.Errorf("key %s: record status %s, want %s", id, rec.status(now), st)
		}
		if k.rotations > 1 {
			t.Errorf("key %s was rotated %d times; only one rotation may win", id, k.rotations)
		}
		if k.rotations == 1 && (rec.RotatedTo != k.successor || stored[k.successor] == nil || stored[k.successor].RotatedFrom != id) {
			t.Errorf("key %s: rotated_to %s, the rotation returned %s", id, rec.RotatedTo, k.successor)
		}
		if k.rotations == 0 && rec.RotatedTo != "" {
			t.Errorf("key %s: rotated_to %s, but no rotation of it succeeded", id, rec.RotatedTo)
		}
	}
	t.Logf("%d workers x %d rounds: %d issued (%d refused at the cap), %d rotated (%d with grace, %d lost a race), %d revocations, %d revoked by revoke/role; final: %d valid, %d revoked, %d expired",
		concWorkers, concRounds, issued, refused, rotated, graceRotated, rotateLost, revokedN, bulkRevoked, counts[wire.CodeValid], counts[wire.CodeRevoked], counts[wire.CodeExpired])
	if refused == 0 || rotated == 0 || graceRotated == 0 || rotateLost == 0 || revokedN == 0 || bulkRevoked == 0 {
		t.Errorf("the mix did not exercise the cap, rotation, lost rotations and revocation (refused %d, rotated %d, with grace %d, lost %d, revoked %d, by role %d)", refused, rotated, graceRotated, rotateLost, revokedN, bulkRevoked)
	}
}

// storageRecords reads every key record straight from storage (not the
// cache).
func (e *testEnv) storageRecords(t *testing.T) map[string]*keyRecord {
	t.Helper()
	out := map[string]*keyRecord{}
	for _, id := range e.storageList(t, keyStoragePrefix) {
		rec, err := e.b.loadKey(context.Background(), e.storage, id)
		if err != nil || rec == nil {
			t.Fatalf("record %s: %v", id, err)
		}
		out[id] = rec
	}
	return out
}

func (e *testEnv) storageList(t *testing.T, prefix string) []string {
	t.Helper()
	ids, err := e.storage.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// storageLive lists the key_ids whose stored record is live at now, and
// those of them that hold a max_active_keys slot (not rotated out).
func (e *testEnv) storageLive(t *testing.T, now time.Time) (live, slots []string) {
	t.Helper()
	for id, rec := range e.storageRecords(t) {
		if rec.live(now) {
			live = append(live, id)
			if rec.RotatedTo == "" {
				slots = append(slots, id)
			}
		}
	}
	slices.Sort(live)
	slices.Sort(slots)
	return live, slots
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// The interleavings below are the ones the random test above can hit only
// by chance, forced with a storage that pauses one request at one storage
// call while the test runs another request to completion.

// pauseStorage pauses the first operation op on key (after the inner
// storage has answered it) until released.
type pauseStorage struct {
	logical.Storage
	op, key     string
	fired       atomic.Bool // not a sync.Once: its other callers would wait
	reached     chan struct{}
	releaseCh   chan struct{}
	releaseOnce sync.Once
}

// pauseAt installs the pause; call it before any request runs in the
// background (it swaps the storage under the test env).
func (e *testEnv) pauseAt(op, key string) *pauseStorage {
	p := &pauseStorage{Storage: e.storage.Storage, op: op, key: key, reached: make(chan struct{}), releaseCh: make(chan struct{})}
	e.storage.Storage = p
	// A test that fails early must not leave a request paused for good.
	e.t.Cleanup(p.release)
	return p
}

func (p *pauseStorage) release() { p.releaseOnce.Do(func() { close(p.releaseCh) }) }

func (p *pauseStorage) pause(op, key string) {
	if op == p.op && key == p.key && p.fired.CompareAndSwap(false, true) {
		close(p.reached)
		<-p.releaseCh
	}
}

func (p *pauseStorage) List(ctx context.Context, prefix string) ([]string, error) {
	ids, err := p.Storage.List(ctx, prefix)
	p.pause("list", prefix)
	return ids, err
}

func (p *pauseStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	ent, err := p.Storage.Get(ctx, key)
	p.pause("get", key)
	return ent, err
}

// pending is a request running in a goroutine.
type pending struct {
	what string
	done chan struct{}
	resp *logical.Response
	err  error
}

func (e *testEnv) start(req *logical.Request) *pending {
	r := &pending{what: fmt.Sprintf("%s %s", req.Operation, req.Path), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.resp, r.err = e.handle(req)
	}()
	return r
}

// wait returns the request's response, failing the test if it takes longer
// than a request can (a deadlock) or fails.
func (r *pending) wait(t testing.TB) *logical.Response {
	t.Helper()
	waitFor(t, r.what, r.done)
	if r.err != nil {
		t.Fatalf("%s: %v", r.what, r.err)
	}
	if r.resp == nil {
		t.Fatalf("%s: no response", r.what)
	}
	return r.resp
}

func (r *pending) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// inBackground starts a request and returns once it is paused at p.
func (e *testEnv) inBackground(p *pauseStorage, req *logical.Request) *pending {
	e.t.Helper()
	r := e.start(req)
	timeout := waitTimeout(e.t)
	select {
	case <-p.reached:
	case <-r.done:
		e.t.Fatalf("%s finished without reaching the pause at %s %s: %v %v", r.what, p.op, p.key, r.resp, r.err)
	case <-time.After(timeout):
		e.t.Fatalf("%s never reached %s %s in %s", r.what, p.op, p.key, timeout)
	}
	return r
}

func errorText(resp *logical.Response) string {
	switch {
	case resp == nil:
		return "no response"
	case resp.IsError():
		return resp.Error().Error()
	}
	return fmt.Sprintf("success, key %v", resp.Data["key_id"]) // never the api_key
}

// A rotation completing while creds counts a full role's keys: if the count
// listed the index before the successor was indexed and read the
// predecessor after it was retired, it would see a free slot that is not.
// Rotation takes the role's lock, as creds does, so it waits for the issue.
func TestConcurrency_rotationDuringIssueKeepsTheCap(t *testing.T) {
	for _, grace := range []int{0, 60} {
		t.Run(fmt.Sprintf("grace=%ds", grace), func(t *testing.T) {
			e := newTestEnv(t)
			e.role("r", map[string]any{"environment": "prod", "max_active_keys": 2})
			a, _ := e.issue("r", nil)
			b, _ := e.issue("r", nil)

			p := e.pauseAt("list", keyIndexPrefix+"r/prod/")
			creds := e.inBackground(p, &logical.Request{Operation: logical.ReadOperation, Path: "creds/r"})
			rot := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: "keys/" + a["key_id"].(string) + "/rotate", Data: map[string]any{"grace": grace}})
			// Give the rotation time to run ahead of the paused issue, as
			// it would without the role's lock (it needs a few ms).
			select {
			case <-rot.done:
			case <-time.After(300 * time.Millisecond):
			}
			rotatedFirst := rot.finished()
			p.release()
			resp := creds.wait(t)
			rotResp := rot.wait(t)
			if rotResp.IsError() {
				t.Fatalf("rotation: %v", rotResp.Error())
			}
			succ := rotResp.Data

			// Exactly the cap: b and the successor hold the slots; the
			// issue, which counted a full role, is refused.
			if !resp.IsError() || !strings.Contains(resp.Error().Error(), "max_active_keys") {
				t.Fatalf("creds at the cap during a rotation (rotation finished first: %v) answered %s", rotatedFirst, errorText(resp))
			}
			now := e.clock.Now()
			live, slots := e.storageLive(t, now)
			wantSlots := sortedCopy([]string{b["key_id"].(string), succ["key_id"].(string)})
			wantLive := wantSlots
			if grace > 0 {
				wantLive = sortedCopy(append(wantLive, a["key_id"].(string)))
			}
			if !slices.Equal(slots, wantSlots) || !slices.Equal(live, wantLive) {
				t.Fatalf("live keys %v, holding a slot %v; want %v and %v", live, slots, wantLive, wantSlots)
			}
			wantOld := wire.CodeRevoked
			if grace > 0 {
				wantOld = wire.CodeValid
			}
			e.wantCode(map[string]any{"api_key": a["api_key"]}, wantOld)
			e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
			e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 2 live keys")
		})
	}
}

// A key rotated out with a grace period verifies until the grace ends but
// no longer holds a max_active_keys slot (its successor does), so a role at
// its cap can rotate with overlap and still issue no more than the cap; and
// a key has at most one successor.
func TestConcurrency_graceKeyHoldsNoSlot(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "ttl": "1h", "max_active_keys": 1})
	a, _ := e.issue("r", nil)
	e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 1 live keys")
	succ := e.ok(logical.UpdateOperation, "keys/"+a["key_id"].(string)+"/rotate", map[string]any{"grace": "60s"}).Data
	e.wantCode(map[string]any{"api_key": a["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeValid)
	e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 1 live keys")
	e.badRequest(logical.UpdateOperation, "keys/"+a["key_id"].(string)+"/rotate", map[string]any{"grace": "60s"}, "key_id", "already rotated to "+succ["key_id"].(string))
	if live, slots := e.storageLive(t, e.clock.Now()); len(live) != 2 || len(slots) != 1 || slots[0] != succ["key_id"] {
		t.Fatalf("during the grace: live %v, holding a slot %v; want both keys live and only %v holding one", live, slots, succ["key_id"])
	}

	// Two concurrent rotations of one key: exactly one wins.
	r1 := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: "keys/" + succ["key_id"].(string) + "/rotate", Data: map[string]any{"grace": 30}})
	r2 := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: "keys/" + succ["key_id"].(string) + "/rotate", Data: map[string]any{"grace": 30}})
	resp1, resp2 := r1.wait(t), r2.wait(t)
	if resp1.IsError() == resp2.IsError() {
		t.Fatalf("two rotations of one key: %s and %s; want exactly one to succeed", errorText(resp1), errorText(resp2))
	}
	third := resp1
	if resp1.IsError() {
		third = resp2
		resp1, resp2 = resp2, resp1
	}
	if !strings.Contains(resp2.Error().Error(), "already rotated to "+third.Data["key_id"].(string)) {
		t.Fatalf("losing rotation answered %s", resp2.Error())
	}
	if live, slots := e.storageLive(t, e.clock.Now()); len(live) != 3 || len(slots) != 1 || slots[0] != third.Data["key_id"] {
		t.Fatalf("after the second rotation: live %v, holding a slot %v", live, slots)
	}

	e.clock.Add(60 * time.Second)
	e.wantCode(map[string]any{"api_key": a["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": succ["api_key"]}, wire.CodeRevoked)
	e.wantCode(map[string]any{"api_key": third.Data["api_key"]}, wire.CodeValid)
	e.badRequest(logical.ReadOperation, "creds/r", nil, "max_active_keys", "already has 1 live keys")
	e.ok(logical.DeleteOperation, "keys/"+third.Data["key_id"].(string), nil)
	e.issue("r", nil)
}

// revoke/role or revoke/environment during a rotation: the rotation's
// successor must not survive the revocation, nor the old key its grace.
// The rotation has read and checked its predecessor (still live) and is
// paused before it issues; the bulk revocation's watermark is written; the
// clock moves on, so the successor is created after the watermark. It is
// still covered: a successor counts from its predecessor's birth.
func TestConcurrency_rotationDuringBulkRevocation(t *testing.T) {
	for _, bulk := range []string{"revoke/role/r", "revoke/environment/prod"} {
		for _, grace := range []int{0, 60} {
			t.Run(fmt.Sprintf("%s/grace=%ds", bulk, grace), func(t *testing.T) {
				e := newTestEnv(t)
				e.role("r", map[string]any{"environment": "prod"})
				a, _ := e.issue("r", nil)
				b, _ := e.issue("r", nil)
				e.clock.Add(time.Second)

				p := e.pauseAt("list", "wal/")
				rotate := e.inBackground(p, &logical.Request{Operation: logical.UpdateOperation, Path: "keys/" + a["key_id"].(string) + "/rotate", Data: map[string]any{"grace": grace}})
				revoke := e.start(&logical.Request{Operation: logical.UpdateOperation, Path: bulk, Data: map[string]any{}})
				deadline := time.Now().Add(waitTimeout(t))
				for {
					if m := e.b.marks.cur.Load(); m != nil && !m.empty() {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s wrote no watermark", bulk)
					}
					time.Sleep(time.Millisecond)
				}
				e.clock.Add(time.Second)
				p.release()
				succ := rotate.wait(t)
				if succ.IsError() {
					t.Fatalf("rotate: %v", succ.Error())
				}
				resp := revoke.wait(t)
				if resp.IsError() {
					t.Fatalf("%s: %v", bulk, resp.Error())
				}
				for _, k := range []map[string]any{a, b, succ.Data} {
					e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
					if rec := e.ok(logical.ReadOperation, "keys/"+k["key_id"].(string), nil).Data; rec["status"] != statusRevoked {
						t.Errorf("keys/%s after %s: status %v", k["key_id"], bulk, rec["status"])
					}
				}
				// The job (which waited for the rotation's lock on a) wrote
				// every record, the successor's included.
				if live, _ := e.storageLive(t, e.clock.Now()); len(live) > 0 {
					t.Errorf("after %s returned, stored records %v are still live", bulk, live)
				}
			})
		}
	}
}

// A verify that misses the cache reads the record from storage and caches
// it; a revocation landing between the read and the caching must not be
// overwritten by the stale copy. (Misses happen for every key after a
// plugin restart, a cache eviction or an invalidation from another node.)
func TestConcurrency_cacheFillDuringRevocation(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	e.b.cache.drop(id) // as after a plugin restart

	p := e.pauseAt("get", keyStoragePrefix+id)
	v := e.inBackground(p, &logical.Request{Operation: logical.UpdateOperation, Path: "verify", Data: map[string]any{"api_key": d["api_key"]}})
	e.ok(logical.DeleteOperation, "keys/"+id, map[string]any{"reason": "leaked"})
	p.release()
	v.wait(t) // it may say VALID: it began before the revocation
	rec, _ := e.b.loadKey(context.Background(), e.storage, id)
	if rec.status(e.clock.Now()) != statusRevoked {
		t.Fatalf("stored record: %s", rec.status(e.clock.Now()))
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeRevoked)
	if st := e.ok(logical.ReadOperation, "keys/"+id, nil).Data["status"]; st != statusRevoked {
		t.Fatalf("keys/%s status %v after revocation", id, st)
	}
}

// The same on a standby: the active node revokes the key, and this node
// learns of it only through Invalidate, which lands between a verify's
// storage read and its caching.
func TestConcurrency_cacheFillDuringInvalidation(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	e.b.cache.drop(id)

	p := e.pauseAt("get", keyStoragePrefix+id)
	v := e.inBackground(p, &logical.Request{Operation: logical.UpdateOperation, Path: "verify", Data: map[string]any{"api_key": d["api_key"]}})
	// The active node's write, replicated under this node's storage.
	rec, err := e.b.loadKey(context.Background(), p.Storage, id)
	if err != nil || rec == nil {
		t.Fatalf("record %s: %v", id, err)
	}
	rec.RevokedAt = e.clock.Now()
	rec.editNotes(func(n *KeyNotes) { n.RevokedBy, n.RevokeReason = "active node", "leaked" })
	ent, err := logical.StorageEntryJSON(keyStoragePrefix+id, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Storage.Put(context.Background(), ent); err != nil {
		t.Fatal(err)
	}
	e.b.invalidate(context.Background(), keyStoragePrefix+id)
	p.release()
	v.wait(t)
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeRevoked)
}

// Issues of a role without max_active_keys share the role's lock: one
// paused half-way does not hold up the next. A capped role's issues take
// it alone, so there the second waits for the first.
func TestConcurrency_uncappedIssuesRunInParallel(t *testing.T) {
	for _, capped := range []bool{false, true} {
		t.Run(fmt.Sprintf("capped=%v", capped), func(t *testing.T) {
			e := newTestEnv(t)
			role := map[string]any{"environment": "prod"}
			if capped {
				role["max_active_keys"] = 10
			}
			e.role("r", role)
			e.issue("r", nil)   // the pepper exists: the paused issue is the only one past getRole
			e.b.roles.drop("r") // so the first issue reads the role from storage, where it pauses
			p := e.pauseAt("get", roleStoragePrefix+"r")
			first := e.inBackground(p, &logical.Request{Operation: logical.ReadOperation, Path: "creds/r"})
			second := e.start(&logical.Request{Operation: logical.ReadOperation, Path: "creds/r"})
			select {
			case <-second.done:
			case <-time.After(2 * time.Second):
			}
			if second.finished() == capped {
				t.Fatalf("capped=%v: the second issue finished while the first was paused: %v", capped, second.finished())
			}
			p.release()
			for _, r := range []*pending{first, second} {
				if resp := r.wait(t); resp.IsError() {
					t.Fatalf("%s: %s", r.what, errorText(resp))
				}
			}
		})
	}
}
