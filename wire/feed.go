package wire

// Kinds of revocations feed event.
const (
	KindRevoked   = "revoked"
	KindRotated   = "rotated" // ExpiresAt: the end of its grace
	KindSuspended = "suspended"
	// KindFlush has no key_id: drop every cached key.
	KindFlush = "flush"
	// Bulk revocations have no key_id and name the role or environment
	// whose keys issued before RevokedBefore are revoked: drop every cached
	// key of it. A kind a reader does not know must drop everything.
	KindRevokedRole        = "revoked_role"
	KindRevokedEnvironment = "revoked_environment"
)

// FeedEvent is one event of the revocations feed (read <mount>/revocations).
// Seq numbers events 1, 2, 3 ... with no holes; a suspension the node
// decided but has not yet written travels with Seq 0.
type FeedEvent struct {
	Seq       uint64 `json:"seq"`
	KeyID     string `json:"key_id"`
	Kind      string `json:"kind"`
	At        string `json:"at"`         // RFC 3339 with nanoseconds; "" for Seq 0
	ExpiresAt string `json:"expires_at"` // RFC 3339; "" when none
	// Bulk revocations only.
	Role          string `json:"role,omitempty"`
	Environment   string `json:"environment,omitempty"`
	RevokedBefore string `json:"revoked_before,omitempty"` // RFC 3339 with nanoseconds
}

// FeedReply is a read of the feed: the events after the "since" cursor and
// the cursor to pass next. Reset says the cursor could not be continued:
// drop everything cached and go on from Cursor. WaitMax (FeedWaitMax) is
// the longest wait the engine holds a read for, in seconds; an engine that
// cannot block leaves it out.
type FeedReply struct {
	Events  []FeedEvent `json:"events"`
	Cursor  string      `json:"cursor"`
	Reset   bool        `json:"reset"`
	WaitMax int         `json:"wait_max,omitempty"`
}

// FeedSince is the query parameter that carries the cursor.
const FeedSince = "since"

// Data is the reply as logical.Response data.
func (r *FeedReply) Data() map[string]any {
	evs := make([]map[string]any, 0, len(r.Events))
	for _, ev := range r.Events {
		evs = append(evs, ev.data())
	}
	m := map[string]any{"events": evs, "cursor": r.Cursor, "reset": r.Reset}
	if r.WaitMax > 0 {
		m[FeedWaitMax] = r.WaitMax
	}
	return m
}

func (ev FeedEvent) data() map[string]any {
	m := map[string]any{
		"seq":        ev.Seq,
		"key_id":     ev.KeyID,
		"kind":       ev.Kind,
		"at":         ev.At,
		"expires_at": ev.ExpiresAt,
	}
	if ev.Role != "" {
		m["role"] = ev.Role
	}
	if ev.Environment != "" {
		m["environment"] = ev.Environment
	}
	if ev.RevokedBefore != "" {
		m["revoked_before"] = ev.RevokedBefore
	}
	return m
}

// A blocking read of the feed: FeedWait (whole seconds) holds a read whose
// cursor is at the head until an event is written or the wait ends. An
// engine that can block says so with FeedWaitMax (seconds) in every reply;
// one without it is polled.
const (
	FeedWait    = "wait"
	FeedWaitMax = "wait_max"
)
