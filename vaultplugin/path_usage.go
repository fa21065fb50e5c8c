package vaultplugin

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	maxUsageReports = 10_000
	maxUsageCount   = 1 << 40
)

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
				Type:        framework.TypeSlice,
				Description: `Usage seen by a local verifier: a list of {"key_id", "count", "last_used_at" (RFC3339), "source_ip"}.`,
				Required:    true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathUsageReport),
				Summary:  "Add usage counted by a local verifier.",
			},
		},
		HelpSynopsis:    "Report usage counted outside the engine.",
		HelpDescription: "Local verifiers answer most requests from their cache; they report what they counted here in batches so keys/<key_id> shows true use_count, last_used_at and source addresses. Counts join the in-memory usage and are stored with the next flush.",
	}}
}

type usageReport struct {
	KeyID      string
	Count      uint64
	LastUsedAt string
	SourceIP   string
}

func (b *backend) pathUsageReport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
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
	// Validate everything first: a bad entry rejects the whole batch.
	for _, u := range parsed {
		last, _ := time.Parse(time.RFC3339Nano, u.LastUsedAt)
		b.usage.add(u.KeyID, u.Count, last, u.SourceIP)
	}
	return &logical.Response{Data: map[string]any{"accepted": len(parsed)}}, nil
}

func parseUsageReport(m map[string]any) (usageReport, error) {
	var u usageReport
	for k := range m {
		switch k {
		case "key_id", "count", "last_used_at", "source_ip":
		default:
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
	u.LastUsedAt, _ = m["last_used_at"].(string)
	if _, err := time.Parse(time.RFC3339Nano, u.LastUsedAt); err != nil {
		return u, fmt.Errorf("last_used_at must be an RFC3339 time")
	}
	u.SourceIP, _ = m["source_ip"].(string)
	if u.SourceIP != "" {
		if _, err := netip.ParseAddr(u.SourceIP); err != nil {
			return u, fmt.Errorf("source_ip must be an IP address")
		}
	}
	return u, nil
}
