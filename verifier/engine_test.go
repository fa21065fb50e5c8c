package verifier

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/api"
)

// fakeEngine speaks the Vault HTTP API for the engine paths the verifier
// uses (revocations, verify, usage) in the wire format of the sequenced
// feed and usage tickets, so these tests do not wait for a Vault server and
// can stage what a real one rarely shows: gaps, resets, races, clock steps.
type fakeEngine struct {
	mu sync.Mutex
	// feed holds the next revocations replies; when empty the reply has no
	// events and cursor.
	feed   []map[string]any
	cursor string
	sinces []string
	// Blocking reads: waitMax > 0 answers them (and says so in every
	// reply); a read with wait and nothing queued is held until queue or
	// the wait's end. refuseWait answers a wait with a 400, as an engine
	// without blocking reads does; hang holds every read until it ends.
	waitMax    int
	refuseWait bool
	hang       bool
	queued     chan struct{} // closed and replaced by queue
	waits      []string
	// answers by api_key; a key without one is NOT_FOUND.
	answers map[string]map[string]any
	// inVerify, when set, runs inside each verify before it answers.
	inVerify    func()
	verifyCalls atomic.Int64
	// usageStatus is the status of the next usage replies (0: 200).
	usageStatus int
	usage       [][]map[string]any
}

func (e *fakeEngine) reply(w http.ResponseWriter, status int, data map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status >= 400 {
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{"reports: entry 0: bad"}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func (e *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/v1/ck/") {
	case "revocations":
		e.mu.Lock()
		e.sinces = append(e.sinces, r.URL.Query().Get("since"))
		wait := r.URL.Query().Get("wait")
		e.waits = append(e.waits, wait)
		if wait != "" && e.refuseWait {
			e.mu.Unlock()
			e.reply(w, 400, nil)
			return
		}
		if e.hang {
			e.mu.Unlock()
			<-r.Context().Done()
			return
		}
		if secs, _ := strconv.Atoi(wait); secs > 0 && e.waitMax > 0 && len(e.feed) == 0 {
			if e.queued == nil {
				e.queued = make(chan struct{})
			}
			ch := e.queued
			e.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(time.Duration(secs) * time.Second):
			case <-r.Context().Done():
				return
			}
			e.mu.Lock()
		}
		data := map[string]any{"events": []any{}, "cursor": e.cursor, "reset": false}
		if len(e.feed) > 0 {
			data, e.feed = e.feed[0], e.feed[1:]
			if c, _ := data["cursor"].(string); c != "" {
				e.cursor = c
			}
		}
		if e.waitMax > 0 {
			data = maps.Clone(data)
			data["wait_max"] = e.waitMax
		}
		e.mu.Unlock()
		e.reply(w, 200, data)
	case "verify":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		e.verifyCalls.Add(1)
		e.mu.Lock()
		hook := e.inVerify
		ans := e.answers[body["api_key"].(string)]
		e.mu.Unlock()
		if hook != nil {
			hook()
		}
		if ans == nil {
			ans = map[string]any{"valid": false, "code": "NOT_FOUND", "message": "no such key in this mount"}
		}
		e.reply(w, 200, ans)
	case "usage":
		var body struct {
			Reports []map[string]any `json:"reports"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		e.mu.Lock()
		e.usage = append(e.usage, body.Reports)
		status := e.usageStatus
		e.mu.Unlock()
		if status != 0 {
			e.reply(w, status, nil)
			return
		}
		e.reply(w, 200, map[string]any{"accepted": len(body.Reports), "rejected": 0})
	default:
		http.NotFound(w, r)
	}
}

func (e *fakeEngine) queue(replies ...map[string]any) {
	e.mu.Lock()
	e.feed = append(e.feed, replies...)
	if e.queued != nil {
		close(e.queued)
		e.queued = nil
	}
	e.mu.Unlock()
}

func (e *fakeEngine) setUsageStatus(status int) {
	e.mu.Lock()
	e.usageStatus = status
	e.mu.Unlock()
}

func (e *fakeEngine) answer(apiKey string, ans map[string]any) {
	e.mu.Lock()
	e.answers[apiKey] = ans
	e.mu.Unlock()
}

// clock is a settable wall clock and monotonic clock.
type clock struct {
	wall atomic.Int64 // unix nanoseconds
	mono atomic.Int64
}

func (c *clock) now() time.Time           { return time.Unix(0, c.wall.Load()) }
func (c *clock) monotonic() time.Duration { return time.Duration(c.mono.Load()) }

// advance moves both clocks on, as time passing does.
func (c *clock) advance(d time.Duration) {
	c.wall.Add(int64(d))
	c.mono.Add(int64(d))
}

type rig struct {
	v   *Verifier
	eng *fakeEngine
	clk *clock
}

// newRig starts a verifier on a fake engine whose feed starts at cursor;
// its loops never tick (tests call poll and ReportUsage themselves).
func newRig(t *testing.T, cursor string, tune func(*Config)) *rig {
	t.Helper()
	return newRigWith(t, cursor, nil, tune)
}

// newRigWith is newRig with the fake engine set up by engTune first.
func newRigWith(t *testing.T, cursor string, engTune func(*fakeEngine), tune func(*Config)) *rig {
	t.Helper()
	eng := &fakeEngine{cursor: cursor, answers: map[string]map[string]any{}}
	if engTune != nil {
		engTune(eng)
	}
	srv := httptest.NewServer(eng)
	t.Cleanup(srv.Close)
	v, clk := startVerifier(t, srv.URL, tune)
	t.Cleanup(func() {
		close(v.stop)
		v.done.Wait()
	})
	return &rig{v: v, eng: eng, clk: clk}
}

// startOn starts a verifier on eng's own server; the caller closes both.
func startOn(t *testing.T, eng *fakeEngine, tune func(*Config)) (*Verifier, func()) {
	t.Helper()
	srv := httptest.NewServer(eng)
	v, _ := startVerifier(t, srv.URL, tune)
	return v, srv.Close
}

func startVerifier(t *testing.T, url string, tune func(*Config)) (*Verifier, *clock) {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test")
	clk := &clock{}
	clk.wall.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clk.mono.Store(int64(time.Hour))
	cfg := Config{
		Client: c, Mount: "ck", Environment: "prod", CacheTTL: time.Minute,
		PollInterval: time.Hour, UsageInterval: time.Hour, MaxStaleness: 5 * time.Second,
		Now: clk.now, monotonic: clk.monotonic,
	}
	if tune != nil {
		tune(&cfg)
	}
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk
}

// key mints a key the fake engine answers VALID for, with scopes and a
// usage ticket.
func (r *rig) key(t *testing.T, ticket string, scopes ...string) (apiKey, keyID string) {
	t.Helper()
	k, err := keyformat.Generate("ck", "prod")
	if err != nil {
		t.Fatal(err)
	}
	r.eng.answer(k.Raw(), r.valid(k.KeyID, ticket, scopes...))
	return k.Raw(), k.KeyID
}

func (r *rig) valid(keyID, ticket string, scopes ...string) map[string]any {
	sc := make([]any, len(scopes))
	for i, s := range scopes {
		sc[i] = s
	}
	return map[string]any{
		"valid": true, "code": "VALID", "key_id": keyID, "role": "r", "environment": "prod", "scopes": sc,
		"expires_at": r.clk.now().Add(24 * time.Hour).Format(time.RFC3339), "usage_ticket": ticket,
	}
}

func (r *rig) verify(t *testing.T, req Request) Result {
	t.Helper()
	res, _ := r.v.Verify(t.Context(), req)
	return res
}

// cached verifies once through the engine and once from the cache.
func (r *rig) cached(t *testing.T, req Request) {
	t.Helper()
	for i, want := range []bool{false, true} {
		if res := r.verify(t, req); !res.Valid || res.Cached != want {
			t.Fatalf("verify %d: valid=%v code=%s cached=%v, want cached=%v", i, res.Valid, res.Code, res.Cached, want)
		}
	}
}

func (r *rig) isCached(t *testing.T, req Request) bool {
	t.Helper()
	res := r.verify(t, req)
	if !res.Valid {
		t.Fatalf("verify: %s", res.Code)
	}
	return res.Cached
}

// wait lets d pass, polling the feed at its end as the poll loop would.
func (r *rig) wait(t *testing.T, d time.Duration) {
	t.Helper()
	r.clk.advance(d)
	r.poll(t)
}

func (r *rig) poll(t *testing.T) {
	t.Helper()
	if err := r.v.poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func ev(seq int, keyID, kind string) map[string]any {
	return map[string]any{"seq": seq, "key_id": keyID, "kind": kind, "at": "2030-01-01T00:00:00Z"}
}

func feedReply(cursor string, reset bool, evs ...map[string]any) map[string]any {
	l := make([]any, len(evs))
	for i, e := range evs {
		l[i] = e
	}
	return map[string]any{"events": l, "cursor": cursor, "reset": reset}
}
