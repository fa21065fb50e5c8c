package vaultplugin_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/vault/api"
)

// Fault tests (issue #8, items 1-3): the plugin process killed under load,
// Vault restarted on persistent storage, and the active node of a 3-node
// raft cluster lost under load. Each runs its own servers (never the
// package's shared one, whose plugin other tests use) and none runs in
// parallel.
//
// They assert correctness only: every answer right, nothing lost, failures
// stop once the fault is over. How many requests failed and for how long is
// measured and reported (t.Logf), never bounded: a loaded CI machine may be
// slow, it may not be wrong. Deadlines are generous, so a test fails rather
// than hangs.
//
// CK_SOAK=1 (make soak) runs the long variants: more keys, longer load
// phases, repeated crashes, restarts (graceful and SIGKILL) and failovers.

// faultScale is how hard the fault tests push.
type faultScale struct {
	soak    bool
	keys    int           // keys issued per test (before the three revoked by seedKeys)
	cycles  int           // crashes, restarts or failovers per test
	loadFor time.Duration // load before each fault
	steady  time.Duration // load after recovery, in which no request may fail
}

func faultScaleFromEnv() faultScale {
	if os.Getenv("CK_SOAK") == "1" {
		return faultScale{soak: true, keys: 150, cycles: 4, loadFor: 8 * time.Second, steady: 5 * time.Second}
	}
	return faultScale{keys: 12, cycles: 1, loadFor: time.Second, steady: time.Second}
}

// faultKey is an issued key and the verify code it must get.
type faultKey struct {
	apiKey, keyID, leaseID string
	want                   string // VALID or REVOKED
}

// loadClient is an api client for load: no retries and a bounded timeout,
// so every failed request is seen and counted.
func loadClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	return newFaultClient(t, addr, token, 0, 10*time.Second)
}

// checkClient is an api client for assertions: it retries a request that
// failed in transport or with a 5xx, so one slow moment on a loaded machine
// does not fail a test about correctness.
func checkClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	return newFaultClient(t, addr, token, 4, 30*time.Second)
}

func newFaultClient(t *testing.T, addr, token string, retries int, timeout time.Duration) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = retries
	cfg.Timeout = timeout
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// tally counts successful (VALID) verifies per key_id, as the client saw
// them: the least the engine's use_count must show once flushed.
type tally struct {
	mu sync.Mutex
	n  map[string]int64
}

func newTally() *tally { return &tally{n: map[string]int64{}} }

func (t *tally) add(keyID string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.n[keyID]++
	t.mu.Unlock()
}

func (t *tally) get(keyID string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[keyID]
}

func verifyVia(c *api.Client, mount, apiKey string) (string, error) {
	s, err := c.Logical().Write(mount+"/verify", map[string]any{"api_key": apiKey})
	if err != nil {
		return "", err
	}
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("verify returned no data")
	}
	code, _ := s.Data["code"].(string)
	return code, nil
}

func issueVia(t *testing.T, c *api.Client, mount, role string, data map[string]any) faultKey {
	t.Helper()
	var s *api.Secret
	var err error
	if data == nil {
		s, err = c.Logical().Read(mount + "/creds/" + role)
	} else {
		s, err = c.Logical().Write(mount+"/creds/"+role, data)
	}
	if err != nil || s == nil {
		t.Fatalf("creds/%s: %v", role, err)
	}
	k := faultKey{leaseID: s.LeaseID, want: "VALID"}
	k.apiKey, _ = s.Data["api_key"].(string)
	k.keyID, _ = s.Data["key_id"].(string)
	if k.apiKey == "" || k.keyID == "" || k.leaseID == "" {
		t.Fatalf("creds/%s: no api_key, key_id or lease", role)
	}
	return k
}

func write(t *testing.T, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func read(t *testing.T, c *api.Client, path string) map[string]any {
	t.Helper()
	s, err := c.Logical().Read(path)
	if err != nil || s == nil {
		t.Fatalf("read %s: %v (nil: %v)", path, err, s == nil)
	}
	return s.Data
}

func sameData(a, b map[string]any) bool {
	return maps.EqualFunc(a, b, func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) })
}

// seedKeys issues n keys from role and revokes three of them the three ways
// an operator can: keys/<id> delete, lease revoke, and rotation with no
// grace (whose successor joins the valid keys).
func seedKeys(t *testing.T, c *api.Client, mount, role string, n int) []faultKey {
	t.Helper()
	var keys []faultKey
	for range n {
		keys = append(keys, issueVia(t, c, mount, role, nil))
	}
	if _, err := c.Logical().Delete(mount + "/keys/" + keys[0].keyID); err != nil {
		t.Fatalf("revoking %s: %v", keys[0].keyID, err)
	}
	keys[0].want = "REVOKED"
	if err := c.Sys().RevokeWithOptions(&api.RevokeOptions{LeaseID: keys[1].leaseID, Sync: true}); err != nil {
		t.Fatalf("lease revoke of %s: %v", keys[1].keyID, err)
	}
	keys[1].want = "REVOKED"
	s := write(t, c, mount+"/keys/"+keys[2].keyID+"/rotate", map[string]any{"grace": 0})
	succ := faultKey{leaseID: s.LeaseID, want: "VALID"}
	succ.apiKey, _ = s.Data["api_key"].(string)
	succ.keyID, _ = s.Data["key_id"].(string)
	if succ.apiKey == "" || succ.keyID == "" {
		t.Fatalf("rotate %s: no successor key", keys[2].keyID)
	}
	keys[2].want = "REVOKED"
	keys = append(keys, succ)
	return keys
}

// checkKeys asserts every key gets its expected code through c; each of
// seen counts the VALID answers.
func checkKeys(t *testing.T, c *api.Client, mount string, keys []faultKey, where string, seen ...*tally) {
	t.Helper()
	for _, k := range keys {
		code, err := verifyVia(c, mount, k.apiKey)
		if err != nil {
			t.Errorf("%s: verify %s: %v", where, k.keyID, err)
			continue
		}
		if code == "VALID" {
			for _, s := range seen {
				s.add(k.keyID)
			}
		}
		if code != k.want {
			t.Errorf("%s: key %s verifies %s, want %s", where, k.keyID, code, k.want)
		}
	}
}

// keyRecords reads keys/<id> of every key.
func keyRecords(t *testing.T, c *api.Client, mount string, keys []faultKey) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, k := range keys {
		out[k.keyID] = read(t, c, mount+"/keys/"+k.keyID)
	}
	return out
}

// recordFields are what a fault must never change in a key record (usage
// aside).
var recordFields = []string{"status", "revoked_at", "revoked_by", "revoke_reason", "expires_at", "max_expires_at", "rotated_to", "rotated_from", "created_at", "role", "environment", "scopes"}

func compareRecords(t *testing.T, before, after map[string]map[string]any, where string) {
	t.Helper()
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			t.Errorf("%s: key record %s lost", where, id)
			continue
		}
		for _, f := range recordFields {
			if fmt.Sprint(a[f]) != fmt.Sprint(b[f]) {
				t.Errorf("%s: keys/%s %s was %v, is %v", where, id, f, b[f], a[f])
			}
		}
	}
}

func useCount(t *testing.T, rec map[string]any, keyID string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(fmt.Sprint(rec["use_count"]), 10, 64)
	if err != nil {
		t.Fatalf("keys/%s: use_count %v: %v", keyID, rec["use_count"], err)
	}
	return n
}

// useCounts reads use_count (stored plus not yet flushed) of every valid key.
func useCounts(t *testing.T, c *api.Client, mount string, keys []faultKey) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, k := range keys {
		if k.want == "VALID" {
			out[k.keyID] = useCount(t, read(t, c, mount+"/keys/"+k.keyID), k.keyID)
		}
	}
	return out
}

func listKeys(t *testing.T, c *api.Client, mount string) []string {
	t.Helper()
	s, err := c.Logical().List(mount + "/keys")
	if err != nil || s == nil {
		t.Fatalf("list keys: %v", err)
	}
	raw, _ := s.Data["keys"].([]any)
	var ids []string
	for _, k := range raw {
		id, _ := k.(string)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func keyIDs(keys []faultKey) []string {
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.keyID)
	}
	slices.Sort(ids)
	return ids
}

// verifyLoad sends verify requests for keys from a few goroutines per
// client until stopped, and records what happened.
type verifyLoad struct {
	mu       sync.Mutex
	ok, fail int
	wrong    []string // answers that differ from the key's expected code
	lastFail time.Time
	firstErr error
	stop     context.CancelFunc
	wg       sync.WaitGroup

	// post counts the VALID answers to requests started after postFrom.
	post     *tally
	postFrom time.Time
}

// countFrom makes the load count, in into, the VALID answers to requests
// started after at.
func (l *verifyLoad) countFrom(at time.Time, into *tally) {
	l.mu.Lock()
	l.post, l.postFrom = into, at
	l.mu.Unlock()
}

// startVerifyLoad starts a verifyLoad, which stops at the latest when the
// test ends (before its servers do): a test that fails half-way leaves no
// load running.
func startVerifyLoad(t *testing.T, clients []*api.Client, mount string, keys []faultKey, perClient int, seen ...*tally) *verifyLoad {
	keys = slices.Clone(keys) // the test may append to its slice meanwhile
	ctx, cancel := context.WithCancel(context.Background())
	l := &verifyLoad{stop: cancel}
	t.Cleanup(func() {
		cancel()
		l.wg.Wait()
	})
	for ci, c := range clients {
		for g := range perClient {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for i := ci*perClient + g; ctx.Err() == nil; i++ {
					k := keys[i%len(keys)]
					started := time.Now()
					code, err := verifyVia(c, mount, k.apiKey)
					if code == "VALID" {
						for _, s := range seen {
							s.add(k.keyID)
						}
					}
					now := time.Now()
					l.mu.Lock()
					if code == "VALID" && l.post != nil && started.After(l.postFrom) {
						l.post.add(k.keyID)
					}
					switch {
					case err != nil:
						l.fail++
						l.lastFail = now
						if l.firstErr == nil {
							l.firstErr = err
						}
					case code != k.want:
						l.wrong = append(l.wrong, fmt.Sprintf("%s: %s, want %s", k.keyID, code, k.want))
					default:
						l.ok++
					}
					l.mu.Unlock()
					if err != nil {
						time.Sleep(20 * time.Millisecond) // no hot loop on a dead address
					}
				}
			}()
		}
	}
	return l
}

func (l *verifyLoad) firstError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

func (l *verifyLoad) snapshot() (ok, fail int, lastFail time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.fail, l.lastFail
}

// waitStarted waits until the load has had a success, so a fault hits a
// working system; it fails the test after within.
func (l *verifyLoad) waitStarted(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ok, _, _ := l.snapshot(); ok > 0 {
			return
		}
		if time.Now().After(deadline) {
			_, fail, _ := l.snapshot()
			l.stop()
			t.Fatalf("verify load had no success within %s (%d failed; first error: %v)", within, fail, l.firstError())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy waits until the load has run quiet (successes, no failure)
// for quiet, and returns when the last failure was; it fails the test
// after within.
func (l *verifyLoad) waitHealthy(t *testing.T, quiet, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		time.Sleep(100 * time.Millisecond)
		ok0, _, last := l.snapshot()
		if time.Since(last) >= quiet {
			// Quiet long enough; make sure requests are getting through.
			time.Sleep(300 * time.Millisecond)
			if ok1, _, last1 := l.snapshot(); ok1 > ok0 && last1.Equal(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			ok, fail, _ := l.snapshot()
			l.stop()
			t.Fatalf("verify did not recover within %s: %d ok, %d failed (first error: %v)", within, ok, fail, l.firstError())
		}
	}
}

// steady keeps the load running for d after recovery and fails the test if
// any request fails meanwhile: failures happen only while the fault lasts.
func (l *verifyLoad) steady(t *testing.T, d time.Duration, where string) {
	t.Helper()
	ok0, fail0, _ := l.snapshot()
	time.Sleep(d)
	ok1, fail1, _ := l.snapshot()
	if fail1 > fail0 {
		t.Errorf("%s: %d verifies failed after recovery (%d succeeded meanwhile); first error of the run: %v", where, fail1-fail0, ok1-ok0, l.firstError())
	}
	if ok1 == ok0 {
		t.Errorf("%s: no verify succeeded in the %s after recovery", where, d)
	}
}

// recover is what follows a fault injected at faultAt: wait (up to within)
// for verify to answer again, keep the load on for steady, stop it, and
// describe the outage for the report.
func (l *verifyLoad) recover(t *testing.T, faultAt time.Time, within, steady time.Duration, where string) (ok, fail int, outage string) {
	t.Helper()
	lastFail := l.waitHealthy(t, 2*time.Second, within)
	l.steady(t, steady, where)
	ok, fail = l.finish(t)
	outage = "none failed"
	if fail > 0 && lastFail.After(faultAt) {
		outage = fmt.Sprintf("the last failure %s after the fault", lastFail.Sub(faultAt).Round(time.Millisecond))
	}
	return ok, fail, outage
}

func (l *verifyLoad) finish(t *testing.T) (ok, fail int) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	if len(l.wrong) > 0 {
		t.Errorf("%d verify answers were wrong (a revoked key accepted or a valid one refused), e.g. %v", len(l.wrong), l.wrong[:min(5, len(l.wrong))])
	}
	return l.ok, l.fail
}

// TestFault_pluginCrashUnderLoad: SIGKILL the plugin process under a verify
// load. Vault relaunches it; requests fail at most while it is down;
// afterwards every key answers as before, no record or revocation is lost,
// and usage flushed before the crash survives it (what was counted since
// the last flush is lost: the documented limit, reported).
func TestFault_pluginCrashUnderLoad(t *testing.T) {
	sc := faultScaleFromEnv()
	srv := vaulttest.Start(t)
	mount := srv.Mount(t)
	lc := loadClient(t, srv.Addr, srv.Token)
	c := checkClient(t, srv.Addr, srv.Token)
	write(t, c, mount+"/roles/app", map[string]any{"environment": "prod", "ttl": "1h"})
	keys := seedKeys(t, c, mount, "app", sc.keys)
	seen := newTally()
	// durable is the use_count storage holds (all flushed), sinceFlush the
	// verifies answered VALID since.
	durable := map[string]int64{}
	sinceFlush := newTally()
	checkKeys(t, c, mount, keys, "before the crash", seen, sinceFlush)
	listed := listKeys(t, c, mount)
	if !slices.Equal(listed, keyIDs(keys)) {
		t.Fatalf("keys listed %v, issued %v", listed, keyIDs(keys))
	}
	before := keyRecords(t, c, mount, keys)

	for cycle := 1; cycle <= sc.cycles; cycle++ {
		where := fmt.Sprintf("crash %d", cycle)
		// seen counts this cycle's VALID answers (the first cycle's from
		// the first check on); durable holds everything before.
		var durableSum int64
		for _, n := range durable {
			durableSum += n
		}
		// Usage first, then a graceful reload: the engine's clean flushes
		// every count, so afterwards use_count is what storage holds.
		load := startVerifyLoad(t, []*api.Client{lc}, mount, keys, 4, seen, sinceFlush)
		load.waitStarted(t, time.Minute)
		time.Sleep(sc.loadFor)
		load.finish(t)
		srv.MustCLI(t, "plugin", "reload", "-plugin="+vaulttest.PluginName)
		flushed := useCounts(t, c, mount, keys)
		var flushedSum int64
		for id, n := range flushed {
			flushedSum += n
			if want := durable[id] + sinceFlush.get(id); n < want {
				t.Errorf("%s: keys/%s use_count %d after a plugin reload, want at least %d (%d stored before, %d verified since): the flush on reload lost usage", where, id, n, want, durable[id], sinceFlush.get(id))
			}
		}

		load = startVerifyLoad(t, []*api.Client{lc}, mount, keys, 4, seen)
		load.waitStarted(t, time.Minute)
		time.Sleep(sc.loadFor)
		pids, err := srv.PluginPIDs()
		if err != nil || len(pids) == 0 {
			load.finish(t)
			t.Fatalf("%s: no plugin process found under %s: %v", where, srv.Dir, err)
		}
		okBefore, _, _ := load.snapshot()
		killedAt := time.Now()
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				load.finish(t)
				t.Fatalf("%s: SIGKILL plugin %d: %v", where, pid, err)
			}
		}
		// What the relaunched process counts: VALID answers to requests
		// sent once the killed process is gone.
		waitGone(t, srv, pids)
		afterKill := newTally()
		load.countFrom(time.Now(), afterKill)
		ok, fail, down := load.recover(t, killedAt, 2*time.Minute, sc.steady, where)
		t.Logf("%s: plugin %v SIGKILLed after %d verifies of this phase: %d requests failed (%s); %d verifies succeeded in the phase",
			where, pids, okBefore, fail, down, ok)

		after, err := srv.PluginPIDs()
		if err != nil || len(after) == 0 {
			t.Fatalf("%s: no plugin process after the crash: %v", where, err)
		}
		for _, p := range after {
			if slices.Contains(pids, p) {
				t.Fatalf("%s: plugin pid %d survived SIGKILL", where, p)
			}
		}

		// Every key answers as before; no record changed except usage; no
		// record disappeared; usage flushed before the crash is still there.
		checkKeys(t, c, mount, keys, "after "+where, seen, afterKill)
		compareRecords(t, before, keyRecords(t, c, mount, keys), "after "+where)
		if got := listKeys(t, c, mount); !slices.Equal(got, listed) {
			t.Errorf("after %s: keys listed %v, before %v", where, got, listed)
		}
		// Flush what the new process counted (a graceful reload), then
		// storage must hold what was flushed before the crash plus every
		// verify answered after it; only what the killed process counted
		// since its last flush may be missing.
		srv.MustCLI(t, "plugin", "reload", "-plugin="+vaulttest.PluginName)
		now := useCounts(t, c, mount, keys)
		var nowSum, seenSum int64
		for id, n := range now {
			nowSum += n
			seenSum += seen.get(id)
			if want := flushed[id] + afterKill.get(id); n < want {
				t.Errorf("after %s: keys/%s use_count %d, want at least %d: %d flushed before the crash and %d verified after it", where, id, n, want, flushed[id], afterKill.get(id))
			}
		}
		t.Logf("%s: use_count of the valid keys: %d flushed before the crash, %d after it; %d verifies succeeded in the cycle, so %d counted since the last flush were lost with the process (the documented limit)",
			where, flushedSum, nowSum, seenSum, max(0, durableSum+seenSum-nowSum))
		durable, sinceFlush, seen = now, newTally(), newTally()
	}

	// The engine works for writes too: issue and revoke after the crash.
	k := issueVia(t, c, mount, "app", nil)
	if code, err := verifyVia(c, mount, k.apiKey); err != nil || code != "VALID" {
		t.Fatalf("key issued after the crash: %s %v", code, err)
	}
	if err := c.Sys().RevokeWithOptions(&api.RevokeOptions{LeaseID: k.leaseID, Sync: true}); err != nil {
		t.Fatal(err)
	}
	if code, err := verifyVia(c, mount, k.apiKey); err != nil || code != "REVOKED" {
		t.Fatalf("key revoked after the crash verifies %s (%v)", code, err)
	}
}

// waitGone waits until none of pids is a running plugin process of srv.
func waitGone(t *testing.T, srv *vaulttest.Server, pids []int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		now, err := srv.PluginPIDs()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(now, func(p int) bool { return slices.Contains(pids, p) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v still running a minute after SIGKILL", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFault_restartPersistentStorage: keys, roles, config, leases and
// flushed usage survive a restart of Vault on file and on raft storage; a
// lease that ended while Vault was down is revoked once it is back, and its
// key is refused (EXPIRED, before and after Vault revokes the lease).
func TestFault_restartPersistentStorage(t *testing.T) {
	for _, storage := range []string{vaulttest.StorageFile, vaulttest.StorageRaft} {
		t.Run(storage, func(t *testing.T) { testRestart(t, storage) })
	}
}

func testRestart(t *testing.T, storage string) {
	sc := faultScaleFromEnv()
	start := time.Now()
	cl := vaulttest.StartPersistent(t, storage)
	srv := cl.Nodes[0]
	t.Logf("%s server up in %s", storage, time.Since(start).Round(time.Millisecond))
	const mount = "ck-persist"
	if err := srv.Enable(mount); err != nil {
		t.Fatal(err)
	}
	c := checkClient(t, srv.Addr, srv.Token)
	write(t, c, mount+"/config", map[string]any{"key_prefix": "pk", "scopes": "read,trade", "environments": "prod"})
	write(t, c, mount+"/roles/app", map[string]any{"environment": "prod", "scopes": "read,trade", "ttl": "1h", "max_ttl": "2h", "max_active_keys": sc.keys + 10})
	write(t, c, mount+"/roles/blink", map[string]any{"environment": "prod", "ttl": "1m", "max_ttl": "1m"})
	keys := seedKeys(t, c, mount, "app", max(5, sc.keys/3))
	seen := newTally()
	checkKeys(t, c, mount, keys, "before the restart", seen)
	config := read(t, c, mount+"/config")
	roles := map[string]map[string]any{"app": read(t, c, mount+"/roles/app"), "blink": read(t, c, mount+"/roles/blink")}
	records := keyRecords(t, c, mount, keys)
	renewable := keys[len(keys)-1] // the rotated successor, valid for 1h
	var expiredEarly []string      // blink keys whose lease ended before Vault stopped

	for cycle := 1; cycle <= sc.cycles; cycle++ {
		// Graceful stops flush usage (the engine's clean); a SIGKILL (soak
		// only, every other cycle) loses what was counted since the last
		// flush, so that cycle forces a flush first and checks only it.
		kill := sc.soak && cycle%2 == 0
		how := "stopped"
		if kill {
			how = "SIGKILLed"
		}
		where := fmt.Sprintf("restart %d (%s)", cycle, how)
		checkKeys(t, c, mount, keys, "before "+where, seen)
		durable := map[string]int64{}
		for _, k := range keys {
			if k.want == "VALID" {
				durable[k.keyID] = seen.get(k.keyID)
			}
		}
		if kill {
			srv.MustCLI(t, "plugin", "reload", "-plugin="+vaulttest.PluginName)
			durable = useCounts(t, c, mount, keys)
		}

		blink, expired := stopWithLiveLease(t, cl, c, mount, kill)
		expiredEarly = append(expiredEarly, expired...)
		restartAt := time.Now()
		cl.Start(t, 0)
		cl.Active(t)
		t.Logf("%s: back and unsealed in %s", where, time.Since(restartAt).Round(time.Millisecond))

		// Usage first, before any verify after the restart adds to it: a
		// graceful stop lost none, a SIGKILL none that was flushed.
		for id, n := range useCounts(t, c, mount, keys) {
			if n < durable[id] {
				t.Errorf("%s: keys/%s use_count %d, want at least the %d flushed before", where, id, n, durable[id])
			}
		}
		// Whether or not Vault has revoked the lease yet, the key is refused.
		if code, err := verifyVia(c, mount, blink.apiKey); err != nil || code != "EXPIRED" {
			t.Errorf("%s: key %s, whose lease ended while Vault was down, verifies %s (%v); want EXPIRED", where, blink.keyID, code, err)
		} else {
			t.Logf("%s: key %s, whose lease ended while Vault was down, verifies %s at once", where, blink.keyID, code)
		}

		if got := read(t, c, mount+"/config"); !sameData(got, config) {
			t.Errorf("%s: config is %v, was %v", where, got, config)
		}
		for name, want := range roles {
			if got := read(t, c, mount+"/roles/"+name); !sameData(got, want) {
				t.Errorf("%s: role %s is %v, was %v", where, name, got, want)
			}
		}
		checkKeys(t, c, mount, keys, "after "+where, seen)
		compareRecords(t, records, keyRecords(t, c, mount, keys), "after "+where)
		for _, k := range keys {
			if k.want != "VALID" {
				continue
			}
			// The lease survived: Vault still knows it, with time left.
			l, err := c.Sys().Lookup(k.leaseID)
			if err != nil || l == nil {
				t.Errorf("%s: lease of %s lost: %v", where, k.keyID, err)
				continue
			}
			if ttl, err := strconv.Atoi(fmt.Sprint(l.Data["ttl"])); err != nil || ttl <= 0 {
				t.Errorf("%s: lease of %s: ttl %v", where, k.keyID, l.Data["ttl"])
			}
		}
		if _, err := c.Sys().Renew(renewable.leaseID, 3600); err != nil {
			t.Errorf("%s: renewing a lease: %v", where, err)
		}
		wantIDs := append(keyIDs(keys), expiredEarly...)
		wantIDs = append(wantIDs, blink.keyID)
		slices.Sort(wantIDs)
		if got := listKeys(t, c, mount); !slices.Equal(got, wantIDs) {
			t.Errorf("%s: keys listed %v, want %v", where, got, wantIDs)
		}

		// The lease that ended while Vault was down is revoked once it is
		// back: the lease is gone, and the key, past its end, stays
		// recorded as expired (issue 21: expiry is never a revocation,
		// whoever notices first) and verifies EXPIRED.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			rec := read(t, c, mount+"/keys/"+blink.keyID)
			_, lookupErr := c.Sys().Lookup(blink.leaseID)
			if lookupErr != nil {
				if rec["status"] != "expired" || rec["revoked_at"] != "" || rec["revoke_reason"] != "" {
					t.Errorf("%s: key %s whose lease ended late: status %v revoked_at %v reason %v; want expired, not revoked", where, blink.keyID, rec["status"], rec["revoked_at"], rec["revoke_reason"])
				}
				t.Logf("%s: the lease of %s was revoked %s after the restart", where, blink.keyID, time.Since(restartAt).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: key %s: status %v, lease lookup error %v; want the lease gone", where, blink.keyID, rec["status"], lookupErr)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if code, err := verifyVia(c, mount, blink.apiKey); err != nil || code != "EXPIRED" {
			t.Errorf("%s: key %s, its lease revoked after its expiry, verifies %s (%v); want EXPIRED", where, blink.keyID, code, err)
		}
		blink.want = "EXPIRED"
		keys = append(keys, blink)
		records = keyRecords(t, c, mount, keys)
	}

	// And the engine keeps working on the restored storage.
	k := issueVia(t, c, mount, "app", nil)
	if code, err := verifyVia(c, mount, k.apiKey); err != nil || code != "VALID" {
		t.Fatalf("key issued after the restart verifies %s (%v)", code, err)
	}
}

// stopWithLiveLease issues a key with a short lease from role blink, stops
// (or kills) Vault while the lease is still live, and waits until it has
// ended. If the stop took so long that the lease might have ended first (a
// very slow machine), Vault is started again and it tries with a longer
// lease; the key_ids of those keys come back in expired.
func stopWithLiveLease(t *testing.T, cl *vaulttest.Cluster, c *api.Client, mount string, kill bool) (blink faultKey, expired []string) {
	t.Helper()
	for _, ttl := range []time.Duration{4 * time.Second, 15 * time.Second, 45 * time.Second} {
		issued := time.Now() // the lease starts later, so it ends after issued+ttl
		blink = issueVia(t, c, mount, "blink", map[string]any{"ttl": ttl.String()})
		if kill {
			cl.Kill(0)
		} else {
			cl.Stop(0)
		}
		end := issued.Add(ttl)
		if time.Now().Before(end) {
			time.Sleep(time.Until(end) + time.Second)
			return blink, expired
		}
		t.Logf("Vault took so long to stop that the %s lease of %s may have ended first; again with a longer lease", ttl, blink.keyID)
		expired = append(expired, blink.keyID)
		cl.Start(t, 0)
		cl.Active(t)
	}
	t.Fatal("could not stop Vault within a 45 s lease")
	return blink, expired
}

// TestFault_haFailoverUnderLoad: a 3-node raft cluster. Keys are issued and
// some revoked (one through the active node just before it dies); the
// active node is SIGKILLed under a verify load sent to the standbys; a
// standby takes over, verify resumes (the gap is reported), every key
// answers as before on the new active node and through the standbys, and
// the engine keeps issuing and revoking. The killed node then rejoins as a
// standby and forwards correctly. CK_SOAK repeats the failover.
func TestFault_haFailoverUnderLoad(t *testing.T) {
	sc := faultScaleFromEnv()
	start := time.Now()
	cl := vaulttest.StartCluster(t, 3)
	active, ai := cl.Active(t)
	t.Logf("3-node raft cluster up in %s; node %d active", time.Since(start).Round(time.Millisecond), ai)
	const mount = "ck-ha"
	if err := active.Enable(mount); err != nil {
		t.Fatal(err)
	}
	ac := checkClient(t, active.Addr, cl.Token)
	write(t, ac, mount+"/roles/app", map[string]any{"environment": "prod", "ttl": "1h"})
	keys := seedKeys(t, ac, mount, "app", sc.keys)

	// Standbys forward reads and writes to the active node.
	standbys := cl.Standbys(t)
	if len(standbys) != 2 {
		t.Fatalf("%d standbys, want 2", len(standbys))
	}
	for _, s := range standbys {
		if h, err := s.Client.Sys().Health(); err != nil || !h.Standby {
			t.Fatalf("node %s is not a standby: %+v %v", s.Addr, h, err)
		}
		checkKeys(t, checkClient(t, s.Addr, cl.Token), mount, keys, "standby "+s.Addr)
	}
	viaStandby := issueVia(t, checkClient(t, standbys[0].Addr, cl.Token), mount, "app", nil)
	keys = append(keys, viaStandby)
	checkKeys(t, checkClient(t, standbys[1].Addr, cl.Token), mount, keys[len(keys)-1:], "key issued through a standby")

	for cycle := 1; cycle <= sc.cycles; cycle++ {
		where := fmt.Sprintf("failover %d", cycle)
		active, ai = cl.Active(t)
		ac = checkClient(t, active.Addr, cl.Token)
		var loadClients []*api.Client
		for _, s := range cl.Standbys(t) {
			loadClients = append(loadClients, loadClient(t, s.Addr, cl.Token))
		}
		// A key revoked through the active node just before it dies: once
		// the delete has returned, the revocation is committed.
		last := issueVia(t, ac, mount, "app", nil)
		if code, err := verifyVia(ac, mount, last.apiKey); err != nil || code != "VALID" {
			t.Fatalf("%s: new key %s verifies %s (%v)", where, last.keyID, code, err)
		}
		load := startVerifyLoad(t, loadClients, mount, keys, 2)
		load.waitStarted(t, time.Minute)
		time.Sleep(sc.loadFor)
		if _, err := ac.Logical().Delete(mount + "/keys/" + last.keyID); err != nil {
			load.finish(t)
			t.Fatalf("%s: revoking %s: %v", where, last.keyID, err)
		}
		last.want = "REVOKED"
		killedAt := time.Now()
		cl.Kill(ai)
		ok, fail, gap := load.recover(t, killedAt, 3*time.Minute, sc.steady, where)
		newActive, ni := cl.Active(t)
		t.Logf("%s: active node %d SIGKILLed; node %d took over; verify through the standbys failed %d times (%s); %d verifies succeeded in the phase",
			where, ai, ni, fail, gap, ok)
		if ni == ai {
			t.Fatalf("%s: node %d still active after being killed", where, ai)
		}
		keys = append(keys, last)

		// The new active node answers from storage and its own fresh cache;
		// the remaining standby forwards to it. Nothing revoked is accepted,
		// nothing valid refused, no record lost.
		nc := checkClient(t, newActive.Addr, cl.Token)
		checkKeys(t, nc, mount, keys, where+": new active node")
		others := cl.Standbys(t)
		if len(others) != 1 {
			t.Fatalf("%s: %d standbys after the failover, want 1", where, len(others))
		}
		for _, s := range others {
			checkKeys(t, checkClient(t, s.Addr, cl.Token), mount, keys, where+": standby "+s.Addr)
		}
		if got := listKeys(t, nc, mount); !slices.Equal(got, keyIDs(keys)) {
			t.Errorf("%s: keys listed %v, want %v", where, got, keyIDs(keys))
		}
		// Revocation and issuance after the failover, through the standby
		// and the new active node.
		oc := checkClient(t, others[0].Addr, cl.Token)
		i := slices.IndexFunc(keys, func(k faultKey) bool { return k.want == "VALID" })
		if i < 0 {
			t.Fatalf("%s: no valid key left to revoke", where)
		}
		if _, err := oc.Logical().Delete(mount + "/keys/" + keys[i].keyID); err != nil {
			t.Fatalf("%s: revoking %s through the standby: %v", where, keys[i].keyID, err)
		}
		keys[i].want = "REVOKED"
		for _, c := range []*api.Client{nc, oc} {
			if code, err := verifyVia(c, mount, keys[i].apiKey); err != nil || code != "REVOKED" {
				t.Errorf("%s: key %s revoked after the failover verifies %s (%v)", where, keys[i].keyID, code, err)
			}
		}
		fresh := issueVia(t, nc, mount, "app", nil)
		if code, err := verifyVia(oc, mount, fresh.apiKey); err != nil || code != "VALID" {
			t.Errorf("%s: key %s issued after the failover verifies %s through the standby (%v)", where, fresh.keyID, code, err)
		}
		keys = append(keys, fresh)

		// The killed node comes back on its own storage as a standby and
		// forwards to the new active node.
		back := time.Now()
		cl.Start(t, ai)
		cl.WaitHealthy(t)
		t.Logf("%s: node %d rejoined as a standby in %s", where, ai, time.Since(back).Round(time.Millisecond))
		checkKeys(t, checkClient(t, cl.Nodes[ai].Addr, cl.Token), mount, keys, where+": rejoined node "+strconv.Itoa(ai))
	}
}
