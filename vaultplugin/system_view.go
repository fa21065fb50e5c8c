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
// round trip back to Vault: a third of the cost of an `info` read. None of
// the engine's operations is marked for forwarding, so that check never
// depends on the answer; the engine's own use (WriteSafeReplicationState
// before the periodic flush and tidy) is content with a second-old one.
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
