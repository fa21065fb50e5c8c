package vaultplugin

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// systemViewTTL is how long an answer from Vault's system view is reused.
const systemViewTTL = time.Second

// systemViewMemo is the SystemView Vault hands the engine, with the three
// answers the engine asks for on its busy paths reused for up to
// systemViewTTL: the replication state, and the mount's default and maximum
// lease TTLs. For an external plugin every ask is a gRPC round trip back to
// Vault, and make bench measured each as a large share of a request.
//
//   - The SDK's framework asks for the replication state before every
//     request it dispatches, to refuse operations marked for forwarding on a
//     performance standby. None of the engine's operations is so marked
//     (TestPaths_noOperationAsksToBeForwarded), so that check never depends
//     on the answer; the engine's own use (WriteSafeReplicationState before
//     the periodic flush and tidy) is content with a second-old one.
//   - Issuing a key reads the lease TTLs. After a mount tune, the engine may
//     go on for up to systemViewTTL with the old ones. Vault itself clamps
//     every lease to the mount's current maximum whatever the engine
//     answers, so a lease never outlives a lowered maximum; only the record's
//     expires_at can be later than the lease for keys issued in that second,
//     and the lease's expiry revokes the key.
//
// A zero TTL is never reused: Vault's mount TTLs are never zero (zero in a
// tune means "the system's"), so zero is what the SDK's gRPC client returns
// when the call failed.
type systemViewMemo struct {
	logical.SystemView
	now func() time.Time

	replication memoValue[consts.ReplicationState]
	defaultTTL  memoValue[time.Duration]
	maxTTL      memoValue[time.Duration]
}

func newSystemViewMemo(sys logical.SystemView, now func() time.Time) *systemViewMemo {
	return &systemViewMemo{SystemView: sys, now: now}
}

func (m *systemViewMemo) ReplicationState() consts.ReplicationState {
	return m.replication.get(m.now(), m.SystemView.ReplicationState, func(consts.ReplicationState) bool { return true })
}

func (m *systemViewMemo) DefaultLeaseTTL() time.Duration {
	return m.defaultTTL.get(m.now(), m.SystemView.DefaultLeaseTTL, nonZero)
}

func (m *systemViewMemo) MaxLeaseTTL() time.Duration {
	return m.maxTTL.get(m.now(), m.SystemView.MaxLeaseTTL, nonZero)
}

func nonZero(d time.Duration) bool { return d != 0 }

// memoValue is one answer and the time until which it is reused.
type memoValue[V any] struct {
	cached atomic.Pointer[memoEntry[V]]
}

type memoEntry[V any] struct {
	v     V
	until time.Time
}

// get returns the cached answer while it is fresh, else asks and caches the
// new answer if keep approves of it. Requests that find it expired together
// each ask once: bounded by the concurrency, once per systemViewTTL.
func (m *memoValue[V]) get(now time.Time, ask func() V, keep func(V) bool) V {
	if c := m.cached.Load(); c != nil && now.Before(c.until) {
		return c.v
	}
	v := ask()
	if keep(v) {
		m.cached.Store(&memoEntry[V]{v: v, until: now.Add(systemViewTTL)})
	}
	return v
}

// writable reports whether this node may write the engine's storage (the
// active node of a primary, or of a local mount), asking Vault now rather
// than the memo.
func (b *backend) writable() bool {
	sys := b.System()
	if m, ok := sys.(*systemViewMemo); ok {
		sys = m.SystemView
	}
	// framework.Backend.WriteSafeReplicationState's rule.
	st := sys.ReplicationState()
	return (sys.LocalMount() || !st.HasState(consts.ReplicationPerformanceSecondary)) &&
		!st.HasState(consts.ReplicationDRSecondary) &&
		!st.HasState(consts.ReplicationPerformanceStandby)
}
