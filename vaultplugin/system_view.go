package vaultplugin

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL is how long an answer of ReplicationState is reused.
const replicationStateTTL = time.Second

// replicationMemo is the SystemView Vault hands the engine, with
// ReplicationState answered from memory for up to replicationStateTTL.
//
// The SDK's framework asks for the replication state before every request
// it dispatches (to refuse operations marked for forwarding on a
// performance standby), and for an external plugin every ask is a gRPC
// round trip back to Vault: over a quarter of what an `info` read cost
// before this memo (measured by make bench). None of the engine's
// operations is marked for forwarding, so that check never depends on the
// answer; the engine's own use (WriteSafeReplicationState before the
// periodic flush and tidy) is content with a second-old one.
type replicationMemo struct {
	logical.SystemView
	now    func() time.Time
	cached atomic.Pointer[memoState]
}

type memoState struct {
	state consts.ReplicationState
	until time.Time
}

func newReplicationMemo(sys logical.SystemView, now func() time.Time) *replicationMemo {
	return &replicationMemo{SystemView: sys, now: now}
}

func (m *replicationMemo) ReplicationState() consts.ReplicationState {
	now := m.now()
	if c := m.cached.Load(); c != nil && now.Before(c.until) {
		return c.state
	}
	// Requests that find it expired together each ask once; that is
	// bounded by the concurrency and happens once per TTL.
	s := m.SystemView.ReplicationState()
	m.cached.Store(&memoState{state: s, until: now.Add(replicationStateTTL)})
	return s
}

// leaseTTLs is the system view for one request that issues a key, with the
// mount's default and maximum lease TTLs each read at most once and only if
// needed. For an external plugin every read is a gRPC round trip to Vault,
// and issuing consults the maximum several times over (CalculateTTL
// included), the default only when neither role nor config sets a ttl. A
// mount tune still takes effect from the next request on. Not safe for
// concurrent use: it lives as long as one request's handler.
type leaseTTLs struct {
	logical.SystemView
	def, max         time.Duration
	haveDef, haveMax bool
}

func newLeaseTTLs(sys logical.SystemView) *leaseTTLs { return &leaseTTLs{SystemView: sys} }

func (l *leaseTTLs) DefaultLeaseTTL() time.Duration {
	if !l.haveDef {
		l.def, l.haveDef = l.SystemView.DefaultLeaseTTL(), true
	}
	return l.def
}

func (l *leaseTTLs) MaxLeaseTTL() time.Duration {
	if !l.haveMax {
		l.max, l.haveMax = l.SystemView.MaxLeaseTTL(), true
	}
	return l.max
}
