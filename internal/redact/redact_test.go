package redact

import (
	"strings"
	"testing"
)

func TestRuns(t *testing.T) {
	r := Runs(`[0-9A-Za-z]{24,}`)
	const body = "MC4CAQAwBQYDK2VwBCIEIAbcdefghijklmnopqrstuvwxyz0123456789ab"
	for _, tc := range []struct{ in, want string }{
		{"role prod-trader is fine", "role prod-trader is fine"},
		{"key ck_prod_" + strings.Repeat("x", 50) + " leaked", "key ck_prod_" + Replacement + " leaked"},
		{"23 " + strings.Repeat("a", 23), "23 " + strings.Repeat("a", 23)},
		{"a -----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY----- b", "a " + Replacement + " b"},
		// A value cut before its END line: its head goes all the same.
		{"a -----BEGIN PRIVATE KEY-----\nMC4C+AQAw/BQYD", "a " + Replacement},
	} {
		if got := r.Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
