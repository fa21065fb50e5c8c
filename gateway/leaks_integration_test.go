package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/leakforms"
	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// ghKeys plays api.github.com/meta/public_keys/secret_scanning: a
// public-keys document for ECDSA P-256 keys the test generates.
type ghKeys struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey // key_identifier -> key
	order   []string
	fetches int
}

func newGHKeys(t *testing.T) *ghKeys {
	t.Helper()
	gk := &ghKeys{keys: map[string]*ecdsa.PrivateKey{}}
	gk.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gk.mu.Lock()
		defer gk.mu.Unlock()
		gk.fetches++
		type pk struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		}
		doc := struct {
			PublicKeys []pk `json:"public_keys"`
		}{}
		for i, id := range gk.order {
			der, err := x509.MarshalPKIXPublicKey(&gk.keys[id].PublicKey)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			doc.PublicKeys = append(doc.PublicKeys, pk{id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), i == len(gk.order)-1})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(gk.Close)
	return gk
}

// add generates a key, lists it in the document and returns its
// identifier (as GitHub's: hex of a SHA-256).
func (gk *ghKeys) add(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	sum := sha256.Sum256(der)
	id := hex.EncodeToString(sum[:])
	gk.mu.Lock()
	defer gk.mu.Unlock()
	gk.keys[id] = k
	gk.order = append(gk.order, id)
	return id
}

func (gk *ghKeys) fetchCount() int {
	gk.mu.Lock()
	defer gk.mu.Unlock()
	return gk.fetches
}

// signWith signs body as GitHub does: base64 of the ASN.1 DER ECDSA
// signature over SHA-256 of the raw body.
func signWith(t *testing.T, k *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	d := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func (gk *ghKeys) sign(t *testing.T, id string, body []byte) string {
	t.Helper()
	gk.mu.Lock()
	k := gk.keys[id]
	gk.mu.Unlock()
	return signWith(t, k, body)
}

// leaksToken is a token with the shipped gateway policy and the shipped
// leaks policy (examples/gateway/leaks-policy.hcl) for this mount.
func (e *engine) leaksToken(t *testing.T) string {
	t.Helper()
	pol := "gw-leaks-" + e.mount
	if err := e.srv.Client.Sys().PutPolicy(pol, example(t, "leaks-policy.hcl", `"cryptokeys/`, `"`+e.mount+`/`)); err != nil {
		t.Fatal(err)
	}
	e.token(t) // writes gw-<mount>
	out := e.srv.MustCLI(t, "token", "create", "-policy=gw-"+e.mount, "-policy="+pol, "-field=token")
	return strings.TrimSpace(out)
}

// code is what the engine's verify answers for key.
func (e *engine) code(t *testing.T, key string) string {
	t.Helper()
	s, err := e.srv.Client.Logical().Write(e.mount+"/verify", map[string]any{"api_key": key})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	c, _ := s.Data["code"].(string)
	return c
}

func (e *engine) keyField(t *testing.T, id, field string) string {
	t.Helper()
	s, err := e.srv.Client.Logical().Read(e.mount + "/keys/" + id)
	if err != nil || s == nil {
		t.Fatalf("keys/%s: %v", id, err)
	}
	v, _ := s.Data[field].(string)
	return v
}

func leaksConfig(gk *ghKeys, extra string) string {
	u := ""
	if gk != nil {
		u = fmt.Sprintf("  github = true\n  github_public_keys_url = %q\n", gk.URL)
	}
	return "\nleaks {\n" + u + extra + "}\n"
}

func postAlert(t *testing.T, gw *runningGateway, keyID, sig string, body []byte) (int, string) {
	t.Helper()
	hdr := map[string]string{"Content-Type": "application/json"}
	if keyID != "" {
		hdr[HeaderGitHubKeyID] = keyID
	}
	if sig != "" {
		hdr[HeaderGitHubSignature] = sig
	}
	st, _, b := do(t, "POST", gw.url+"/leaks/github", hdr, string(body))
	return st, b
}

func hashOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// labelsOf reads GitHub's feedback format into token hash -> label, and
// checks that no raw token came back.
func labelsOf(t *testing.T, body string) map[string]string {
	t.Helper()
	var fb []map[string]string
	if err := json.Unmarshal([]byte(body), &fb); err != nil {
		t.Fatalf("answer is not a JSON array: %v: %s", err, body)
	}
	out := map[string]string{}
	for _, f := range fb {
		if f["token_raw"] != "" {
			t.Errorf("answer holds a raw token: %v", f)
		}
		if f["token_type"] != "cryptokeys_api_key" {
			t.Errorf("token_type %q", f["token_type"])
		}
		if f["label"] != LabelTruePositive && f["label"] != LabelFalsePositive {
			t.Errorf("label %q", f["label"])
		}
		out[f["token_hash"]] = f["label"]
	}
	return out
}

func alertBody(t *testing.T, matches ...githubMatch) []byte {
	t.Helper()
	b, err := json.Marshal(matches)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lookAlike(t *testing.T) string {
	t.Helper()
	k, err := keyformat.Generate("ck", "dev")
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(k.Raw())
	if raw[len(raw)-1] == 'a' {
		raw[len(raw)-1] = 'b'
	} else {
		raw[len(raw)-1] = 'a'
	}
	return string(raw)
}

func wellFormed(t *testing.T, prefix string) string {
	t.Helper()
	k, err := keyformat.Generate(prefix, "dev")
	if err != nil {
		t.Fatal(err)
	}
	return k.Raw()
}

const commitURL = "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt"

func TestLeaks_GitHubRevokesAndLabels(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gk := newGHKeys(t)
	kid := gk.add(t)
	gw := startGateway(t, e, e.leaksToken(t), leaksConfig(gk, ""))

	live1, live2, bystander := e.issue(t, "dev-reader"), e.issue(t, "prod-reader"), e.issue(t, "dev-reader")
	glued := e.issue(t, "dev-reader")
	old := e.issue(t, "dev-trader")
	e.revoke(t, old.id)
	unknown, bad, other := wellFormed(t, "ck"), lookAlike(t), wellFormed(t, "zz")
	const typ = "cryptokeys_api_key"
	body := alertBody(t,
		githubMatch{live1.key, typ, commitURL, "content"},
		githubMatch{live2.key, typ, "https://gist.github.com/octocat/aa5a315d61ae9438b18d", "gist_content"},
		githubMatch{old.key, typ, commitURL, "commit"},
		githubMatch{unknown, typ, commitURL, "content"},
		githubMatch{bad, typ, commitURL, "content"},
		githubMatch{other, typ, commitURL, "content"},
		githubMatch{live1.key, typ, "https://github.com/octocat/Hello-World/issues/1", "issue_comment"}, // found twice
		// A match that took in the n of a JSON \n before the key.
		githubMatch{"n" + glued.key, typ, commitURL, "content"},
	)
	st, ans := postAlert(t, gw, kid, gk.sign(t, kid, body), body)
	if st != 200 {
		t.Fatalf("signed alert: %d %s", st, ans)
	}
	for _, k := range []string{live1.key, live2.key, old.key, unknown, bad, other} {
		if strings.Contains(ans, k) {
			t.Fatal("the answer holds a raw token")
		}
	}
	got := labelsOf(t, ans)
	want := map[string]string{
		hashOf(live1.key):       LabelTruePositive,
		hashOf(live2.key):       LabelTruePositive,
		hashOf(old.key):         LabelTruePositive, // already revoked, but real
		hashOf(unknown):         LabelFalsePositive,
		hashOf(bad):             LabelFalsePositive,
		hashOf("n" + glued.key): LabelTruePositive,
		// other: another mount's prefix, not labelled
	}
	if len(got) != len(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	for h, l := range want {
		if got[h] != l {
			t.Errorf("label of %s…: %q, want %q", h[:8], got[h], l)
		}
	}
	if _, ok := got[hashOf(other)]; ok {
		t.Error("a key of another prefix was labelled")
	}

	for _, k := range []issued{live1, live2, glued} {
		if c := e.code(t, k.key); c != "REVOKED" {
			t.Errorf("%s after the alert: %s", k.id, c)
		}
	}
	if c := e.code(t, bystander.key); c != "VALID" {
		t.Errorf("a key not in the alert: %s", c)
	}
	r1 := e.keyField(t, live1.id, "revoke_reason")
	if want := "leaked: found by GitHub secret scanning in content at https://github.com/octocat/Hello-World/blob/12345600b9cb…/foo/bar.txt"; r1 != want {
		// the commit SHA is cut to 12 characters: the engine would redact a
		// run of 24 or more
		t.Errorf("reason %q, want %q", r1, want)
	}
	if r2 := e.keyField(t, live2.id, "revoke_reason"); r2 != "leaked: found by GitHub secret scanning in gist_content at https://gist.github.com/octocat/aa5a315d61ae9438b18d" {
		t.Errorf("reason %q", r2)
	}
	if r := e.keyField(t, old.id, "revoke_reason"); strings.Contains(r, "GitHub") {
		t.Errorf("an already revoked key got a new reason: %q", r)
	}

	// GitHub sends the same alert again (a retry): the same labels, and
	// nothing changes.
	st, ans2 := postAlert(t, gw, kid, gk.sign(t, kid, body), body)
	if got2 := labelsOf(t, ans2); st != 200 || fmt.Sprint(got2) != fmt.Sprint(got) {
		t.Errorf("retry: %d %v, want %v", st, got2, got)
	}
	if n := gk.fetchCount(); n != 1 {
		t.Errorf("public keys fetched %d times, want once (cached)", n)
	}
}

func TestLeaks_GitHubRefuses(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gk := newGHKeys(t)
	kid := gk.add(t)
	gw := startGatewayOpts(t, e, e.leaksToken(t), leaksConfig(gk, ""), Options{GitHubKeysRefetch: time.Hour})
	k1, k2 := e.issue(t, "dev-reader"), e.issue(t, "dev-reader")
	body := alertBody(t, githubMatch{k1.key, "cryptokeys_api_key", commitURL, "content"}, githubMatch{k2.key, "cryptokeys_api_key", commitURL, "content"})
	good := gk.sign(t, kid, body)
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	changed := []byte(strings.Replace(string(body), `"content"`, `"commit"`, 1))
	big := make([]byte, 4<<20+1) // the documented bound, 4 MiB, and one byte
	copy(big, body)
	for i := len(body); i < len(big); i++ {
		big[i] = ' ' // JSON whitespace: a valid alert, just too large
	}
	for _, tc := range []struct {
		name     string
		kid, sig string
		body     []byte
		status   int
		code     string
	}{
		{"no headers", "", "", body, 401, "UNSIGNED"},
		{"no signature", kid, "", body, 401, "UNSIGNED"},
		{"signed by another key", kid, signWith(t, stranger, body), body, 401, "BAD_SIGNATURE"},
		{"signature not base64", kid, "not base64!", body, 401, "BAD_SIGNATURE"},
		{"signature of nothing", kid, base64.StdEncoding.EncodeToString([]byte{0x30, 0}), body, 401, "BAD_SIGNATURE"},
		{"changed body", kid, good, changed, 401, "BAD_SIGNATURE"},
		{"unknown key identifier", strings.Repeat("ab", 32), good, body, 401, "UNKNOWN_KEY_IDENTIFIER"},
		{"oversized body", kid, gk.sign(t, kid, big), big, 413, "BODY_TOO_LARGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ans := postAlert(t, gw, tc.kid, tc.sig, tc.body)
			if st != tc.status || !strings.Contains(ans, tc.code) {
				t.Errorf("%d %s, want %d %s", st, ans, tc.status, tc.code)
			}
		})
	}
	for _, k := range []issued{k1, k2} {
		if c := e.code(t, k.key); c != "VALID" {
			t.Errorf("%s after refused alerts: %s, want VALID", k.id, c)
		}
	}
	// The first alert fetched the document; an unknown identifier fetches
	// it again only once GitHubKeysRefetch (here an hour) has passed since
	// the last fetch, so a flood of made-up ones costs nothing.
	for i := 0; i < 5; i++ {
		postAlert(t, gw, fmt.Sprintf("%064d", i), good, body)
	}
	if n := gk.fetchCount(); n != 1 {
		t.Errorf("public keys fetched %d times, want once", n)
	}
	// The genuine alert still goes through.
	if st, ans := postAlert(t, gw, kid, good, body); st != 200 || len(labelsOf(t, ans)) != 2 {
		t.Fatalf("genuine alert: %d %s", st, ans)
	}
	if c := e.code(t, k1.key); c != "REVOKED" {
		t.Errorf("after the genuine alert: %s", c)
	}
}

// GitHub rotates its signing key: an alert under an identifier the cached
// document does not hold fetches it again, once.
func TestLeaks_GitHubKeyRotation(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gk := newGHKeys(t)
	kid1 := gk.add(t)
	gw := startGatewayOpts(t, e, e.leaksToken(t), leaksConfig(gk, ""), Options{GitHubKeysRefetch: 100 * time.Millisecond})
	k1, k2 := e.issue(t, "dev-reader"), e.issue(t, "dev-reader")
	b1 := alertBody(t, githubMatch{k1.key, "cryptokeys_api_key", commitURL, "content"})
	if st, ans := postAlert(t, gw, kid1, gk.sign(t, kid1, b1), b1); st != 200 {
		t.Fatalf("%d %s", st, ans)
	}
	kid2 := gk.add(t)
	time.Sleep(150 * time.Millisecond)
	b2 := alertBody(t, githubMatch{k2.key, "cryptokeys_api_key", commitURL, "content"})
	if st, ans := postAlert(t, gw, kid2, gk.sign(t, kid2, b2), b2); st != 200 || labelsOf(t, ans)[hashOf(k2.key)] != LabelTruePositive {
		t.Fatalf("alert under the new key: %d %s", st, ans)
	}
	if n := gk.fetchCount(); n != 2 {
		t.Errorf("fetched %d times, want 2", n)
	}
	// An identifier the document does not hold: fetched once more, still
	// unknown, refused; a flood right after fetches nothing.
	time.Sleep(150 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if st, ans := postAlert(t, gw, fmt.Sprintf("%064d", i), gk.sign(t, kid2, b2), b2); st != 401 || !strings.Contains(ans, "UNKNOWN_KEY_IDENTIFIER") {
			t.Errorf("unknown identifier: %d %s", st, ans)
		}
	}
	if n := gk.fetchCount(); n != 3 {
		t.Errorf("fetched %d times, want 3", n)
	}
	if c := e.code(t, k2.key); c != "REVOKED" {
		t.Errorf("%s", c)
	}
}

// A batch of 1,000 tokens, each found at its own URL (so each needs its
// own reason: the worst case, one revoke/leaked call each), is answered
// well within GitHub's time limit, every token labelled.
func TestLeaks_GitHubBatch1000(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gk := newGHKeys(t)
	kid := gk.add(t)
	gw := startGateway(t, e, e.leaksToken(t), leaksConfig(gk, ""))
	const n, nLive = 1000, 50
	var live []issued
	for i := 0; i < nLive; i++ {
		live = append(live, e.issue(t, "dev-reader"))
	}
	for _, sameURL := range []bool{false, true} {
		var matches []githubMatch
		want := map[string]string{}
		for i := 0; i < n; i++ {
			tok := wellFormed(t, "ck")
			label := LabelFalsePositive
			if !sameURL && i < nLive {
				tok, label = live[i].key, LabelTruePositive
			}
			u := commitURL
			if !sameURL {
				u = fmt.Sprintf("https://github.com/octocat/repo-%d/blob/main/config.yml", i)
			}
			matches = append(matches, githubMatch{tok, "cryptokeys_api_key", u, "content"})
			want[hashOf(tok)] = label
		}
		body := alertBody(t, matches...)
		start := time.Now()
		st, ans := postAlert(t, gw, kid, gk.sign(t, kid, body), body)
		took := time.Since(start)
		t.Logf("1,000-token alert (distinct URLs: %v, %d KiB): answered in %s", !sameURL, len(body)>>10, took.Round(time.Millisecond))
		if st != 200 {
			t.Fatalf("%d %s", st, ans)
		}
		got := labelsOf(t, ans)
		if len(got) != n {
			t.Fatalf("%d labels, want %d", len(got), n)
		}
		for h, l := range want {
			if got[h] != l {
				t.Fatalf("label %q, want %q", got[h], l)
			}
		}
		if took > githubReplyWithin {
			t.Errorf("answered in %s, over the gateway's own bound %s", took, githubReplyWithin)
		}
	}
	for i, k := range live {
		if c := e.code(t, k.key); c != "REVOKED" {
			t.Fatalf("live key %d: %s", i, c)
		}
	}
	if r := e.keyField(t, live[7].id, "revoke_reason"); !strings.HasSuffix(r, "repo-7/blob/main/config.yml") {
		t.Errorf("reason %q", r)
	}
}

func postReport(t *testing.T, gw *runningGateway, hdr map[string]string, text string) (int, string) {
	t.Helper()
	st, _, b := do(t, "POST", gw.url+"/leaks/report", hdr, text)
	return st, b
}

func TestLeaks_Report(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.leaksToken(t), leaksConfig(nil, "  report = true\n"))
	live1, live2, bystander := e.issue(t, "dev-reader"), e.issue(t, "prod-reader"), e.issue(t, "dev-reader")
	old := e.issue(t, "dev-reader")
	e.revoke(t, old.id)
	oldReason := e.keyField(t, old.id, "revoke_reason")
	// Look-alikes: a bad checksum, another prefix, a bare key_id, a key
	// cut short.
	looks := func() string {
		return fmt.Sprintf("checksum off: %s\nother service: %s\nkey_id only: %s\ncut: %s\n",
			lookAlike(t), wellFormed(t, "zz"), bystander.id, bystander.key[:len(bystander.key)-1])
	}
	text := fmt.Sprintf("# .env committed by mistake\nAPI_KEY=%s\nexport TRADER_KEY=\"%s\"\nold=%s\n%s", live1.key, live2.key, old.key, looks())
	st, ans := postReport(t, gw, nil, text)
	if st != 202 {
		t.Fatalf("report: %d %s", st, ans)
	}
	var a reportAnswer
	if err := json.Unmarshal([]byte(ans), &a); err != nil || a.Keys != 3 || a.LookAlikes != 1 || a.OtherPrefix != 1 {
		t.Fatalf("answer %s (%v)", ans, err)
	}
	waitFor(t, 10*time.Second, "the reported keys revoked", func() bool {
		return e.code(t, live1.key) == "REVOKED" && e.code(t, live2.key) == "REVOKED"
	})
	for _, k := range []issued{live1, live2} {
		if r := e.keyField(t, k.id, "revoke_reason"); r != ReportReason {
			t.Errorf("%s: reason %q, want %q", k.id, r, ReportReason)
		}
	}
	if c := e.code(t, bystander.key); c != "VALID" {
		t.Errorf("a key only hinted at (key_id, cut short) was touched: %s", c)
	}
	if r := e.keyField(t, old.id, "revoke_reason"); r != oldReason {
		t.Errorf("the revoked key's reason changed: %q", r)
	}

	// A text with no live key and as many well-formed keys and look-alikes
	// gets the very same answer, byte for byte; so does the same report
	// again (its keys are revoked now).
	none := fmt.Sprintf("API_KEY=%s\nexport TRADER_KEY=\"%s\"\nold=%s\n%s", wellFormed(t, "ck"), wellFormed(t, "ck"), old.key, looks())
	for name, txt := range map[string]string{"no live key": none, "again": text} {
		if st2, ans2 := postReport(t, gw, nil, txt); st2 != st || ans2 != ans {
			t.Errorf("%s: %d %q, want %d %q", name, st2, ans2, st, ans)
		}
	}
	if c := e.code(t, bystander.key); c != "VALID" {
		t.Errorf("bystander: %s", c)
	}

	// Bounds: a body too large, too many keys.
	if st, ans := postReport(t, gw, nil, strings.Repeat("x", 64<<10+1)); st != 413 {
		t.Errorf("oversized: %d %s", st, ans)
	}
	var many []string
	for i := 0; i < 101; i++ { // the documented bound is 100
		many = append(many, wellFormed(t, "ck"))
	}
	if st, ans := postReport(t, gw, nil, strings.Join(many, "\n")+"\n"+bystander.key); st != 413 || !strings.Contains(ans, "TOO_MANY_KEYS") {
		t.Errorf("too many keys: %d %s", st, ans)
	}
	time.Sleep(200 * time.Millisecond)
	if c := e.code(t, bystander.key); c != "VALID" {
		t.Errorf("a refused report revoked a key: %s", c)
	}
	if st, _, _ := get(t, gw.url+"/leaks/report", nil); st != 405 {
		t.Errorf("GET: %d", st)
	}
}

func TestLeaks_ReportRateLimited(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.leaksToken(t), leaksConfig(nil, "  report = true\n  report_per_minute = 5\n"))
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} } // 127.0.0.1 is a trusted proxy
	text := "nothing here"
	for i := 0; i < 5; i++ {
		if st, ans := postReport(t, gw, from("203.0.113.7"), text); st != 202 {
			t.Fatalf("report %d: %d %s", i, st, ans)
		}
	}
	st, h, ans := do(t, "POST", gw.url+"/leaks/report", from("203.0.113.7"), text)
	if st != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("6th report in a minute: %d %s (Retry-After %q)", st, ans, h.Get("Retry-After"))
	}
	// A flood goes on being refused, and the limit is per source: another
	// address is still heard; an IPv6 host's neighbours in its /64 are the
	// same source.
	for i := 0; i < 20; i++ {
		if st, _ := postReport(t, gw, from("203.0.113.7"), text); st != 429 {
			t.Fatalf("flood %d: %d", i, st)
		}
	}
	if st, ans := postReport(t, gw, from("198.51.100.9"), text); st != 202 {
		t.Errorf("another source: %d %s", st, ans)
	}
	for i := 0; i < 5; i++ {
		postReport(t, gw, from(fmt.Sprintf("2001:db8:1:2::%x", i+1)), text)
	}
	if st, _ := postReport(t, gw, from("2001:db8:1:2:ffff::1"), text); st != 429 {
		t.Errorf("same IPv6 /64: %d, want 429", st)
	}
}

// The receivers are off unless configured, and a gateway whose token lacks
// revoke rights says so instead of pretending.
func TestLeaks_OptIn(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gk := newGHKeys(t)
	kid := gk.add(t)
	off := startGateway(t, e, e.token(t), "")
	for _, p := range []string{"/leaks/github", "/leaks/report"} {
		if st, _, _ := do(t, "POST", off.url+p, nil, "x"); st != 404 {
			t.Errorf("%s without a leaks block: %d, want 404", p, st)
		}
	}
	k := e.issue(t, "dev-reader")
	noRights := startGateway(t, e, e.token(t), leaksConfig(gk, ""))
	body := alertBody(t, githubMatch{k.key, "cryptokeys_api_key", commitURL, "content"})
	if st, ans := postAlert(t, noRights, kid, gk.sign(t, kid, body), body); st != 503 {
		t.Errorf("without leaks-policy.hcl: %d %s, want 503", st, ans)
	}
	if !strings.Contains(noRights.log.String(), "leaks-policy.hcl") {
		t.Errorf("the log does not say which policy is missing:\n%s", noRights.log.String())
	}
	if c := e.code(t, k.key); c != "VALID" {
		t.Errorf("%s", c)
	}
}

// A report finds keys in every escaped and encoded form of
// internal/leakforms (the table keyformat.Find, revoke/leaked and the
// scanner are tested with), and counts each glued look-alike once.
func TestLeaks_ReportLeakForms(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.leaksToken(t), leaksConfig(nil, "  report = true\n"))
	var text strings.Builder
	var keys []issued
	lookAlikes := 0
	for _, f := range leakforms.All {
		k := e.issue(t, "dev-reader")
		keys = append(keys, k)
		text.WriteString(f.Write(k.key) + "\n")
		if f.Glue {
			text.WriteString(f.Write(lookAlike(t)) + "\n")
			lookAlikes++
		}
	}
	st, ans := postReport(t, gw, nil, text.String())
	var a reportAnswer
	if err := json.Unmarshal([]byte(ans), &a); err != nil || st != 202 || a.Keys != len(keys) || a.LookAlikes != lookAlikes {
		t.Fatalf("%d %s (%v), want keys=%d look_alikes=%d", st, ans, err, len(keys), lookAlikes)
	}
	waitFor(t, 10*time.Second, "every reported key revoked", func() bool {
		for _, k := range keys {
			if e.code(t, k.key) != "REVOKED" {
				return false
			}
		}
		return true
	})
}
