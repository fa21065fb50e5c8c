package wire

import (
	"net/url"
	"strings"
)

// Verify codes: the contract API gateways switch on. verify always answers
// 200 with one of them.
const (
	CodeValid               = "VALID"
	CodeMalformed           = "MALFORMED" // bad shape or checksum; no storage read
	CodeNotFound            = "NOT_FOUND"
	CodeRevoked             = "REVOKED"
	CodeExpired             = "EXPIRED"
	CodeEnvironmentMismatch = "ENVIRONMENT_MISMATCH"
	CodeInsufficientScope   = "INSUFFICIENT_SCOPE"
	CodeIPNotAllowed        = "IP_NOT_ALLOWED"
	CodeRateLimited         = "RATE_LIMITED" // with RetryAfterMs
	CodeBadSignature        = "BAD_SIGNATURE"
	CodeStaleTimestamp      = "STALE_TIMESTAMP"
	CodeSuspended           = "SUSPENDED"

	// CodeUnavailable is never sent by the engine: a local verifier (and
	// the gateway on it) answers it when the engine or its revocations
	// feed could not be reached for too long, and fails closed.
	CodeUnavailable = "UNAVAILABLE"
)

// Codes lists the engine's verify codes (not CodeUnavailable), in the order
// the docs list them.
var Codes = []string{
	CodeValid, CodeMalformed, CodeNotFound, CodeRevoked, CodeExpired,
	CodeEnvironmentMismatch, CodeInsufficientScope, CodeIPNotAllowed,
	CodeRateLimited, CodeBadSignature, CodeStaleTimestamp, CodeSuspended,
}

// VerifyHeader is the HTTP header that carries a key to the engine's verify
// read (GET <mount>/verify): a header, not the query string, because URLs
// are kept by proxies and access logs. The engine reads it, the provider's
// mounts pass it through, the local verifier sends it.
const VerifyHeader = "X-Cryptokeys-Api-Key"

// The verify request's field names, for the engine's schema.
const (
	FieldAPIKey      = "api_key"
	FieldScopes      = "scopes"
	FieldEnvironment = "environment"
	FieldSourceIP    = "source_ip"
	FieldSignature   = "signature"
	FieldTimestamp   = "timestamp"
	FieldMethod      = "method"
	FieldPath        = "path"
	FieldBody        = "body"
)

// VerifyRequest is what verify reads: the key, and what the request it
// guards needs. Signature, Timestamp, Method, Path and Body are for signed
// keys only (see Message).
type VerifyRequest struct {
	APIKey      string   `json:"api_key"`
	Scopes      []string `json:"scopes,omitempty"`
	Environment string   `json:"environment,omitempty"`
	SourceIP    string   `json:"source_ip,omitempty"`
	Signature   string   `json:"signature,omitempty"`
	Timestamp   string   `json:"timestamp,omitempty"`
	Method      string   `json:"method,omitempty"`
	Path        string   `json:"path,omitempty"`
	Body        string   `json:"body,omitempty"`
}

// Data is the body of a verify write: every field that is set.
func (r VerifyRequest) Data() map[string]any {
	d := map[string]any{FieldAPIKey: r.APIKey}
	if len(r.Scopes) > 0 {
		d[FieldScopes] = r.Scopes
	}
	for k, v := range r.strings() {
		d[k] = v
	}
	return d
}

// Query is the query string of a verify read: every field that is set but
// the key (which goes in VerifyHeader), scopes comma-separated.
func (r VerifyRequest) Query() url.Values {
	q := url.Values{}
	if len(r.Scopes) > 0 {
		q.Set(FieldScopes, strings.Join(r.Scopes, ","))
	}
	for k, v := range r.strings() {
		q.Set(k, v)
	}
	return q
}

func (r VerifyRequest) strings() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{
		FieldEnvironment: r.Environment, FieldSourceIP: r.SourceIP, FieldSignature: r.Signature,
		FieldTimestamp: r.Timestamp, FieldMethod: r.Method, FieldPath: r.Path, FieldBody: r.Body,
	} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// VerifyResponse is verify's answer. Key is set once the key is
// authenticated (every code but MALFORMED and NOT_FOUND), so a refusal
// still says whose key it was.
type VerifyResponse struct {
	Valid   bool   `json:"valid"`
	Code    string `json:"code"`
	Message string `json:"message"`
	*VerifiedKey
	// UsageTicket comes with a VALID answer: a local verifier that answers
	// later requests from its cache sends it with its usage reports.
	UsageTicket string `json:"usage_ticket,omitempty"`
	// RetryAfterMs comes with RATE_LIMITED.
	RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
}

// VerifiedKey is what verify tells of an authenticated key: what an API
// service needs, and what a local verifier needs to enforce the same policy
// itself (allowed_cidrs, rate_limit, rate_burst).
type VerifiedKey struct {
	KeyID        string            `json:"key_id"`
	Name         string            `json:"name"`
	Role         string            `json:"role"`
	Environment  string            `json:"environment"`
	Scopes       []string          `json:"scopes"`
	KeyType      string            `json:"key_type"`
	ExpiresAt    string            `json:"expires_at"` // RFC 3339
	Labels       map[string]string `json:"labels"`
	AllowedCIDRs []string          `json:"allowed_cidrs"`
	RateLimit    float64           `json:"rate_limit"`
	RateBurst    int               `json:"rate_burst"`
}

// Data is the response as logical.Response data. Empty lists and maps of
// an authenticated key are sent as [] and {}, never null.
func (r *VerifyResponse) Data() map[string]any {
	d := make(map[string]any, 16)
	d["valid"] = r.Valid
	d["code"] = r.Code
	d["message"] = r.Message
	if k := r.VerifiedKey; k != nil {
		d["key_id"] = k.KeyID
		d["name"] = k.Name
		d["role"] = k.Role
		d["environment"] = k.Environment
		d["scopes"] = NonNil(k.Scopes)
		d["key_type"] = k.KeyType
		d["expires_at"] = k.ExpiresAt
		d["labels"] = NonNilMap(k.Labels)
		d["allowed_cidrs"] = NonNil(k.AllowedCIDRs)
		d["rate_limit"] = k.RateLimit
		d["rate_burst"] = k.RateBurst
	}
	if r.UsageTicket != "" {
		d["usage_ticket"] = r.UsageTicket
	}
	if r.RetryAfterMs > 0 {
		d["retry_after_ms"] = r.RetryAfterMs
	}
	return d
}

// NonNil returns s, or an empty list for nil: responses say [] rather
// than null.
func NonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// NonNilMap returns m, or an empty map for nil.
func NonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
