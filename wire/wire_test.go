package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// roundTrip is what a client that decodes the JSON of v sees.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDataMatchesJSON(t *testing.T) {
	full := &VerifyResponse{Valid: true, Code: CodeValid, VerifiedKey: &VerifiedKey{
		KeyID: "AbCdEfGhIjKl", Name: "bot", Role: "r", Environment: "prod", Scopes: []string{"read"},
		KeyType: "bearer", ExpiresAt: "2030-01-01T00:00:00Z", Labels: map[string]string{"a": "b"},
		AllowedCIDRs: []string{"10.0.0.0/8"}, RateLimit: 2.5, RateBurst: 3,
	}, UsageTicket: "t", RetryAfterMs: 7}
	cases := map[string]struct{ data, typed any }{
		"verify, every field":   {full.Data(), full},
		"verify, not found":     {(&VerifyResponse{Code: CodeNotFound, Message: "m"}).Data(), &VerifyResponse{Code: CodeNotFound, Message: "m"}},
		"verify request":        {VerifyRequest{APIKey: "k", Scopes: []string{"a"}, SourceIP: "1.2.3.4", Body: "{}"}.Data(), VerifyRequest{APIKey: "k", Scopes: []string{"a"}, SourceIP: "1.2.3.4", Body: "{}"}},
		"feed":                  {(&FeedReply{Events: []FeedEvent{{Seq: 1, KeyID: "k", Kind: KindRevoked, At: "x"}}, Cursor: "c.1"}).Data(), &FeedReply{Events: []FeedEvent{{Seq: 1, KeyID: "k", Kind: KindRevoked, At: "x"}}, Cursor: "c.1"}},
		"feed, blocking engine": {(&FeedReply{Events: []FeedEvent{{Seq: 2, Kind: KindRevokedRole, Role: "r", RevokedBefore: "y"}}, Cursor: "c.2", Reset: true, WaitMax: 60}).Data(), &FeedReply{Events: []FeedEvent{{Seq: 2, Kind: KindRevokedRole, Role: "r", RevokedBefore: "y"}}, Cursor: "c.2", Reset: true, WaitMax: 60}},
		"usage request":         {UsageRequest{Reports: []UsageReport{{KeyID: "k", Count: 2, LastUsedAt: "x", Ticket: "t"}}}.Data(), UsageRequest{Reports: []UsageReport{{KeyID: "k", Count: 2, LastUsedAt: "x", Ticket: "t"}}}},
		"usage reply":           {UsageReply{Accepted: 1, Rejected: 2}.Data(), UsageReply{Accepted: 1, Rejected: 2}},
		"leaked reply":          {(&LeakedReply{Revoked: []string{"k"}, RevokedCount: 1, UnknownCount: 2, AlreadyRevoked: 3, BadChecksum: 4}).Data(), &LeakedReply{Revoked: []string{"k"}, RevokedCount: 1, UnknownCount: 2, AlreadyRevoked: 3, BadChecksum: 4}},
		"verify, key, no lists": {(&VerifyResponse{Code: CodeRevoked, VerifiedKey: &VerifiedKey{KeyID: "x"}}).Data(), &VerifyResponse{Code: CodeRevoked, VerifiedKey: &VerifiedKey{KeyID: "x", Scopes: []string{}, Labels: map[string]string{}, AllowedCIDRs: []string{}}}},
	}
	for name, c := range cases {
		if got, want := roundTrip(t, c.data), roundTrip(t, c.typed); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Data() encodes\n%v\nbut the struct's JSON is\n%v", name, got, want)
		}
	}
}

func TestDecode(t *testing.T) {
	// As an api.Secret holds it: numbers as json.Number.
	data := map[string]any{"valid": true, "code": "VALID", "message": "", "key_id": "AbCdEfGhIjKl",
		"scopes": []any{"read"}, "labels": map[string]any{"a": "b"}, "rate_limit": json.Number("2.5"),
		"rate_burst": json.Number("3"), "usage_ticket": "t"}
	r, err := Decode[VerifyResponse](data)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Valid || r.VerifiedKey == nil || r.KeyID != "AbCdEfGhIjKl" || r.RateLimit != 2.5 || r.RateBurst != 3 || r.Labels["a"] != "b" || r.UsageTicket != "t" {
		t.Fatalf("decoded %+v %+v", r, r.VerifiedKey)
	}
	nf, err := Decode[VerifyResponse](map[string]any{"valid": false, "code": "NOT_FOUND", "message": "m"})
	if err != nil || nf.VerifiedKey != nil {
		t.Fatalf("a reply without a key decodes with VerifiedKey %+v (%v)", nf.VerifiedKey, err)
	}
}

func TestQueryLeavesTheKeyOut(t *testing.T) {
	q := VerifyRequest{APIKey: "secret", Scopes: []string{"a", "b"}, Environment: "prod"}.Query()
	if q.Has(FieldAPIKey) || q.Get(FieldScopes) != "a,b" || q.Get(FieldEnvironment) != "prod" || len(q) != 2 {
		t.Fatalf("query %v", q)
	}
}

// The signing vectors of docs (the same as the engine's signing_test.go).
func TestSigning(t *testing.T) {
	msg := Message("1700000000000", "post", "/api/v3/order?symbol=BTCUSDT", `{"qty":"0.01"}`)
	if string(msg) != `1700000000000POST/api/v3/order?symbol=BTCUSDT{"qty":"0.01"}` {
		t.Fatalf("message %q", msg)
	}
	sig := SignHMAC("s3cret", msg)
	if !CheckHMAC([]byte("s3cret"), msg, sig) || CheckHMAC([]byte("other"), msg, sig) || CheckHMAC([]byte("s3cret"), msg, sig[:10]) {
		t.Fatal("hmac sign/check disagree")
	}
	if strings.ToLower(sig) != sig || len(sig) != 64 {
		t.Fatalf("hmac signature %q is not lowercase hex", sig)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	es := SignEd25519(priv, msg)
	if !CheckEd25519(pub, msg, es) || CheckEd25519(pub, append(msg, ' '), es) || CheckEd25519(nil, msg, es) || CheckEd25519(pub, msg, "not base64!") {
		t.Fatal("ed25519 sign/check disagree")
	}
}

func TestRules(t *testing.T) {
	for s, want := range map[string]bool{"prod-trader": true, "a": true, "a.b_c": true, "-a": false, "a-": false, "": false, strings.Repeat("a", 65): false} {
		if ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"read": true, "md:read.v2_x-y": true, "Read": false, "1read": false, strings.Repeat("a", 65): false} {
		if ValidScope(s) != want {
			t.Errorf("ValidScope(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"team": true, "k8s.io/app": true, "bad key": false, "": false, strings.Repeat("k", 65): false} {
		if ValidLabelKey(s) != want {
			t.Errorf("ValidLabelKey(%q) = %v", s, !want)
		}
	}
	if !ValidKeyName("bot 1") || ValidKeyName("a\x1b[31m") || ValidKeyName(strings.Repeat("n", MaxKeyNameLen+1)) {
		t.Error("ValidKeyName")
	}
	if !ValidEnvironment("prod") || ValidEnvironment("Prod") || !ValidPrefix("ck") || ValidPrefix("c") {
		t.Error("environment/prefix rules")
	}
}

// TestWireLiteralsLiveHere: the verify codes, the header name and the JSON
// names only the verify wire uses are spelled, as string literals, in this
// package alone among the module's non-test Go files (struct tags aside).
// Everyone else names them through this package's constants.
func TestWireLiteralsLiveHere(t *testing.T) {
	guarded := append(slices.Clone(Codes), CodeUnavailable, VerifyHeader, "usage_ticket", "retry_after_ms")
	root := filepath.Join("..")
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "tools", "bin", "node_modules", "testdata", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if filepath.Dir(path) == filepath.Join(root, "wire") {
			return nil // this package
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if fl, ok := n.(*ast.Field); ok && fl.Tag != nil {
				return false // a struct tag, and a field's type, spell no wire string
			}
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && slices.Contains(guarded, s) {
				found = append(found, fset.Position(lit.Pos()).String()+": "+lit.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("wire strings spelled outside package wire (use its constants):\n%s", strings.Join(found, "\n"))
	}
}

func TestSourceAllowed(t *testing.T) {
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "2001:db8::1": true,
		"192.0.2.1": false, "": false, "not-an-ip": false, "2001:db9::1": false,
	} {
		if got := SourceAllowed(ip, cidrs); got != want {
			t.Errorf("SourceAllowed(%q) = %v, want %v", ip, got, want)
		}
	}
}
