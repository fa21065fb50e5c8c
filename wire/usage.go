package wire

// UsageReport is one entry of a usage report (write <mount>/usage with
// {"reports": [...]}): what a local verifier counted from its cache for a
// key, with the usage ticket of the engine's last VALID answer for it.
type UsageReport struct {
	KeyID      string `json:"key_id"`
	Count      uint64 `json:"count"`
	LastUsedAt string `json:"last_used_at"` // RFC 3339
	SourceIP   string `json:"source_ip,omitempty"`
	// CountedSince is when the verifier began counting these uses (RFC
	// 3339; its previous report): the engine takes count over the time
	// since as the rate anomaly_rate is checked against.
	CountedSince string `json:"counted_since,omitempty"`
	Ticket       string `json:"ticket,omitempty"`
}

// UsageRequest is the body of a usage report.
type UsageRequest struct {
	Reports []UsageReport `json:"reports"`
}

// UsageReportFields are the names an entry may have; the engine refuses
// others.
var UsageReportFields = []string{"key_id", "count", "last_used_at", "source_ip", "counted_since", "ticket"}

// UsageReply is the engine's answer to a usage report.
type UsageReply struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
}

// Data is the reply as logical.Response data.
func (r UsageReply) Data() map[string]any {
	return map[string]any{"accepted": r.Accepted, "rejected": r.Rejected}
}

// Data is the request as the body of a usage write.
func (r UsageRequest) Data() map[string]any {
	reports := make([]map[string]any, 0, len(r.Reports))
	for _, u := range r.Reports {
		m := map[string]any{"key_id": u.KeyID, "count": u.Count, "last_used_at": u.LastUsedAt}
		if u.SourceIP != "" {
			m["source_ip"] = u.SourceIP
		}
		if u.CountedSince != "" {
			m["counted_since"] = u.CountedSince
		}
		if u.Ticket != "" {
			m["ticket"] = u.Ticket
		}
		reports = append(reports, m)
	}
	return map[string]any{"reports": reports}
}
