package vaultplugin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	maxUsageReports = 10_000
	maxUsageCount   = 1 << 40

	// usageTicketTTL is how long a VALID verify answer's usage_ticket lets
	// its holder report usage of that key. A local verifier refreshes it
	// whenever it asks the engine again (at least once per cache TTL).
	usageTicketTTL = 15 * time.Minute
	// maxTicketLen bounds the ticket field before it is decoded.
	maxTicketLen = 128
)

// A usage ticket is base64url (no padding) of key_id (12 bytes) | expiry
// (unix seconds, 8 bytes big-endian) | HMAC-SHA256(ticketKey, key_id |
// expiry). ticketKey is HMAC(pepper, ticketKeyLabel): it never leaves the
// engine and differs per mount, so a ticket is good for one key of one
// mount until it expires, and only verify makes them.
const (
	ticketKeyLabel = "cryptokeys usage ticket v1"
	ticketRawLen   = keyformat.KeyIDLen + 8 + sha256.Size
)

// ticketKey is the key of a mount's usage tickets, with a pool of HMACs
// under it: verify makes a ticket per VALID answer, and a pooled HMAC
// (reset to its precomputed pads) costs no allocation.
type ticketKey struct {
	macs sync.Pool
}

func deriveTicketKey(pepper []byte) *ticketKey {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(ticketKeyLabel))
	key := m.Sum(nil)
	return &ticketKey{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// mac appends the ticket MAC of body to dst.
func (k *ticketKey) mac(dst, body []byte) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	dst = m.Sum(dst)
	k.macs.Put(m)
	return dst
}

// usageTicket is what a VALID verify answer carries: one HMAC.
func usageTicket(k *ticketKey, keyID string, now time.Time) string {
	if k == nil {
		return ""
	}
	var raw [ticketRawLen]byte
	n := copy(raw[:keyformat.KeyIDLen], keyID)
	binary.BigEndian.PutUint64(raw[n:], uint64(now.Add(usageTicketTTL).Unix())) // #nosec G115 -- a time after 1970: the Unix seconds are positive
	k.mac(raw[:n+8], raw[:n+8])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// ticketValid reports whether ticket is a live ticket of this mount for keyID.
func ticketValid(k *ticketKey, keyID, ticket string, now time.Time) bool {
	if k == nil || len(keyID) != keyformat.KeyIDLen || len(ticket) != base64.RawURLEncoding.EncodedLen(ticketRawLen) {
		return false
	}
	var raw [ticketRawLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(ticket)); err != nil || n != ticketRawLen || string(raw[:keyformat.KeyIDLen]) != keyID {
		return false
	}
	body := raw[:keyformat.KeyIDLen+8]
	var sum [sha256.Size]byte
	if !hmac.Equal(k.mac(sum[:0], body), raw[len(body):]) {
		return false
	}
	exp := binary.BigEndian.Uint64(raw[keyformat.KeyIDLen:])
	return exp <= uint64(1<<62) && now.Unix() <= int64(exp)
}

func pathUsage(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "usage",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "report",
			OperationSuffix: "usage",
		},
		Fields: map[string]*framework.FieldSchema{
			"reports": {
				Type: framework.TypeSlice,
				Description: `Usage seen by a local verifier: a list of {"key_id", "count", "last_used_at" (RFC3339), "source_ip", "counted_since" (RFC3339, optional), "ticket"}, at most ` +
					strconv.Itoa(maxUsageReports) + `. "ticket" (required) is the usage_ticket of a VALID verify answer for that key_id, at most 15 minutes old. A key used from several addresses takes one entry per address.`,
				Required: true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathUsageReport),
				Responses: okResponse("How many reports were counted.", usageResponseFields),
				Summary:   "Add usage counted by a local verifier.",
			},
		},
		HelpSynopsis: "Report usage counted outside the engine.",
		HelpDescription: `Local verifiers answer most requests from their cache; they report what they
counted here in batches so keys/<key_id> shows true use_count, last_used_at
and source addresses, and anomaly detection learns each key's usual sources.
Counts join the in-memory usage and are stored with a later flush.

Reports are bound to possession of the key. Each entry must carry the
usage_ticket that a VALID verify answer for its key_id returned within the
last 15 minutes; only verify makes tickets (keyed by a secret that never
leaves the engine), so only a caller that verified the key through this
engine, which needs the key itself, holds one. A malformed entry is a 400
and changes nothing. An entry whose ticket does not verify or has expired,
or whose key has no record or is revoked or expired, is dropped and counted:
the reply is {accepted, rejected}. last_used_at is clamped to the key's
life (created_at to now). Pending usage is bounded: past the bound, entries
for keys not already pending are rejected (with a warning) until a flush.

Reports feed anomaly detection as verify does: an entry's source_ip that is
new for a key with flag_new_source is an anomaly, and so is a rate above
anomaly_rate (each entry's count over the time since its counted_since, at
least 10 s; 10 s when it is not given, as a verifier reporting every 10 s
counts). With on_anomaly=suspend the key is suspended at once, and the
revocations feed carries the suspension to every verifier and gateway.

What a token that may write usage is trusted with: for keys it verified
through the engine in the last 15 minutes, to say how often and from which
addresses they were used. It can raise those keys' use_count and add their
source addresses (and so shape their new-source baseline, or have them
suspended for an anomaly); it cannot touch a key it has not verified. Give it only to local verifiers and gateways.`,
	}}
}

type usageReport struct {
	KeyID        string
	Count        uint64
	LastUsedAt   time.Time
	CountedSince time.Time // zero: not given
	SourceIP     string
	Ticket       string
}

func (b *backend) pathUsageReport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// Pending usage is flushed only where storage is writable: a
	// performance standby (or secondary) would keep the report in memory
	// for good. ErrReadOnly makes Vault forward it to the node that flushes.
	// Asked here, of Vault's own system view rather than the framework's
	// forwarding flag, which would read the memo's second-old answer (see
	// system_view.go); reports come in batches, so the round trip is cheap.
	if !b.writable() {
		return nil, logical.ErrReadOnly
	}
	raw := d.Get("reports").([]any)
	if len(raw) > maxUsageReports {
		return respond(badField("reports", "at most %d per request", maxUsageReports))
	}
	parsed := make([]usageReport, 0, len(raw))
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return respond(badField("reports", "entry %d must be an object", i))
		}
		u, err := parseUsageReport(m)
		if err != nil {
			return respond(badField("reports", "entry %d: %v", i, err))
		}
		parsed = append(parsed, u)
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	// Decide every entry first (a storage error then changes nothing),
	// then add what is accepted. Tickets are checked before any storage
	// read: a made-up key_id costs one HMAC, never a read.
	now := b.now()
	keep := parsed[:0]
	var recs []*keyRecord
	rejected := 0
	for _, u := range parsed {
		if !ticketValid(cfg.ticketKey, u.KeyID, u.Ticket, now) {
			rejected++
			continue
		}
		rec, err := b.getKey(ctx, req.Storage, u.KeyID)
		if err != nil {
			return nil, err
		}
		if rec == nil || !rec.live(now) {
			rejected++
			continue
		}
		if u.LastUsedAt.Before(rec.CreatedAt) {
			u.LastUsedAt = rec.CreatedAt
		}
		if u.LastUsedAt.After(now) {
			u.LastUsedAt = now
		}
		keep = append(keep, u)
		recs = append(recs, rec)
	}
	// Traffic answered from caches meets anomaly detection here, as verify
	// traffic does in verify.
	for i, u := range keep {
		b.anomalies.observeReport(recs[i], now, u.Count, u.CountedSince, u.SourceIP, b.logAnomaly)
	}
	full := 0
	for _, u := range keep {
		if !b.usage.add(u.KeyID, u.Count, u.LastUsedAt, u.SourceIP, now) {
			full++
		}
	}
	resp := &logical.Response{Data: map[string]any{"accepted": len(keep) - full, "rejected": rejected + full}}
	if full > 0 {
		resp.AddWarning(fmt.Sprintf("%d entries rejected: usage waiting to be stored is at its bound (%d keys); they are accepted again after the next flush", full, maxPendingUsage))
	}
	return resp, nil
}

func parseUsageReport(m map[string]any) (usageReport, error) {
	var u usageReport
	for k := range m {
		if !slices.Contains(wire.UsageReportFields, k) {
			return u, fmt.Errorf("unknown field %q", printable(k))
		}
	}
	u.KeyID, _ = m["key_id"].(string)
	if !keyformat.ValidKeyID(u.KeyID) {
		return u, fmt.Errorf("key_id must be 12 base62 characters")
	}
	switch c := m["count"].(type) {
	case float64:
		if c < 1 || c > maxUsageCount || c != float64(uint64(c)) {
			return u, fmt.Errorf("count must be a whole number from 1 to %d", uint64(maxUsageCount))
		}
		u.Count = uint64(c)
	case int:
		if c < 1 || c > maxUsageCount {
			return u, fmt.Errorf("count must be a whole number from 1 to %d", uint64(maxUsageCount))
		}
		u.Count = uint64(c)
	default:
		return u, fmt.Errorf("count must be a number")
	}
	s, _ := m["last_used_at"].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return u, fmt.Errorf("last_used_at must be an RFC3339 time")
	}
	u.LastUsedAt = t
	if v, ok := m["counted_since"]; ok {
		s, _ := v.(string)
		if u.CountedSince, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return u, fmt.Errorf("counted_since must be an RFC3339 time")
		}
	}
	u.SourceIP, _ = m["source_ip"].(string)
	if u.SourceIP != "" {
		if _, err := netip.ParseAddr(u.SourceIP); err != nil {
			return u, fmt.Errorf("source_ip must be an IP address")
		}
	}
	u.Ticket, _ = m["ticket"].(string)
	switch {
	case u.Ticket == "":
		return u, fmt.Errorf("ticket is required: the usage_ticket of a VALID verify answer for this key_id")
	case len(u.Ticket) > maxTicketLen:
		return u, fmt.Errorf("ticket must be at most %d characters", maxTicketLen)
	}
	return u, nil
}
