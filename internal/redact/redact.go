// Package redact removes what could be key material from text people see:
// the engine's error messages and stored reasons, and the provider's
// diagnostics. Both want the same treatment of PEM blocks and the same
// replacement; what counts as a suspicious run of characters is theirs.
package redact

import "regexp"

// Replacement stands where key material was removed.
const Replacement = "<redacted>"

// pem matches a PEM block, or its start when the text was cut before the
// END line (an echoed value is shortened; its head must not survive).
const pem = `-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)`

// Rule removes PEM blocks and runs of characters that could be a key.
type Rule struct{ re *regexp.Regexp }

// Runs is the rule that removes PEM blocks and every match of run, a
// regular expression for a run of characters that could be a key or a
// secret (such as `[0-9A-Za-z]{24,}`).
func Runs(run string) Rule { return Rule{regexp.MustCompile(pem + "|" + run)} }

// Text returns s with what the rule matches replaced by Replacement.
func (r Rule) Text(s string) string { return r.re.ReplaceAllLiteralString(s, Replacement) }
