package vaultplugin

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestKeys_listFiltersAndReadShowsNoSecret(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	e.role("d", map[string]any{"environment": "dev", "key_type": "hmac"})
	p1, _ := e.issue("p", map[string]any{"name": "bot"})
	e.issue("p", nil)
	d1, _ := e.issue("d", nil)

	all := e.ok(logical.ListOperation, "keys/", nil).Data
	if len(all["keys"].([]string)) != 3 {
		t.Fatalf("list: %v", all["keys"])
	}
	byRole := e.ok(logical.ListOperation, "keys/", map[string]any{"role": "p"}).Data
	if len(byRole["keys"].([]string)) != 2 {
		t.Fatalf("role filter: %v", byRole["keys"])
	}
	byEnv := e.ok(logical.ListOperation, "keys/", map[string]any{"environment": "dev"}).Data
	if asJSON(byEnv["keys"]) != asJSON([]string{d1["key_id"].(string)}) {
		t.Fatalf("environment filter: %v", byEnv["keys"])
	}
	info := all["key_info"].(map[string]any)[p1["key_id"].(string)].(map[string]any)
	if info["name"] != "bot" || info["status"] != "active" || info["environment"] != "prod" {
		t.Fatalf("key_info: %v", info)
	}
	for _, d := range []map[string]any{p1, d1} {
		body := asJSON(e.ok(logical.ReadOperation, "keys/"+d["key_id"].(string), nil).Data)
		for _, secret := range []string{d["api_key"].(string), "hash"} {
			if strings.Contains(body, secret) {
				t.Fatalf("keys read reveals %q", secret)
			}
		}
		if s, ok := d["secret_key"].(string); ok && strings.Contains(body, s) {
			t.Fatal("keys read reveals the hmac secret_key")
		}
	}
	if resp := e.do(logical.ReadOperation, "keys/AAAAAAAAAAAA", nil); resp != nil {
		t.Fatalf("unknown key: %v", resp)
	}
	e.badRequest(logical.ReadOperation, "keys/short", nil, "key_id", "12 base62")
}

func TestKeys_deleteRevokesWithWhoWhenWhy(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	d, _ := e.issue("p", nil)
	id := d["key_id"].(string)
	e.ok(logical.DeleteOperation, "keys/"+id, map[string]any{"reason": "customer offboarded"})
	rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	if rec["status"] != "revoked" || rec["revoke_reason"] != "customer offboarded" ||
		rec["revoked_by"] != "token-tester (entity entity-1234)" || rec["revoked_at"] != e.clock.Now().Format("2006-01-02T15:04:05Z") {
		t.Fatalf("revocation record: %v", rec)
	}
	e.ok(logical.DeleteOperation, "keys/"+id, nil) // idempotent
	e.ok(logical.DeleteOperation, "keys/AAAAAAAAAAAA", nil)
	e.badRequest(logical.DeleteOperation, "keys/"+id, map[string]any{"reason": "bad\x00reason"}, "reason", "control characters")
}

func TestKeys_usageCountedInMemoryAndFlushed(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	d, _ := e.issue("p", nil)
	for range 7 {
		e.wantCode(map[string]any{"api_key": d["api_key"], "source_ip": "203.0.113.9"}, wire.CodeValid)
	}
	id := d["key_id"].(string)
	rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	if rec["use_count"] != uint64(7) || rec["last_source_ip"] != "203.0.113.9" {
		t.Fatalf("pending usage not visible: %v", rec)
	}
	stored, _ := e.b.loadKey(t.Context(), e.storage, id)
	if stored.UseCount != 0 {
		t.Fatal("verify wrote usage to storage")
	}
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	stored, _ = e.b.loadKey(t.Context(), e.storage, id)
	if stored.UseCount != 7 || stored.LastUsedAt.IsZero() || stored.LastSourceIP != "203.0.113.9" {
		t.Fatalf("flush did not persist usage: %+v", stored)
	}
	// Counted once: the flushed count is not added again.
	if rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data; rec["use_count"] != uint64(7) {
		t.Fatalf("use_count after flush: %v", rec["use_count"])
	}
	// A clean shutdown flushes too.
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid)
	e.b.clean(t.Context())
	if stored, _ = e.b.loadKey(t.Context(), e.storage, id); stored.UseCount != 8 {
		t.Fatalf("clean did not flush: %d", stored.UseCount)
	}
}

// An expired key's record is history: revoking it afterwards, one by one or
// in bulk, must not rewrite who ended it and why.
func TestKeys_revokingAnExpiredKeyKeepsItsExpiry(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod", "ttl": "1h"})
	d, _ := e.issue("p", nil)
	id := d["key_id"].(string)
	e.clock.Add(2 * time.Hour)
	e.ok(logical.DeleteOperation, "keys/"+id, map[string]any{"reason": "cleanup"})
	bulk := e.ok(logical.UpdateOperation, "revoke/role/p", map[string]any{"reason": "INC-1"}).Data
	if n, _ := bulk["revoked"].(int); n != 0 {
		t.Errorf("revoke/role counted an expired key: %v", bulk)
	}
	rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data
	if rec["status"] != "expired" || rec["revoked_by"] != nil && rec["revoked_by"] != "" || rec["revoke_reason"] != nil && rec["revoke_reason"] != "" {
		t.Fatalf("an expired key's record was rewritten: status %v, revoked_by %v, revoke_reason %v", rec["status"], rec["revoked_by"], rec["revoke_reason"])
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, "EXPIRED")
}

// A periodic flush rewrites at most a batch of records for usage alone,
// those that waited longest first; the rest wait for the next run, and
// reads count them meanwhile. Anomaly findings are never held back.
// runsOutOfTime is storage whose writes fail, as a flush's context would
// make them, once allowed of them have been made.
type runsOutOfTime struct {
	logical.Storage
	allowed int
}

func (s *runsOutOfTime) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.allowed == 0 {
		return context.DeadlineExceeded
	}
	s.allowed--
	return s.Storage.Put(ctx, e)
}

// A shutdown's flush (no batch limit) that runs out of time has written the
// keys waiting longest, and queued the rest again.
func TestKeys_usageFlushOutOfTimeWritesOldestFirst(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	var ids []string
	var keys []any
	for range 4 {
		d, _ := e.issue("p", nil)
		ids, keys = append(ids, d["key_id"].(string)), append(keys, d["api_key"])
	}
	// Used newest first: ids[3] has waited longest.
	for i := 3; i >= 0; i-- {
		e.wantCode(map[string]any{"api_key": keys[i]}, wire.CodeValid)
		e.clock.Add(time.Second)
	}
	if err := e.b.flushUsage(t.Context(), &runsOutOfTime{Storage: e.storage, allowed: 2}, 0); err == nil {
		t.Fatal("a flush whose writes failed reported no error")
	}
	stored := func(id string) uint64 {
		t.Helper()
		r, err := e.b.loadKey(t.Context(), e.storage, id)
		if err != nil || r == nil {
			t.Fatal(id, err)
		}
		return r.UseCount
	}
	if got := []uint64{stored(ids[3]), stored(ids[2]), stored(ids[1]), stored(ids[0])}; !slices.Equal(got, []uint64{1, 1, 0, 0}) {
		t.Fatalf("stored use_count, oldest first, after time ran out at two writes: %v, want [1 1 0 0]", got)
	}
	if left := e.b.usage.take(); len(left) != 2 || left[ids[1]].count != 1 || left[ids[0]].count != 1 {
		t.Fatalf("queued again: %+v, want the two unwritten keys", left)
	}
}

func TestKeys_usageFlushWritesABatchOldestFirst(t *testing.T) {
	e := newTestEnv(t)
	e.role("p", map[string]any{"environment": "prod"})
	e.role("s", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
	var ids []string
	var keys []any
	for range 5 {
		d, _ := e.issue("p", nil)
		ids, keys = append(ids, d["key_id"].(string)), append(keys, d["api_key"])
	}
	// Used newest first: ids[4] has waited longest.
	for i := 4; i >= 0; i-- {
		e.wantCode(map[string]any{"api_key": keys[i]}, wire.CodeValid)
		e.clock.Add(time.Second)
	}
	sus, _ := e.issue("s", nil)
	from := func(ip string) map[string]any { return map[string]any{"api_key": sus["api_key"], "source_ip": ip} }
	e.wantCode(from("10.0.0.1"), wire.CodeValid)
	e.wantCode(from("198.51.100.7"), wire.CodeSuspended)

	stored := func(id string) uint64 {
		t.Helper()
		r, err := e.b.loadKey(t.Context(), e.storage, id)
		if err != nil || r == nil {
			t.Fatal(id, err)
		}
		return r.UseCount
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 2); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{stored(ids[4]), stored(ids[3]), stored(ids[2]), stored(ids[1]), stored(ids[0])}; !slices.Equal(got, []uint64{1, 1, 0, 0, 0}) {
		t.Fatalf("after one batch of 2, stored use_count oldest first: %v, want [1 1 0 0 0]", got)
	}
	if r, _ := e.b.loadKey(t.Context(), e.storage, sus["key_id"].(string)); r.SuspendedAt.IsZero() || r.UseCount != 1 {
		t.Fatalf("the suspension waited behind the batch: %+v", r)
	}
	for _, id := range ids {
		if rec := e.ok(logical.ReadOperation, "keys/"+id, nil).Data; rec["use_count"] != uint64(1) {
			t.Fatalf("%s: use_count %v while its usage waits, want 1", id, rec["use_count"])
		}
	}
	// A key used again keeps its place in the queue (its oldest use).
	e.wantCode(map[string]any{"api_key": keys[0]}, wire.CodeValid)
	if err := e.b.flushUsage(t.Context(), e.storage, 2); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{stored(ids[2]), stored(ids[1]), stored(ids[0])}; !slices.Equal(got, []uint64{1, 1, 0}) {
		t.Fatalf("second batch: %v, want [1 1 0]", got)
	}
	if err := e.b.flushUsage(t.Context(), e.storage, 2); err != nil {
		t.Fatal(err)
	}
	if got := stored(ids[0]); got != 2 {
		t.Fatalf("last key: stored use_count %d, want 2", got)
	}
	if left := len(e.b.usage.take()); left != 0 {
		t.Fatalf("%d keys still pending after three batches", left)
	}
}
