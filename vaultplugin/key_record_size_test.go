package vaultplugin

import (
	"encoding/json"
	"testing"
	"time"
	"unsafe"
)

// The engine caches up to 200,000 records: a record is kept within Go's
// 640-byte size class (KeyNotes behind a pointer, pub an array pointer).
// A field added to keyRecord that takes it past 640 costs 128 bytes per
// cached key; move rarely set fields into KeyNotes instead.
func TestKeyRecord_fitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(keyRecord{}); n > 640 {
		t.Fatalf("keyRecord is %d bytes; at most 640 keeps a cached record in the 640-byte size class", n)
	}
}

// KeyNotes are stored inline, as the fields always were, and a record
// without any has no KeyNotes allocated after decoding.
func TestKeyRecord_notesStoredInline(t *testing.T) {
	r := &keyRecord{KeyID: "aaaaaaaaaaaa", Role: "r"}
	b, _ := json.Marshal(r)
	var back keyRecord
	if err := json.Unmarshal(b, &back); err != nil || back.KeyNotes != nil {
		t.Fatalf("a record without notes: %s decodes with notes %v (%v)", b, back.KeyNotes, err)
	}
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	r.editNotes(func(n *KeyNotes) { n.RevokeReason, n.ResumedAt = "leaked", at })
	b, _ = json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["revoke_reason"] != "leaked" || m["resumed_at"] != "2026-12-02T01:00:00Z" {
		t.Fatalf("notes not inline in the stored record: %s", b)
	}
	if err := json.Unmarshal(b, &back); err != nil || back.notes().RevokeReason != "leaked" || !back.notes().ResumedAt.Equal(at) {
		t.Fatalf("decoded %+v (%v)", back.notes(), err)
	}

	// A copy's edit leaves the original (a cached record) as it was.
	c := *r
	c.editNotes(func(n *KeyNotes) { n.RevokeReason = "other" })
	if r.notes().RevokeReason != "leaked" || c.notes().RevokeReason != "other" {
		t.Fatalf("editing a copy changed the original: %q / %q", r.notes().RevokeReason, c.notes().RevokeReason)
	}
}
