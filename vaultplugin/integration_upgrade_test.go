package vaultplugin_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/vault/api"
)

// Plugin upgrades (issue 19 item 4): two builds of the engine, v0.1.0 and
// v0.2.0, registered side by side by sha256 and version; a mount moved from
// one to the other with `vault secrets tune -plugin-version` and `vault
// plugin reload` while a gateway-like load verifies keys; then moved back.

// upgradeLoad verifies keys in a loop and keeps every answer, so the test
// can tell what happened before, during and after a move.
type upgradeLoad struct {
	mu      sync.Mutex
	answers []upgradeAnswer
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

type upgradeAnswer struct {
	key           faultKey
	started, done time.Time
	code          string
	err           error
}

func startUpgradeLoad(t *testing.T, c *api.Client, mount string, keys []faultKey, workers int) *upgradeLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &upgradeLoad{stop: cancel}
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				k := keys[i%len(keys)]
				a := upgradeAnswer{key: k, started: time.Now()}
				a.code, a.err = verifyVia(c, mount, k.apiKey)
				a.done = time.Now()
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				if a.err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *upgradeLoad) finish() []upgradeAnswer {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers
}

// moveUnderLoad moves mount to version (tune, then reload of that mount
// alone) while a load verifies keys, and checks what the load saw: every
// answer is the key's own (VALID for a live key, REVOKED for a revoked
// one), requests fail only between the tune and a few seconds after the
// reload, and at most maxFailures of them. It returns the answers and when
// when the move started and when the reload had returned.
func moveUnderLoad(t *testing.T, srv *vaulttest.Server, c *api.Client, mount string, keys []faultKey, version string, maxFailures int) (answers []upgradeAnswer, moveAt, reloaded time.Time) {
	t.Helper()
	load := startUpgradeLoad(t, loadClient(t, srv.Addr, srv.Token), mount, keys, 3)
	time.Sleep(2 * time.Second) // the load runs on the old build first
	moveAt = time.Now()
	srv.MustCLI(t, "secrets", "tune", "-plugin-version="+version, mount)
	srv.MustCLI(t, "plugin", "reload", "-mounts="+mount)
	reloaded = time.Now()
	// The new build answers, then the load goes on against it for a while.
	deadline := time.Now().Add(time.Minute)
	for {
		if v := srv.RunningPluginVersion(t, mount); v == version {
			if _, err := verifyVia(c, mount, keys[len(keys)-1].apiKey); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			load.finish()
			t.Fatalf("mount %s not running %s a minute after the reload (running %s)", mount, version, srv.RunningPluginVersion(t, mount))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	answers = load.finish()

	var ok, failed, late int
	var firstErr error
	for _, a := range answers {
		switch {
		case a.err != nil:
			failed++
			if firstErr == nil {
				firstErr = a.err
			}
			// A failure is the reload's only if the request was in flight
			// between the tune and shortly after the reload.
			if a.done.Before(moveAt) || a.started.After(reloaded.Add(5*time.Second)) {
				late++
			}
		case a.code != a.key.want:
			t.Errorf("moving to %s: key %s verified %s, want %s (at %s, %s after the move began)", version, a.key.keyID, a.code, a.key.want, a.done.Format(time.RFC3339Nano), a.done.Sub(moveAt).Round(time.Millisecond))
		default:
			ok++
		}
	}
	t.Logf("moving to %s under load: %d verifies answered right, %d failed in transport or with a Vault error (first: %v); tune+reload took %s",
		version, ok, failed, firstErr, reloaded.Sub(moveAt).Round(time.Millisecond))
	if ok == 0 {
		t.Fatalf("moving to %s: no verify answered", version)
	}
	if late > 0 {
		t.Errorf("moving to %s: %d verifies failed outside the reload (first error: %v)", version, late, firstErr)
	}
	if failed > maxFailures {
		t.Errorf("moving to %s: %d verifies failed during the reload, more than %d", version, failed, maxFailures)
	}
	return answers, moveAt, reloaded
}

// TestIntegration_pluginUpgradeUnderLoad moves a mount from v0.1.0 to
// v0.2.0 and back under a verify load, and shows what survives: keys
// (records unchanged, live keys VALID), leases (renewed and revoked through
// the new build), revocations (a key revoked before the move stays
// REVOKED), and usage (what the old build counted is flushed when it is
// reloaded away, and the new build goes on counting). The downgrade works:
// both builds share one storage layout, and the engine keeps no storage
// version that would refuse it.
func TestIntegration_pluginUpgradeUnderLoad(t *testing.T) {
	srv := vaulttest.Start(t)
	dir := t.TempDir()
	v1 := srv.RegisterPlugin(t, vaulttest.BuildPlugin(t, "v0.1.0", dir))
	v2 := srv.RegisterPlugin(t, vaulttest.BuildPlugin(t, "v0.2.0", dir))
	if v1 != "v0.1.0" || v2 != "v0.2.0" {
		t.Fatalf("built versions %s and %s, want v0.1.0 and v0.2.0", v1, v2)
	}
	out := srv.MustCLI(t, "plugin", "list", "-detailed", "secret")
	for _, v := range []string{v1, v2} {
		if !containsLine(out, vaulttest.PluginName, v) {
			t.Fatalf("plugin catalog lacks %s %s:\n%s", vaulttest.PluginName, v, out)
		}
	}

	mount := "ck-upgrade"
	srv.MustCLI(t, "secrets", "enable", "-path="+mount, "-plugin-version="+v1, vaulttest.PluginName)
	c := checkClient(t, srv.Addr, srv.Token)
	if got := engineVersion(t, c, mount); got != v1 {
		t.Fatalf("info reports version %s, want %s", got, v1)
	}
	write(t, c, mount+"/roles/app", map[string]any{"environment": "prod", "ttl": "1h", "max_ttl": "4h"})
	keys := seedKeys(t, c, mount, "app", 5) // three of them revoked, as operators revoke
	// Usage the old build holds in memory: counted, not yet flushed (the
	// periodic flush runs once a minute at most).
	counted := newTally()
	for range 3 {
		checkKeys(t, c, mount, keys, "on "+v1, counted)
	}
	before := keyRecords(t, c, mount, keys)
	listed := listKeys(t, c, mount)

	// Upgrade under load.
	answers, moveAt, reloaded := moveUnderLoad(t, srv, c, mount, keys, v2, 50)
	if got := engineVersion(t, c, mount); got != v2 {
		t.Fatalf("after the upgrade info reports %s, want %s", got, v2)
	}
	// Every VALID answer the old build gave before the move began was
	// counted in its memory, and every one to a request sent after the
	// reload returned was counted by the new build: use_count (stored, plus
	// what the new build holds) must cover both, so what the old build
	// counted was flushed when it was reloaded away (or by Vault's periodic
	// run), not lost with its process.
	for _, a := range answers {
		if a.err == nil && a.code == "VALID" && (a.done.Before(moveAt) || a.started.After(reloaded)) {
			counted.add(a.key.keyID)
		}
	}
	var usedSum, countedSum int64
	for id, n := range useCounts(t, c, mount, keys) {
		usedSum += n
		countedSum += counted.get(id)
		if n < counted.get(id) {
			t.Errorf("after the upgrade keys/%s use_count %d, want at least %d: usage counted by %s was lost in the move", id, n, counted.get(id), v1)
		}
	}
	t.Logf("after the upgrade: use_count of the live keys adds up to %d; %d VALID answers were given by %s before the move began or by %s after it", usedSum, countedSum, v1, v2)
	checkKeys(t, c, mount, keys, "on "+v2)
	compareRecords(t, before, keyRecords(t, c, mount, keys), "after the upgrade")
	if got := listKeys(t, c, mount); fmt.Sprint(got) != fmt.Sprint(listed) {
		t.Errorf("after the upgrade keys listed %v, before %v", got, listed)
	}

	// Leases issued by v0.1.0 are renewed and revoked through v0.2.0.
	live := keys[3]
	s, err := c.Sys().Renew(live.leaseID, 3600)
	if err != nil || s == nil || s.LeaseDuration <= 0 {
		t.Fatalf("renewing the lease of %s after the upgrade: %v", live.keyID, err)
	}
	if err := c.Sys().RevokeWithOptions(&api.RevokeOptions{LeaseID: live.leaseID, Sync: true}); err != nil {
		t.Fatalf("revoking the lease of %s after the upgrade: %v", live.keyID, err)
	}
	keys[3].want = "REVOKED"
	checkKeys(t, c, mount, keys, "after revoking a pre-upgrade lease on "+v2)
	// The new build issues keys too.
	k := issueVia(t, c, mount, "app", nil)
	keys = append(keys, k)
	checkKeys(t, c, mount, keys, "with a key issued by "+v2)

	// Downgrade: works, under load, with the same guarantees.
	before = keyRecords(t, c, mount, keys)
	_, _, _ = moveUnderLoad(t, srv, c, mount, keys, v1, 50)
	if got := engineVersion(t, c, mount); got != v1 {
		t.Fatalf("after the downgrade info reports %s, want %s", got, v1)
	}
	checkKeys(t, c, mount, keys, "after the downgrade to "+v1)
	compareRecords(t, before, keyRecords(t, c, mount, keys), "after the downgrade")
	if s, err := c.Sys().Renew(k.leaseID, 3600); err != nil || s == nil {
		t.Fatalf("renewing the lease of %s (issued by %s) on %s: %v", k.keyID, v2, v1, err)
	}

	// A version that is not registered is refused by Vault, and the mount
	// keeps running what it ran.
	if out, err := srv.CLI(t, "secrets", "tune", "-plugin-version=v9.9.9", mount); err == nil {
		t.Fatalf("tune to an unregistered version succeeded:\n%s", out)
	} else if !containsAll(out, "v9.9.9") {
		t.Errorf("tune to an unregistered version: the error does not name it:\n%s", out)
	}
	if got := srv.RunningPluginVersion(t, mount); got != v1 {
		t.Errorf("after a refused tune the mount runs %s, want %s", got, v1)
	}
}

func engineVersion(t *testing.T, c *api.Client, mount string) string {
	t.Helper()
	v, _ := read(t, c, mount+"/info")["version"].(string)
	return v
}

// containsLine reports whether some line of out holds every one of words.
func containsLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if containsAll(line, words...) {
			return true
		}
	}
	return false
}

func containsAll(s string, words ...string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
