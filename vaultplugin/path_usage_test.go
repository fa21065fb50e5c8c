package vaultplugin

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// ticketFor verifies key through the engine and returns its usage_ticket.
func (e *testEnv) ticketFor(apiKey any) string {
	e.t.Helper()
	got := e.wantCode(map[string]any{"api_key": apiKey}, wire.CodeValid)
	tk, _ := got["usage_ticket"].(string)
	if tk == "" {
		e.t.Fatalf("a VALID answer carries no usage_ticket: %v", got)
	}
	return tk
}

func (e *testEnv) report(entries ...map[string]any) (accepted, rejected int, resp *logical.Response) {
	e.t.Helper()
	reports := make([]any, len(entries))
	for i, en := range entries {
		reports[i] = en
	}
	resp = e.ok(logical.UpdateOperation, "usage", map[string]any{"reports": reports})
	return resp.Data["accepted"].(int), resp.Data["rejected"].(int), resp
}

func TestUsage_reportsJoinCountsAndBadBatchChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	tk := e.ticketFor(d["api_key"]) // use 1
	e.clock.Add(2 * time.Second)
	at := e.clock.Now().Add(-time.Second).Format(time.RFC3339)
	if acc, rej, _ := e.report(map[string]any{"key_id": id, "count": 41, "last_used_at": at, "source_ip": "10.9.9.9", "ticket": tk}); acc != 1 || rej != 0 {
		t.Fatalf("accepted %d rejected %d", acc, rej)
	}
	e.wantCode(map[string]any{"api_key": d["api_key"]}, wire.CodeValid) // use 43
	if got := e.ok(logical.ReadOperation, "keys/"+id, nil).Data; got["use_count"] != uint64(43) {
		t.Fatalf("use_count %v, want 43", got["use_count"])
	}
	for _, bad := range []map[string]any{
		{"key_id": "short", "count": 1, "last_used_at": at, "ticket": tk},
		{"key_id": id, "count": -1, "last_used_at": at, "ticket": tk},
		{"key_id": id, "count": 1.5, "last_used_at": at, "ticket": tk},
		{"key_id": id, "count": 1, "last_used_at": "yesterday", "ticket": tk},
		{"key_id": id, "count": 1, "last_used_at": at, "source_ip": "not-an-ip", "ticket": tk},
		{"key_id": id, "count": 1, "last_used_at": at, "extra": true, "ticket": tk},
		{"key_id": id, "count": 1, "last_used_at": at},
		{"key_id": id, "count": 1, "last_used_at": at, "ticket": 7},
		{"key_id": id, "count": 1, "last_used_at": at, "ticket": strings.Repeat("A", 200)},
	} {
		e.badRequest(logical.UpdateOperation, "usage", map[string]any{"reports": []any{
			map[string]any{"key_id": id, "count": 5, "last_used_at": at, "ticket": tk}, bad,
		}}, "reports", "entry 1")
	}
	e.badRequest(logical.UpdateOperation, "usage", map[string]any{"reports": []any{
		map[string]any{"key_id": id, "count": 1, "last_used_at": at},
	}}, "reports", "ticket is required")
	if got := e.ok(logical.ReadOperation, "keys/"+id, nil).Data; got["use_count"] != uint64(43) {
		t.Fatalf("a rejected batch was partly applied: use_count %v", got["use_count"])
	}
}

// Finding 9: a token that may write usage but does not hold a key cannot
// touch that key's counts or source baseline.
func TestUsage_ticketBindsReportsToPossession(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod", "on_anomaly": "suspend", "flag_new_source": true})
	mine, _ := e.issue("r", nil)
	victim, _ := e.issue("r", nil)
	doomed, _ := e.issue("r", nil)
	myTicket := e.ticketFor(mine["api_key"])
	doomedTicket := e.ticketFor(doomed["api_key"])
	e.wantCode(map[string]any{"api_key": victim["api_key"], "source_ip": "192.0.2.10"}, wire.CodeValid)
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	victimBefore := e.ok(logical.ReadOperation, "keys/"+victim["key_id"].(string), nil).Data
	now := e.clock.Now().Format(time.RFC3339)

	other := newTestEnv(t) // another mount: another pepper
	other.role("r", map[string]any{"environment": "prod"})
	od, _ := other.issue("r", nil)
	otherTicket := other.ticketFor(od["api_key"])

	entry := func(id, ticket string) map[string]any {
		return map[string]any{"key_id": id, "count": 1000, "last_used_at": now, "source_ip": "203.0.113.66", "ticket": ticket}
	}
	// Forge a ticket for the victim out of mine: same expiry and MAC,
	// victim's key_id (the MAC covers the key_id).
	forged := base64.RawURLEncoding.EncodeToString([]byte(victim["key_id"].(string))) + myTicket[16:]
	e.ok(logical.DeleteOperation, "keys/"+doomed["key_id"].(string), nil) // revoked
	_, gets0, _ := e.storage.counts()
	acc, rej, _ := e.report(
		entry(victim["key_id"].(string), myTicket),           // someone else's ticket
		entry(victim["key_id"].(string), forged),             // key_id swapped in
		entry(victim["key_id"].(string), "bm90LWEtdGlja2V0"), // garbage
		entry(od["key_id"].(string), otherTicket),            // another mount's ticket and key
		entry(victim["key_id"].(string), otherTicket),        // another mount's ticket
		entry(doomed["key_id"].(string), doomedTicket),       // valid ticket, key revoked since
	)
	if acc != 0 || rej != 6 {
		t.Fatalf("accepted %d rejected %d, want 0 and 6", acc, rej)
	}
	// Only the entry with a good ticket cost a storage read (of the
	// revoked key; it is cached, so not even that).
	if _, gets, _ := e.storage.counts(); gets-gets0 > 1 {
		t.Fatalf("rejected entries read storage %d times", gets-gets0)
	}
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	victimAfter := e.ok(logical.ReadOperation, "keys/"+victim["key_id"].(string), nil).Data
	if victimAfter["use_count"] != victimBefore["use_count"] || asJSON(victimAfter["source_ips"]) != asJSON(victimBefore["source_ips"]) {
		t.Fatalf("victim's usage changed: before %v/%v after %v/%v", victimBefore["use_count"], victimBefore["source_ips"], victimAfter["use_count"], victimAfter["source_ips"])
	}
	// The victim's real next request is not news.
	e.wantCode(map[string]any{"api_key": victim["api_key"], "source_ip": "192.0.2.10"}, wire.CodeValid)

	// My own ticket works for my key, until it expires.
	if acc, rej, _ := e.report(entry(mine["key_id"].(string), myTicket)); acc != 1 || rej != 0 {
		t.Fatalf("own ticket: accepted %d rejected %d", acc, rej)
	}
	e.clock.Add(usageTicketTTL + time.Second)
	if acc, rej, _ := e.report(entry(mine["key_id"].(string), myTicket)); acc != 0 || rej != 1 {
		t.Fatalf("expired ticket: accepted %d rejected %d", acc, rej)
	}
}

// Issue 22 item 6: made-up key_ids cost neither memory nor storage reads,
// reported times cannot reach outside a key's life, and the flush order
// is the engine's.
func TestUsage_timesClampedAndFlushOrderFromTheEngineClock(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	id := d["key_id"].(string)
	created := e.clock.Now()
	tk := e.ticketFor(d["api_key"])
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	e.report(map[string]any{"key_id": id, "count": 1, "last_used_at": "1970-01-01T00:00:00Z", "ticket": tk})
	if p := e.b.usage.pending(id); !p.last.Equal(created) || !p.since.Equal(e.clock.Now()) {
		t.Fatalf("pending last %v since %v; want last clamped to created_at %v, since the engine's now %v", p.last, p.since, created, e.clock.Now())
	}
	e.report(map[string]any{"key_id": id, "count": 1, "last_used_at": "2999-01-01T00:00:00Z", "ticket": tk})
	if p := e.b.usage.pending(id); !p.last.Equal(e.clock.Now()) {
		t.Fatalf("a future last_used_at was not clamped to now: %v", p.last)
	}

	// A flood of made-up key_ids: rejected, nothing pending, no reads.
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	_, gets0, _ := e.storage.counts()
	flood := make([]map[string]any, 0, maxUsageReports)
	for i := range maxUsageReports {
		flood = append(flood, map[string]any{"key_id": fmt.Sprintf("Fake%08d", i), "count": 1, "last_used_at": "1970-01-01T00:00:00Z", "ticket": tk})
	}
	if acc, rej, _ := e.report(flood...); acc != 0 || rej != maxUsageReports {
		t.Fatalf("flood: accepted %d rejected %d", acc, rej)
	}
	if n := len(e.b.usage.take()); n != 0 {
		t.Fatalf("%d made-up keys pending", n)
	}
	if _, gets, _ := e.storage.counts(); gets != gets0 {
		t.Fatalf("made-up key_ids read storage %d times", gets-gets0)
	}
}

func TestUsage_pendingIsBounded(t *testing.T) {
	e := newTestEnv(t)
	e.role("r", map[string]any{"environment": "prod"})
	var ids, tickets []string
	for range 3 {
		d, _ := e.issue("r", nil)
		ids = append(ids, d["key_id"].(string))
		tickets = append(tickets, e.ticketFor(d["api_key"]))
	}
	if err := e.b.flushUsage(context.Background(), e.storage, 0); err != nil {
		t.Fatal(err)
	}
	e.b.usage.max = 2
	now := e.clock.Now().Format(time.RFC3339)
	entry := func(i int) map[string]any {
		return map[string]any{"key_id": ids[i], "count": 1, "last_used_at": now, "ticket": tickets[i]}
	}
	acc, rej, resp := e.report(entry(0), entry(1), entry(2))
	if acc != 2 || rej != 1 || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "bound") {
		t.Fatalf("accepted %d rejected %d warnings %v", acc, rej, resp.Warnings)
	}
	// A key already pending is still taken.
	if acc, rej, _ := e.report(entry(0)); acc != 1 || rej != 0 {
		t.Fatalf("pending key refused: %d %d", acc, rej)
	}
	pending := e.b.usage.take()
	if _, has := pending[ids[2]]; len(pending) != 2 || has {
		t.Fatalf("pending %v", pending)
	}
}

func TestUsageTicket_shape(t *testing.T) {
	key := deriveTicketKey([]byte("pepper-pepper-pepper-pepper-1234"))
	now := time.Unix(1_800_000_000, 0)
	tk := usageTicket(key, "AbCdEfGhIjKl", now)
	if len(tk) > maxTicketLen || strings.ContainsAny(tk, "+/=") {
		t.Fatalf("ticket %q: not short base64url", tk)
	}
	for _, c := range []struct {
		key    *ticketKey
		id     string
		ticket string
		at     time.Time
		want   bool
	}{
		{key, "AbCdEfGhIjKl", tk, now, true},
		{key, "AbCdEfGhIjKl", tk, now.Add(usageTicketTTL), true},
		{key, "AbCdEfGhIjKl", tk, now.Add(usageTicketTTL + time.Second), false},
		{key, "AbCdEfGhIjKm", tk, now, false},
		{deriveTicketKey([]byte("another mount's pepper..........")), "AbCdEfGhIjKl", tk, now, false},
		{nil, "AbCdEfGhIjKl", tk, now, false},
		{key, "AbCdEfGhIjKl", tk[:len(tk)-1] + "A", now, tk[len(tk)-1] == 'A'},
		{key, "AbCdEfGhIjKl", "", now, false},
	} {
		if got := ticketValid(c.key, c.id, c.ticket, c.at); got != c.want {
			t.Errorf("ticketValid(%s, %s, %v) = %v", c.id, c.ticket, c.at, got)
		}
	}
}

// TestUsage_forwardedFromPerformanceStandbys: a performance standby never
// flushes (its storage is read-only), so a usage report it kept would stay
// in its memory and never reach a record. Vault forwards the
// report to the active node instead: the engine answers ErrReadOnly, as a
// storage write there would (issue 22 item 8).
func TestUsage_forwardedFromPerformanceStandbys(t *testing.T) {
	sys := logical.TestSystemView()
	e := newTestEnvWith(t, sys)
	e.role("r", map[string]any{"environment": "prod"})
	d, _ := e.issue("r", nil)
	tk := e.ticketFor(d["api_key"])
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby // asked at once, not through the memo
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "usage", Storage: e.storage,
		Data: map[string]any{"reports": []any{map[string]any{"key_id": d["key_id"], "count": 3, "last_used_at": e.clock.Now().Format(time.RFC3339), "ticket": tk}}},
	})
	if err != logical.ErrReadOnly {
		t.Fatalf("usage on a performance standby: %v, want ErrReadOnly (Vault forwards it to the active node)", err)
	}
	if p := e.b.usage.pending(d["key_id"].(string)); p.count != 1 { // the verify's own count only
		t.Fatalf("the standby kept the report: pending %+v", p)
	}
}
