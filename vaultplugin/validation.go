package vaultplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// maxReasonLen bounds a revocation's or resumption's reason. The other
// limits on user input are the contract's (wire.MaxNameLen ...): they keep
// storage entries and responses small and make hostile input fail early
// with a clear message, and the provider checks them at plan time.
const maxReasonLen = 512

// The engine's one convention for a 400: a callback returns
// respond(badField(field, rule...)) for a field that broke a rule, or
// respond(badRequest(...)) for a request refused as a whole, and respond
// turns it into logical.ErrorResponse (which Vault answers with 400). Any
// other error passes on as an error (a 500, or Vault's own status for a
// coded one).

// fieldError is a 400 that names the field and the rule it broke, or with
// no field, why the request was refused.
type fieldError struct {
	field, rule string
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.rule
	}
	return e.field + ": " + e.rule
}

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, rule: fmt.Sprintf(format, args...)}
}

// badRequest is a 400 about the request as a whole, not one field.
func badRequest(format string, args ...any) *fieldError {
	return &fieldError{rule: fmt.Sprintf(format, args...)}
}

// respond turns a fieldError into a 400 response and passes other errors on.
func respond(err error) (*logical.Response, error) {
	if fe := (*fieldError)(nil); errors.As(err, &fe) {
		return logical.ErrorResponse(fe.Error()), nil
	}
	return nil, err
}

// strict wraps a callback so that a request naming a field the path does not
// know is refused instead of silently ignored (Vault's default is a warning,
// which a typo like "max_tll" slips past).
func strict(cb framework.OperationFunc) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		var unknown []string
		for k := range d.Raw {
			if _, ok := d.Schema[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			known := make([]string, 0, len(d.Schema))
			for k := range d.Schema {
				known = append(known, k)
			}
			sort.Strings(known)
			return respond(badRequest("unknown field %s: this path accepts %s",
				quoteJoin(unknown), strings.Join(known, ", ")))
		}
		return cb(ctx, req, d)
	}
}

func quoteJoin(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func validateName(field, name string) error {
	switch {
	case name == "":
		return badField(field, "is required")
	case len(name) > wire.MaxNameLen:
		return badField(field, "must be at most %d characters", wire.MaxNameLen)
	case !wire.ValidName(name):
		return badField(field, wire.NameRule)
	}
	return nil
}

// validateScopes checks shape and, when the mount has a scope catalog,
// membership. It returns the scopes sorted and de-duplicated. An empty
// catalog allows any scope: that is what an empty config scopes means, so
// catalog is only ever the mount's. A role's scopes are a grant, where
// empty means none; narrowing against them is narrowScopes' job.
func validateScopes(field string, scopes, catalog []string) ([]string, error) {
	if len(scopes) > wire.MaxScopes {
		return nil, badField(field, "at most %d scopes", wire.MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !wire.ValidScope(s) {
			return nil, badField(field, "scope %q "+wire.ScopeRule, printable(s))
		}
		if len(catalog) > 0 && !slices.Contains(catalog, s) {
			return nil, badField(field, "scope %q is not in the mount's scope catalog (config scopes: %s)", s, strings.Join(catalog, ", "))
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

func validateCIDRs(field string, cidrs []string) ([]string, error) {
	if len(cidrs) > wire.MaxCIDRs {
		return nil, badField(field, "at most %d CIDR blocks", wire.MaxCIDRs)
	}
	out := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			// A bare address means that one host.
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, badField(field, "%q is not a CIDR block (like 10.0.0.0/8 or 2001:db8::/32)", printable(c))
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked().String())
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

func validateLabels(field string, labels map[string]string) error {
	if len(labels) > wire.MaxLabels {
		return badField(field, "at most %d entries", wire.MaxLabels)
	}
	for k, v := range labels {
		if !wire.ValidLabelKey(k) {
			return badField(field, "key %q "+wire.LabelKeyRule, printable(k))
		}
		if len(v) > wire.MaxLabelValueLen {
			return badField(field, "value of %q must be at most %d characters", k, wire.MaxLabelValueLen)
		}
		if wire.HasControl(v) {
			return badField(field, "value of %q "+wire.ControlRule, k)
		}
	}
	return nil
}

func validateEnvironment(field, env string, allowed []string) error {
	if env == "" {
		return badField(field, "is required")
	}
	if !wire.ValidEnvironment(env) {
		return badField(field, "%q "+wire.EnvironmentRule, printable(env))
	}
	if len(allowed) > 0 && !slices.Contains(allowed, env) {
		return badField(field, "%q is not an allowed environment of this mount (config environments: %s)", env, strings.Join(allowed, ", "))
	}
	return nil
}

// printable shortens and escapes user input echoed in a message, so a
// megabyte of garbage or a terminal escape never reaches a log verbatim,
// and removes what could be key material (a key put in the wrong field).
//
// Redaction comes before the cut: a cut through a key would leave a piece
// too short to be recognised, with part of its secret. Only a window of
// four times the limit is searched, so a megabyte costs no more than a
// short value; any run that reaches into the kept part is either whole in
// the window or longer than a key within it.
func printable(s string) string {
	const max = 64
	long := len(s) > max
	if len(s) > 4*max {
		s = s[:4*max]
	}
	s = redactSecrets(strings.Trim(fmt.Sprintf("%q", s), `"`))
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	if long {
		s += "…"
	}
	return s
}

// cidrsWithin checks that every block in narrow lies inside one of wide
// (when wide is empty, anything goes).
func cidrsWithin(field string, narrow, wide []string) error {
	if len(wide) == 0 {
		return nil
	}
	for _, n := range narrow {
		np := netip.MustParsePrefix(n)
		inside := false
		for _, w := range wide {
			wp := netip.MustParsePrefix(w)
			if wp.Bits() <= np.Bits() && wp.Contains(np.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			return badField(field, "%s is not inside the role's allowed_cidrs (%s)", n, strings.Join(wide, ", "))
		}
	}
	return nil
}

// reasonFrom reads a request's optional reason: trimmed and checked, with
// anything that could be key material removed, since a reason is stored
// with the key and shown on reads and in verify's REVOKED message (an
// operator may well paste the leaked key into it).
func reasonFrom(d *framework.FieldData) (string, error) {
	reason := strings.TrimSpace(d.Get("reason").(string))
	if err := validateReason(reason); err != nil {
		return "", err
	}
	return redactSecrets(reason), nil
}

func validateReason(reason string) error {
	if len(reason) > maxReasonLen {
		return badField("reason", "must be at most %d characters", maxReasonLen)
	}
	if wire.HasControl(reason) {
		return badField("reason", wire.ControlRule)
	}
	return nil
}
