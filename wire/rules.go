package wire

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Limits on what a request may hold. The engine enforces them; the
// provider checks the same at plan time.
const (
	MaxNameLen        = 64   // role and mount names
	MaxKeyNameLen     = 128  // a key's name label (creds name)
	MaxScopes         = 64   // scopes in one list (a role's, a key's, a verify's, the catalog)
	MaxEnvironments   = 64   // environments in the mount's allowed list
	MaxCIDRs          = 64   // CIDR blocks in one list
	MaxLabels         = 32   // labels of a role or key
	MaxLabelKeyLen    = 64   // length of a label's key
	MaxLabelValueLen  = 512  // length of a label's value
	MaxDescriptionLen = 1024 // a role's description
)

// Rules, as the messages that name them: each follows the field's name.
const (
	NameRule        = "must be letters, digits, '_', '-' or '.', starting and ending with a letter or digit"
	PrefixRule      = "must match [a-z][a-z0-9]{1,7}"
	EnvironmentRule = "must match [a-z][a-z0-9]{0,15}"
	ScopeRule       = "must match [a-z][a-z0-9_.:-]{0,63}"
	LabelKeyRule    = "must be 1-64 characters of letters, digits, '_', '.', ':', '/', '-'"
	ControlRule     = "must not contain control characters"
	KeyIDRule       = "must be 12 base62 characters"
)

var (
	// nameRE is the body of Vault's framework.GenericNameRegex, anchored,
	// so that a bad name gets a message that says why instead of an
	// "unsupported path".
	nameRE     = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)
	scopeRE    = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,63}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
)

// ValidName reports whether s may name a role: NameRule, 1-64 characters.
func ValidName(s string) bool { return s != "" && len(s) <= MaxNameLen && nameRE.MatchString(s) }

// ValidPrefix reports whether p may be a key prefix (PrefixRule).
func ValidPrefix(p string) bool { return keyformat.ValidPrefix(p) }

// ValidEnvironment reports whether e may be an environment (EnvironmentRule).
func ValidEnvironment(e string) bool { return keyformat.ValidEnvironment(e) }

// ValidScope reports whether s may be a scope (ScopeRule).
func ValidScope(s string) bool { return scopeRE.MatchString(s) }

// ValidLabelKey reports whether k may be a label's key (LabelKeyRule).
func ValidLabelKey(k string) bool {
	return k != "" && len(k) <= MaxLabelKeyLen && labelKeyRE.MatchString(k)
}

// ValidKeyName reports whether s may be a key's name: at most
// MaxKeyNameLen printable characters.
func ValidKeyName(s string) bool { return len(s) <= MaxKeyNameLen && !HasControl(s) }

// HasControl reports whether s holds a control character (C0 or DEL).
func HasControl(s string) bool { return strings.ContainsFunc(s, IsControl) }

// IsControl reports whether r is a C0 control character or DEL.
func IsControl(r rune) bool { return r < 0x20 || r == 0x7f }

// SourceAllowed reports whether sourceIP lies in one of a key's
// allowed_cidrs (an IPv4-mapped IPv6 address counts as its IPv4 form). A
// missing or unparsable address is not allowed. The engine's verify and
// the local verifier decide IP_NOT_ALLOWED with it.
func SourceAllowed(sourceIP string, cidrs []netip.Prefix) bool {
	a, err := netip.ParseAddr(sourceIP)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range cidrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
