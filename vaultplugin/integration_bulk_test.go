package vaultplugin_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/hashicorp/vault/api"
)

// bulkKeys is how many keys TestIntegration_bulkRevocation revokes: 20,000
// in make test, as issue 22 asks, 100,000 under CK_SOAK=1; CK_BULK_KEYS
// overrides. 20,000 took about 5 minutes on 2 cores shared with other
// work: 102 s to issue them through creds at about 200 keys/s, 157 s for
// the job.
func bulkKeys() int {
	if n, err := strconv.Atoi(os.Getenv("CK_BULK_KEYS")); err == nil && n > 0 {
		return n
	}
	if os.Getenv("CK_SOAK") == "1" {
		return 100_000
	}
	return 20_000
}

// parallel runs f(i) for i in [0, n) on w workers and returns the first error.
func parallel(n, w int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// TestIntegration_bulkRevocation: revoke/role on a raft-backed Vault
// holding many keys of the role. When the request returns, every key is
// refused by the engine, and a running local verifier refuses the keys it
// had cached within a second (one feed event); the background job finishes,
// survives a restart of Vault in the middle, and leaves every record
// revoked; keys of another role, and keys issued after the watermark, stay
// VALID.
func TestIntegration_bulkRevocation(t *testing.T) {
	n := bulkKeys()
	cl := vaulttest.StartPersistent(t, vaulttest.StorageRaft)
	srv := cl.Nodes[0]
	const mount = "ck-bulk"
	if err := srv.Enable(mount); err != nil {
		t.Fatal(err)
	}
	c := checkClient(t, srv.Addr, srv.Token)
	write(t, c, mount+"/roles/victim", map[string]any{"environment": "prod", "ttl": "2h"})
	write(t, c, mount+"/roles/bystander", map[string]any{"environment": "prod", "ttl": "2h"})

	// Seed: concurrent creds reads (Vault serialises little of an issue:
	// a record, an index entry and a lease each).
	keys := make([]faultKey, n)
	seedStart := time.Now()
	if err := parallel(n, 16, func(i int) error {
		s, err := c.Logical().Read(mount + "/creds/victim")
		if err != nil || s == nil {
			return fmt.Errorf("creds/victim: %v", err)
		}
		keys[i] = faultKey{apiKey: s.Data["api_key"].(string), keyID: s.Data["key_id"].(string), leaseID: s.LeaseID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seeded := time.Since(seedStart)
	t.Logf("seeded %d keys in %s (%.0f keys/s)", n, seeded.Round(time.Millisecond), float64(n)/seeded.Seconds())
	bystander := issueVia(t, c, mount, "bystander", nil)

	// A local verifier with part of the role cached.
	v, err := verifier.New(t.Context(), verifier.Config{Client: c, Mount: mount, Environment: "prod", PollInterval: 200 * time.Millisecond, CacheTTL: 10 * time.Minute, MaxStaleness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close(context.Background()) })
	cached := keys[:min(n, 300)]
	for _, k := range append(slices.Clone(cached), bystander) {
		if r, err := v.Verify(t.Context(), verifier.Request{APIKey: k.apiKey}); err != nil || r.Code != "VALID" {
			t.Fatalf("verifier, before: %s %v %v", k.keyID, r.Code, err)
		}
	}
	if r, _ := v.Verify(t.Context(), verifier.Request{APIKey: cached[0].apiKey}); !r.Cached {
		t.Fatal("the verifier did not cache the key")
	}

	sent := time.Now()
	reply := write(t, c, mount+"/revoke/role/victim", map[string]any{"reason": "INC-22 bulk test"}).Data
	returned := time.Now()
	jobID, _ := reply["job_id"].(string)
	t.Logf("revoke/role answered in %s: job %s state %v done %v left %v", returned.Sub(sent).Round(time.Millisecond), jobID, reply["state"], reply["done"], reply["left"])
	if jobID == "" || reply["revoked_before"] == "" {
		t.Fatalf("reply: %v", reply)
	}

	// The verifier, probed from the reply on, beside the engine's check: a
	// bulk event drops every cached key of the role in one step, so the
	// moment a probe key no longer answers from the cache is the moment
	// none of them does. Every cached key is checked afterwards, untimed
	// (each is then a miss that asks the engine, which is what made the
	// earlier serial check of 300 keys take over a second).
	probe := cached[len(cached)-1]
	probed := make(chan time.Duration, 1)
	go func() {
		for {
			r, err := v.Verify(context.Background(), verifier.Request{APIKey: probe.apiKey})
			if err == nil && !r.Cached && r.Code == "REVOKED" {
				probed <- time.Since(returned)
				return
			}
			if time.Since(returned) > 5*time.Second {
				probed <- -1
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// Within one second of the reply: the engine refuses (a sample, across
	// the whole range of keys), and the local verifier refuses every key it
	// had cached.
	sample := []faultKey{}
	for i := 0; i < n; i += max(1, n/200) {
		sample = append(sample, keys[i])
	}
	sample = append(sample, keys[n-1])
	if err := parallel(len(sample), 8, func(i int) error {
		k := sample[i]
		if code, err := verifyVia(c, mount, k.apiKey); err != nil || code != "REVOKED" {
			return fmt.Errorf("engine: key %s verifies %s (%v) after revoke/role returned", k.keyID, code, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	engineAt := time.Since(returned)
	verifierAt := <-probed
	if verifierAt < 0 {
		t.Fatalf("the local verifier still answers a revoked key from its cache 5s after the revocation")
	}
	for _, k := range cached {
		if r, err := v.Verify(t.Context(), verifier.Request{APIKey: k.apiKey}); err != nil || r.Code == "VALID" || r.Cached {
			t.Errorf("the local verifier, after the bulk event: key %s answers %s (cached %v, %v)", k.keyID, r.Code, r.Cached, err)
		}
	}
	t.Logf("refused everywhere: engine sample of %d within %s, local verifier (%d cached keys dropped) within %s of the reply", len(sample), engineAt.Round(time.Millisecond), len(cached), verifierAt.Round(time.Millisecond))
	// The engine refuses from the reply on (every verify above came after
	// it); the verifier once its next feed read (every 200ms here) brings
	// the bulk event.
	if engineAt > time.Second || verifierAt > time.Second {
		t.Errorf("bulk revocation took too long to take effect: engine sample %s, verifier %s", engineAt, verifierAt)
	}
	for _, k := range []faultKey{bystander} {
		if r, err := v.Verify(t.Context(), verifier.Request{APIKey: k.apiKey}); err != nil || r.Code != "VALID" {
			t.Errorf("the bystander role's key: %v %v", r.Code, err)
		}
	}
	rec := read(t, c, mount+"/keys/"+keys[n-1].keyID)
	if rec["status"] != "revoked" || rec["revoked_at"] == "" || rec["revoke_reason"] != "INC-22 bulk test" || rec["revoke_job"] != jobID {
		t.Errorf("keys/<id> of a key whose page may not be done: %v", rec)
	}
	after := issueVia(t, c, mount, "victim", nil)

	// Restart Vault while the job runs; it resumes.
	job := read(t, c, mount+"/revoke/jobs/"+jobID)
	t.Logf("before the restart: done %v left %v", job["done"], job["left"])
	restarted := job["state"] == "running"
	if restarted {
		cl.Stop(0)
		cl.Start(t, 0)
		cl.Active(t)
		t.Logf("Vault restarted with the job at done %v", job["done"])
	} else {
		t.Logf("the job was done before a restart could interrupt it")
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		job = read(t, c, mount+"/revoke/jobs/"+jobID)
		if job["state"] == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not done: %v", job)
		}
		time.Sleep(time.Second)
	}
	complete := time.Since(sent)
	t.Logf("job done %s after the request: %v", complete.Round(time.Millisecond), job)
	if job["errors"] != float64(0) && fmt.Sprint(job["errors"]) != "0" {
		t.Errorf("job errors: %v", job)
	}
	if fmt.Sprint(job["left"]) != "0" {
		t.Errorf("job left: %v", job)
	}

	// Every record revoked in storage (a sample through sys/raw, all of
	// them through verify).
	uuid := srv.MountUUID(t, mount)
	for _, k := range sample {
		s, err := c.Logical().Read("sys/raw/logical/" + uuid + "/keys/" + k.keyID)
		if err != nil || s == nil {
			t.Fatalf("sys/raw of %s: %v", k.keyID, err)
		}
		if v, _ := s.Data["value"].(string); !containsAll(v, `"revoked_at"`, `"revoke_job":"`+jobID+`"`) {
			t.Errorf("stored record %s not revoked by the job: %.200s", k.keyID, v)
		}
	}
	var valid atomic.Int64
	if err := parallel(n, 8, func(i int) error {
		code, err := verifyVia(c, mount, keys[i].apiKey)
		if err != nil {
			return err
		}
		if code != "REVOKED" {
			valid.Add(1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if valid.Load() != 0 {
		t.Errorf("%d of %d keys not REVOKED after the job", valid.Load(), n)
	}
	for _, k := range []faultKey{after, bystander} {
		if code, err := verifyVia(c, mount, k.apiKey); err != nil || code != "VALID" {
			t.Errorf("key %s (issued after the watermark, or of another role): %s %v", k.keyID, code, err)
		}
	}
	t.Logf("figures: keys=%d seed_s=%.1f effective_ms=%d complete_s=%.1f restarted=%v", n, seeded.Seconds(), max(engineAt, verifierAt).Milliseconds()+returned.Sub(sent).Milliseconds(), complete.Seconds(), restarted)
}

var _ = api.DefaultConfig
