package vaultplugin

import (
	"context"
	"fmt"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// holdBulk keeps bulk jobs from running (no inline work, no worker), so a
// test sees what the watermark alone does.
func (e *testEnv) holdBulk() {
	e.b.bulk.mu.Lock()
	e.b.bulk.inline, e.b.bulk.stopped = 0, true
	e.b.bulk.mu.Unlock()
}

// releaseBulk lets jobs run and waits until job id is done.
func (e *testEnv) releaseBulk(id string) map[string]any {
	e.t.Helper()
	e.b.bulk.mu.Lock()
	e.b.bulk.stopped = false
	e.b.bulk.mu.Unlock()
	e.b.resumeBulkJobs(e.storage)
	return e.waitJob(id)
}

func (e *testEnv) waitJob(id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout(e.t))
	for {
		j := e.ok(logical.ReadOperation, "revoke/jobs/"+id, nil).Data
		if j["state"] == jobDone {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s not done: %v", id, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *testEnv) storedRecord(keyID string) *keyRecord {
	e.t.Helper()
	r, err := e.b.loadStoredKey(context.Background(), e.storage, keyID)
	if err != nil || r == nil {
		e.t.Fatalf("stored record %s: %v", keyID, err)
	}
	return r
}

// The watermark alone revokes: before the job writes a single record, every
// covered key is refused, shown revoked (when, by whom, why, which job), can
// be neither renewed nor rotated, and local verifiers get one event; keys of
// other roles, and keys issued after (at the same clock reading), are
// untouched. Then the job writes every record and event.
func TestBulk_watermarkTakesEffectBeforeTheJob(t *testing.T) {
	for _, tc := range []struct{ path, scope, kind, field, target string }{
		{"revoke/role/p", scopeRole, eventRevokedRole, "role", "p"},
		{"revoke/environment/prod", scopeEnv, eventRevokedEnvironment, "environment", "prod"},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			e := newTestEnv(t)
			e.role("p", map[string]any{"environment": "prod", "max_active_keys": 100})
			e.role("q", map[string]any{"environment": "dev"})
			var keys []map[string]any
			var secrets []*logical.Secret
			for range 5 {
				d, s := e.issue("p", nil)
				s.IssueTime = e.clock.Now()
				keys, secrets = append(keys, d), append(secrets, s)
			}
			other, _ := e.issue("q", nil)
			_, cursor, _ := e.feed("")
			e.holdBulk()

			puts := e.storage.puts
			reply := e.ok(logical.UpdateOperation, tc.path, map[string]any{"reason": "INC-9"}).Data
			// One job record, one watermark, one feed event.
			if n := e.storage.puts - puts; n != 3 {
				t.Errorf("%s wrote %d entries, want 3 (job, watermark, event)", tc.path, n)
			}
			id, _ := reply["job_id"].(string)
			before, _ := reply["revoked_before"].(string)
			if id == "" || before == "" || reply["state"] != jobRunning || reply["status_path"] != "revoke/jobs/"+id {
				t.Fatalf("reply: %v", reply)
			}
			if _, ok := reply["key_ids"]; ok {
				t.Errorf("an unfinished job listed key_ids: %v", reply)
			}
			after, _ := e.issue("p", nil) // same clock reading as the watermark

			events, _, _ := e.feed(cursor)
			if len(events) != 1 || events[0]["kind"] != tc.kind || events[0][tc.field] != tc.target || events[0]["key_id"] != "" || events[0]["revoked_before"] != before {
				t.Fatalf("feed after %s: %v", tc.path, events)
			}

			for i, k := range keys {
				e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
				rec := e.ok(logical.ReadOperation, "keys/"+k["key_id"].(string), nil).Data
				if rec["status"] != statusRevoked || rec["revoke_reason"] != "INC-9" || rec["revoke_job"] != id ||
					rec["revoked_by"] != "token-tester (entity entity-1234)" || rec["revoked_at"] != formatTime(mustTime(t, before)) {
					t.Errorf("keys/%s before its page: %v", k["key_id"], rec)
				}
				if r := e.storedRecord(k["key_id"].(string)); !r.RevokedAt.IsZero() {
					t.Errorf("stored record %s already revoked: the test holds the job", k["key_id"])
				}
				if resp := e.leaseOp(logical.RenewOperation, secrets[i]); !resp.IsError() {
					t.Errorf("renew of %s covered by the watermark: %v", k["key_id"], resp.Data)
				}
			}
			e.badRequest(logical.UpdateOperation, "keys/"+keys[0]["key_id"].(string)+"/rotate", nil, "key_id", "revoked")
			e.wantCode(map[string]any{"api_key": after["api_key"]}, wire.CodeValid)
			if tc.scope == scopeRole {
				e.wantCode(map[string]any{"api_key": other["api_key"]}, wire.CodeValid)
			}
			list := e.ok(logical.ListOperation, "revoke/jobs/", nil).Data
			if ks, _ := list["keys"].([]string); len(ks) != 1 || ks[0] != id {
				t.Errorf("revoke/jobs/: %v", list)
			}

			job := e.releaseBulk(id)
			if job["revoked"] != 5 || job["left"] != 0 || job["errors"] != 0 || job["skipped"] != 1 {
				t.Errorf("job: %v", job)
			}
			for _, k := range keys {
				r := e.storedRecord(k["key_id"].(string))
				if !r.RevokedAt.Equal(mustTime(t, before)) || r.notes().RevokeJob != id || r.notes().RevokeReason != "INC-9" {
					t.Errorf("stored record %s after the job: revoked_at %v job %q reason %q", r.KeyID, r.RevokedAt, r.notes().RevokeJob, r.notes().RevokeReason)
				}
				e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeRevoked)
			}
			if r := e.storedRecord(after["key_id"].(string)); !r.RevokedAt.IsZero() {
				t.Errorf("key issued after the watermark revoked by the job")
			}
			e.wantCode(map[string]any{"api_key": after["api_key"]}, wire.CodeValid)
			events, _, _ = e.feed(cursor)
			if len(events) != 1+5 {
				t.Errorf("feed after the job: %d events, want the bulk one and 5 per-key", len(events))
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Verify of a cached key reads no storage for the watermarks: they are in
// memory, loaded once, replaced on write.
func TestBulk_verifyReadsNoWatermarkStorage(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	e.role("q", map[string]any{"environment": "prod"})
	k, _ := e.issue("p", nil)
	e.ok(logical.UpdateOperation, "revoke/role/q", nil)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	gets := e.storage.gets
	for range 10 {
		e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	}
	if n := e.storage.gets - gets; n != 0 {
		t.Errorf("10 verifies of a cached key read storage %d times", n)
	}
	// Another node's write: Invalidate drops the watermarks, the next read
	// loads them (once).
	e.b.invalidate(context.Background(), watermarkPrefix+"role/q")
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	e.wantCode(map[string]any{"api_key": k["api_key"]}, wire.CodeValid)
	if n := e.storage.gets - gets; n == 0 || n > 3 {
		t.Errorf("after an invalidation, two verifies read storage %d times, want one load", n)
	}
}

// A standby learns of a watermark through Invalidate and refuses at once.
func TestBulk_invalidateReachesAnotherNode(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	k, _ := e.issue("p", nil)
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	standby, err := newMountedBackend(context.Background(), conf, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	verify := func() string {
		resp, err := standby.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "verify", Storage: e.storage, Data: map[string]any{"api_key": k["api_key"]}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Data["code"].(string)
	}
	if c := verify(); c != wire.CodeValid {
		t.Fatalf("standby: %s", c)
	}
	e.holdBulk()
	e.ok(logical.UpdateOperation, "revoke/role/p", nil)
	standby.invalidate(context.Background(), watermarkPrefix+"role/p")
	if c := verify(); c != wire.CodeRevoked {
		t.Fatalf("standby after the watermark's Invalidate: %s", c)
	}
}

// A job stopped part way (a restart, a failover) is taken up by the next
// node from its cursor and finishes; nothing is done twice.
func TestBulk_jobResumesAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod", "max_active_keys": 2000})
	n := bulkPage*2 + 37
	for range n {
		e.issue("p", nil)
	}
	e.holdBulk()
	id := e.ok(logical.UpdateOperation, "revoke/role/p", nil).Data["job_id"].(string)
	if _, more, err := e.b.bulkPage(context.Background(), e.storage, id, nil); err != nil || !more {
		t.Fatalf("first page: more %v, %v", more, err)
	}
	j := e.ok(logical.ReadOperation, "revoke/jobs/"+id, nil).Data
	if j["done"] != bulkPage || j["left"] != n-bulkPage || j["state"] != jobRunning {
		t.Fatalf("after one page: %v", j)
	}
	puts := e.storage.puts

	// "Restart": a new backend on the same storage, initialised as Vault
	// does on the active node.
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	next, err := newMountedBackend(context.Background(), conf, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.b = next
	if err := next.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	j = e.waitJob(id)
	if j["done"] != n || j["revoked"] != n || j["left"] != 0 || j["errors"] != 0 {
		t.Fatalf("after the resume: %v", j)
	}
	// Each remaining key: its record and its event; plus the job's cursor.
	if w := e.storage.puts - puts; w > 2*(n-bulkPage)+10 {
		t.Errorf("the resumed job wrote %d entries for %d keys left: work was redone", w, n-bulkPage)
	}
	for _, r := range e.storageRecords(t) {
		if r.notes().RevokeJob != id {
			t.Fatalf("stored record %s not revoked by the job", r.KeyID)
		}
	}
}

// A second bulk revocation of the same role later: keys issued between the
// two are the second's, earlier ones keep the first's record.
func TestBulk_twoWatermarks(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	a, _ := e.issue("p", nil)
	e.holdBulk()
	first := e.ok(logical.UpdateOperation, "revoke/role/p", map[string]any{"reason": "one"}).Data["job_id"]
	e.clock.Add(time.Minute)
	b, _ := e.issue("p", nil)
	e.wantCode(map[string]any{"api_key": b["api_key"]}, wire.CodeValid)
	second := e.ok(logical.UpdateOperation, "revoke/role/p", map[string]any{"reason": "two"}).Data["job_id"]
	for k, want := range map[string]any{a["key_id"].(string): first, b["key_id"].(string): second} {
		rec := e.ok(logical.ReadOperation, "keys/"+k, nil).Data
		if rec["revoke_job"] != want {
			t.Errorf("keys/%s revoke_job %v, want %v", k, rec["revoke_job"], want)
		}
	}
	e.releaseBulk(second.(string))
	e.waitJob(first.(string))
	if r := e.storedRecord(a["key_id"].(string)); r.notes().RevokeReason != "one" {
		t.Errorf("a: reason %q", r.notes().RevokeReason)
	}
}

// A key that ended before the watermark keeps its own end.
func TestBulk_endedKeysKeepTheirHistory(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod", "ttl": "1m"})
	old, _ := e.issue("p", nil)
	gone, _ := e.issue("p", nil)
	e.ok(logical.DeleteOperation, "keys/"+gone["key_id"].(string), map[string]any{"reason": "earlier"})
	e.clock.Add(2 * time.Minute)
	e.ok(logical.UpdateOperation, "revoke/role/p", nil)
	if rec := e.ok(logical.ReadOperation, "keys/"+old["key_id"].(string), nil).Data; rec["status"] != statusExpired || rec["revoked_at"] != "" {
		t.Errorf("expired key after a bulk revocation: %v", rec)
	}
	if rec := e.ok(logical.ReadOperation, "keys/"+gone["key_id"].(string), nil).Data; rec["revoke_reason"] != "earlier" {
		t.Errorf("revoked key's history rewritten: %v", rec)
	}
}

var _ = fmt.Sprint
