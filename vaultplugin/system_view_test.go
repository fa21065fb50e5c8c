package vaultplugin

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// askCounter is Vault's side of the system view: it counts the asks.
type askCounter struct {
	logical.StaticSystemView
	asks atomic.Int32
}

func (s *askCounter) ReplicationState() consts.ReplicationState {
	s.asks.Add(1)
	return s.StaticSystemView.ReplicationState()
}

func TestSystemViewMemo_replicationStateAskedOncePerTTL(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	vault := &askCounter{}
	m := newSystemViewMemo(vault, clock.Now)
	for range 100 {
		if s := m.ReplicationState(); s != 0 {
			t.Fatalf("state %v", s)
		}
	}
	if n := vault.asks.Load(); n != 1 {
		t.Fatalf("100 requests asked Vault %d times, want 1", n)
	}

	// A change in Vault shows once the answer is older than the TTL.
	vault.ReplicationStateVal = consts.ReplicationPerformanceStandby
	clock.Add(systemViewTTL - time.Millisecond)
	if s := m.ReplicationState(); s != 0 {
		t.Fatalf("within the TTL: state %v", s)
	}
	clock.Add(time.Millisecond)
	if s := m.ReplicationState(); !s.HasState(consts.ReplicationPerformanceStandby) {
		t.Fatalf("after the TTL: state %v", s)
	}
	if n := vault.asks.Load(); n != 2 {
		t.Fatalf("Vault asked %d times, want 2", n)
	}
	// What the memo does not keep still goes to Vault.
	vault.LocalMountVal = true
	if !m.LocalMount() {
		t.Fatal("LocalMount did not reach Vault")
	}
}

// The memo is safe only while the framework's forwarding check never
// matters: no operation of the engine may ask to be forwarded.
func TestPaths_noOperationAsksToBeForwarded(t *testing.T) {
	b := newBackend(time.Now)
	for _, p := range b.Paths {
		for op, h := range p.Operations {
			if props := h.Properties(); props.ForwardPerformanceStandby || props.ForwardPerformanceSecondary {
				t.Errorf("%s %s asks to be forwarded; the replication state memo (system_view.go) must then go", op, p.Pattern)
			}
		}
	}
}

// ttlCounter is Vault's side of the system view: it counts reads of the
// mount's lease TTLs.
type ttlCounter struct {
	logical.StaticSystemView
	defReads, maxReads int
}

func (s *ttlCounter) DefaultLeaseTTL() time.Duration {
	s.defReads++
	return s.StaticSystemView.DefaultLeaseTTL()
}

func (s *ttlCounter) MaxLeaseTTL() time.Duration {
	s.maxReads++
	return s.StaticSystemView.MaxLeaseTTL()
}

// Issuing reads the mount's lease TTLs from Vault at most once per
// systemViewTTL, the default only when neither role nor config sets a ttl,
// and sees a mount tune once the answer it holds is that old.
func TestSystemViewMemo_leaseTTLsReadOncePerTTLAndFollowTunes(t *testing.T) {
	vault := &ttlCounter{StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: 3 * time.Hour, MaxLeaseTTLVal: 48 * time.Hour}}
	e := newTestEnvWith(t, vault)
	e.role("timed", map[string]any{"environment": "prod", "ttl": "10h"})
	e.role("untimed", map[string]any{"environment": "prod"})
	// Role writes read the mount's max (to warn of a role above it): let
	// that answer age out, so the count below starts from a cold memo.
	e.clock.Add(systemViewTTL)

	vault.defReads, vault.maxReads = 0, 0
	for range 3 {
		if _, s := e.issue("timed", nil); s.TTL != 10*time.Hour {
			t.Fatalf("lease TTL %v, want the role's 10h", s.TTL)
		}
	}
	if vault.defReads != 0 || vault.maxReads != 1 {
		t.Fatalf("issuing 3 keys with a role ttl read the default %d and the max %d times, want 0 and 1", vault.defReads, vault.maxReads)
	}
	if _, s := e.issue("untimed", nil); s.TTL != 3*time.Hour {
		t.Fatalf("lease TTL %v, want the mount default 3h", s.TTL)
	}
	if vault.defReads != 1 || vault.maxReads != 1 {
		t.Fatalf("issuing without a ttl read the default %d and the max %d times, want 1 and 1", vault.defReads, vault.maxReads)
	}

	// vault secrets tune -max-lease-ttl=2h: the engine may go on with the
	// old maximum for up to systemViewTTL (Vault clamps the lease itself).
	vault.MaxLeaseTTLVal = 2 * time.Hour
	e.clock.Add(systemViewTTL - time.Millisecond)
	if _, s := e.issue("timed", nil); s.TTL != 10*time.Hour {
		t.Fatalf("within the memo's TTL: lease TTL %v, want the old answer's 10h", s.TTL)
	}
	e.clock.Add(time.Millisecond)
	if _, s := e.issue("timed", nil); s.TTL != 2*time.Hour {
		t.Fatalf("after a tune: lease TTL %v, want the mount max 2h", s.TTL)
	}
	if vault.maxReads != 2 {
		t.Fatalf("the max was read %d times, want 2", vault.maxReads)
	}
}

// A zero TTL is how the SDK's gRPC client reports a failed call: it is
// passed on (as before the memo) but never reused.
func TestSystemViewMemo_zeroTTLIsNotKept(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	vault := &ttlCounter{}
	m := newSystemViewMemo(vault, clock.Now)
	if m.MaxLeaseTTL() != 0 || m.DefaultLeaseTTL() != 0 {
		t.Fatal("want Vault's zero answers")
	}
	vault.MaxLeaseTTLVal, vault.DefaultLeaseTTLVal = 5*time.Hour, time.Hour
	if got := m.MaxLeaseTTL(); got != 5*time.Hour {
		t.Fatalf("MaxLeaseTTL %v after a zero answer, want Vault's 5h", got)
	}
	if got := m.DefaultLeaseTTL(); got != time.Hour {
		t.Fatalf("DefaultLeaseTTL %v after a zero answer, want Vault's 1h", got)
	}
	if vault.maxReads != 2 || vault.defReads != 2 {
		t.Fatalf("reads: max %d, default %d; want 2 and 2", vault.maxReads, vault.defReads)
	}
}
