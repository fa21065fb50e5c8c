package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

const gitleaksConfig = "../../examples/gitleaks/gitleaks.toml"

// tomlValue returns the right-hand side of the first `key = ...` line in
// the section starting at the line equal to header. It knows only the few
// forms the gitleaks file uses: a one-line ”'literal”' or "string", or a
// one-line array of them.
func tomlValue(t *testing.T, doc, header, key string) []string {
	t.Helper()
	inSection := false
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inSection = line == header
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !inSection || !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		var out []string
		for _, m := range regexp.MustCompile(`'''(.*?)'''|"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(v, -1) {
			out = append(out, m[1]+m[2])
		}
		if len(out) == 0 {
			t.Fatalf("%s %s: cannot read value %q", header, key, v)
		}
		return out
	}
	t.Fatalf("%s has no %s", header, key)
	return nil
}

func TestGitleaksRule(t *testing.T) {
	b, err := os.ReadFile(gitleaksConfig)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if id := tomlValue(t, doc, "[[rules]]", "id"); id[0] != "cryptokeys-api-key" {
		t.Errorf("rule id = %q", id[0])
	}
	pattern := tomlValue(t, doc, "[[rules]]", "regex")[0]
	if pattern != keyformat.Pattern {
		t.Fatalf("gitleaks regex %q differs from keyformat.Pattern %q", pattern, keyformat.Pattern)
	}
	re := regexp.MustCompile(pattern) // gitleaks uses Go regexp syntax too
	keywords := tomlValue(t, doc, "[[rules]]", "keywords")
	allow := regexp.MustCompile(tomlValue(t, doc, "[rules.allowlist]", "regexes")[0])

	// Behaviour on text, not just string equality: the rule must match
	// exactly what keyformat.Find matches (gitleaks cannot check checksums,
	// so look-alikes count too), and nothing in the near-misses.
	var text strings.Builder
	var planted []keyformat.Key
	for i, env := range []string{"prod", "staging", "dev", "live", "test"} {
		k := genKey(t, "ck", env)
		planted = append(planted, k)
		text.WriteString([]string{"KEY=", `"key": "`, "Bearer ", "?key=", " "}[i] + k.Raw() + "\n")
	}
	text.WriteString("LOOK=" + lookalike(t, genKey(t, "ck", "prod")) + "\n")
	body := genKey(t, "ck", "prod").Raw()[len("ck_prod_"):]
	text.WriteString("CK_prod_" + body + "\nck_prod_" + body + "Z\nck_prod_" + body[1:] + "\n")

	var want [][]int
	for _, m := range keyformat.Find([]byte(text.String())) {
		// Look-alikes carry no Raw(); their length follows from the parts.
		n := len(m.Key.Prefix) + 1 + len(m.Key.Environment) + 1 + keyformat.BodyLen
		want = append(want, []int{m.Offset, m.Offset + n})
	}
	got := re.FindAllStringIndex(text.String(), -1)
	if len(want) != len(planted)+1 || !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Fatalf("gitleaks regex matched %v, keyformat.Find %v (want %d matches)", got, want, len(planted)+1)
	}

	for _, k := range planted {
		lower := strings.ToLower(k.Raw())
		if !slices.ContainsFunc(keywords, func(kw string) bool { return strings.Contains(lower, strings.ToLower(kw)) }) {
			t.Errorf("no keyword of %q occurs in a default-prefix key: gitleaks would skip it", keywords)
		}
		if allow.MatchString(k.Raw()) {
			t.Errorf("allowlist exempts a real key")
		}
	}
	vector := "ck_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh1xMzYh"
	if _, err := keyformat.Parse(vector); err != nil || !re.MatchString(vector) || !allow.MatchString(vector) {
		t.Errorf("the documented test vector should match the rule and its allowlist (parse: %v)", err)
	}
}
