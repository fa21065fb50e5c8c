package wire

// LeakedReply is the answer of write <mount>/revoke/leaked: the key_ids it
// revoked and how many of the text's well-formed keys it did not (unknown
// to the mount, already ended, or a bad checksum). The engine encodes it,
// the scanner and the gateway's leak receivers decode it.
type LeakedReply struct {
	Revoked        []string `json:"revoked"`
	RevokedCount   int      `json:"revoked_count"`
	UnknownCount   int      `json:"unknown_count"`
	AlreadyRevoked int      `json:"already_revoked_count"`
	BadChecksum    int      `json:"bad_checksum_count"`
}

// Data is the reply as logical.Response data.
func (r *LeakedReply) Data() map[string]any {
	revoked := r.Revoked
	if revoked == nil {
		revoked = []string{}
	}
	return map[string]any{
		"revoked":               revoked,
		"revoked_count":         r.RevokedCount,
		"unknown_count":         r.UnknownCount,
		"already_revoked_count": r.AlreadyRevoked,
		"bad_checksum_count":    r.BadChecksum,
	}
}
