package vaultplugin

import (
	"context"
	"crypto/hmac"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Verify codes, the contract API gateways switch on.
const (
	codeValid               = "VALID"
	codeMalformed           = "MALFORMED"
	codeNotFound            = "NOT_FOUND"
	codeRevoked             = "REVOKED"
	codeExpired             = "EXPIRED"
	codeEnvironmentMismatch = "ENVIRONMENT_MISMATCH"
	codeInsufficientScope   = "INSUFFICIENT_SCOPE"
	codeIPNotAllowed        = "IP_NOT_ALLOWED"
	codeRateLimited         = "RATE_LIMITED"
	codeBadSignature        = "BAD_SIGNATURE"
	codeStaleTimestamp      = "STALE_TIMESTAMP"
	codeSuspended           = "SUSPENDED"
)

var verifyCodes = []string{
	codeValid, codeMalformed, codeNotFound, codeRevoked, codeExpired,
	codeEnvironmentMismatch, codeInsufficientScope, codeIPNotAllowed,
	codeRateLimited, codeBadSignature, codeStaleTimestamp, codeSuspended,
}

func pathVerify(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "verify",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "verify",
			OperationSuffix: "api-key",
		},
		Fields: map[string]*framework.FieldSchema{
			"api_key":     {Type: framework.TypeString, Description: "The key the client presented."},
			"scopes":      {Type: framework.TypeCommaStringSlice, Description: "Scopes the request needs; all must be granted."},
			"environment": {Type: framework.TypeString, Description: "Environment the calling service serves; a key of another environment is refused."},
			"source_ip":   {Type: framework.TypeString, Description: "Client address, checked against the key's allowed_cidrs."},
			"signature":   {Type: framework.TypeString, Description: "Signed keys: hex HMAC-SHA256 (hmac) or base64 Ed25519 signature (ed25519) of timestamp+method+path+body."},
			"timestamp":   {Type: framework.TypeString, Description: "Signed keys: the request's timestamp in milliseconds since the epoch."},
			"method":      {Type: framework.TypeString, Description: "Signed keys: the HTTP method (upper-cased before signing)."},
			"path":        {Type: framework.TypeString, Description: "Signed keys: the request path with its query string."},
			"body":        {Type: framework.TypeString, Description: "Signed keys: the raw request body (empty for none)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			// A read takes the key from a header and every other field
			// from the query string. Before every write Vault asks a
			// plugin whether the target exists, and for a JSON body asks
			// its type once more (rate-limit quotas): two round trips a
			// read does not make. make bench measures a read about a
			// third cheaper.
			logical.ReadOperation: &framework.PathOperation{
				Callback: strict(b.pathVerifyRead),
				Summary:  "Check a key sent in the " + keyformat.VerifyHeader + " header (the mount must pass it through).",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb:   "verify",
					OperationSuffix: "api-key-from-header",
				},
				ForwardPerformanceStandby:   false,
				ForwardPerformanceSecondary: false,
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathVerify),
				Summary:  "Check whether a presented key may make a request.",
				// Verify only reads: standbys answer it themselves.
				ForwardPerformanceStandby:   false,
				ForwardPerformanceSecondary: false,
			},
		},
		HelpSynopsis: "Verify a presented API key (zero trust: call it on every request).",
		HelpDescription: `Always answers 200 with "valid" and a "code": VALID, MALFORMED (bad shape or
checksum; no storage read), NOT_FOUND, REVOKED, EXPIRED, ENVIRONMENT_MISMATCH,
INSUFFICIENT_SCOPE, IP_NOT_ALLOWED, RATE_LIMITED (with retry_after_ms),
BAD_SIGNATURE, STALE_TIMESTAMP or SUSPENDED; plus the key's key_id, role,
environment, scopes, expires_at and metadata once the key is authenticated.
A VALID answer also carries usage_ticket: a local verifier that answers
later requests from its cache sends it with its usage reports (see usage);
it is good for that key on this mount for 15 minutes.
Verify never writes storage: usage is counted in memory and flushed
periodically.

Write (POST) sends every field in the body. Read (GET) is the cheaper call
for gateways: the key goes in the ` + keyformat.VerifyHeader + ` header and the other
fields in the query string (scopes as a comma-separated list). The mount must
pass that header through to the engine:
  vault secrets tune -passthrough-request-headers=` + keyformat.VerifyHeader + ` <mount>
(the cryptokeys_secrets_engine resource enables mounts that way). The key
itself is refused in a query string, where URLs end up in logs.`,
	}}
}

type verifyInput struct {
	apiKey, environment, sourceIP string
	scopes                        []string
	signature, timestamp          string
	method, path, body            string
}

// verifyInputFrom reads a verify's fields; the key comes from the body of
// a write or the header of a read.
func verifyInputFrom(d *framework.FieldData, apiKey string) verifyInput {
	return verifyInput{
		apiKey:      apiKey,
		scopes:      d.Get("scopes").([]string),
		environment: d.Get("environment").(string),
		sourceIP:    d.Get("source_ip").(string),
		signature:   d.Get("signature").(string),
		timestamp:   d.Get("timestamp").(string),
		method:      d.Get("method").(string),
		path:        d.Get("path").(string),
		body:        d.Get("body").(string),
	}
}

type verifyResult struct {
	code         string
	message      string
	rec          *keyRecord
	retryAfterMs int64
	// ticket is the usage_ticket of a VALID answer (see path_usage.go).
	ticket string
}

func (b *backend) pathVerifyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, ok := d.Raw["api_key"]; ok {
		return respond(badField("api_key", "must not be sent in a query string, which proxies and access logs keep; send it in the %s header, or write (POST) verify", keyformat.VerifyHeader))
	}
	key, err := keyFromHeader(req.Headers)
	if err != nil {
		return respond(err)
	}
	return b.answerVerify(ctx, req, verifyInputFrom(d, key))
}

// keyFromHeader finds the one keyformat.VerifyHeader among the headers
// Vault passed through. Vault keeps the sender's spelling of header names,
// and audits request headers only when told to
// (sys/config/auditing/request-headers).
func keyFromHeader(headers map[string][]string) (string, error) {
	var values []string
	for name, v := range headers {
		if strings.EqualFold(name, keyformat.VerifyHeader) {
			values = append(values, v...)
		}
	}
	switch len(values) {
	case 1:
		return values[0], nil
	case 0:
		return "", badField("api_key", "is required in the %s header; if it was sent, this mount does not pass it through (vault secrets tune -passthrough-request-headers=%s <mount>)", keyformat.VerifyHeader, keyformat.VerifyHeader)
	default:
		return "", badField("api_key", "send one %s header, not %d", keyformat.VerifyHeader, len(values))
	}
}

func (b *backend) pathVerify(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.answerVerify(ctx, req, verifyInputFrom(d, d.Get("api_key").(string)))
}

func (b *backend) answerVerify(ctx context.Context, req *logical.Request, in verifyInput) (*logical.Response, error) {
	res, err := b.verify(ctx, req.Storage, in)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"valid":   res.code == codeValid,
		"code":    res.code,
		"message": res.message,
	}
	if r := res.rec; r != nil {
		data["key_id"] = r.KeyID
		data["name"] = r.Name
		data["role"] = r.Role
		data["environment"] = r.Environment
		data["scopes"] = nonNil(r.Scopes)
		data["key_type"] = r.KeyType
		data["expires_at"] = formatTime(r.end())
		data["metadata"] = nonNilMap(r.Metadata)
		// What a local verifier needs to enforce the same policy itself.
		data["allowed_cidrs"] = nonNil(r.AllowedCIDRs)
		data["rate_limit"] = r.RateLimit
		data["rate_burst"] = r.RateBurst
	}
	if res.ticket != "" {
		data["usage_ticket"] = res.ticket
	}
	if res.retryAfterMs > 0 {
		data["retry_after_ms"] = res.retryAfterMs
	}
	return &logical.Response{Data: data}, nil
}

// verify decides a request. It reads at most one storage entry (on a cache
// miss) and writes none.
func (b *backend) verify(ctx context.Context, s logical.Storage, in verifyInput) (verifyResult, error) {
	key, err := keyformat.Parse(in.apiKey)
	if err != nil {
		return verifyResult{code: codeMalformed, message: "not a well-formed key: " + err.Error()}, nil
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return verifyResult{}, err
	}
	notFound := verifyResult{code: codeNotFound, message: "no such key in this mount"}
	if key.Prefix != cfg.KeyPrefix || len(cfg.Pepper) == 0 {
		return notFound, nil
	}
	now := b.now()
	// A key_id that had no record a moment ago costs no storage read.
	if b.notFound.has(key.KeyID, now) {
		return notFound, nil
	}
	gen := b.notFound.generation()
	rec, err := b.getKey(ctx, s, key.KeyID)
	if err != nil {
		return verifyResult{}, err
	}
	if rec == nil {
		b.notFound.add(key.KeyID, now, gen)
		return notFound, nil
	}
	// A key_id that exists with a different secret is indistinguishable
	// from one that does not: both are NOT_FOUND. (Its id is not added
	// to b.notFound: that would shadow the real key.)
	if !hmac.Equal(rec.Hash, keyHash(cfg.Pepper, in.apiKey)) {
		return notFound, nil
	}
	refuse := func(code, msg string) (verifyResult, error) {
		return verifyResult{code: code, message: msg, rec: rec}, nil
	}
	switch rec.status(now) {
	case statusRevoked:
		return refuse(codeRevoked, "key was revoked at "+formatTime(rec.RevokedAt)+": "+rec.RevokeReason)
	case statusExpired:
		return refuse(codeExpired, "key expired at "+formatTime(rec.ExpiresAt))
	}
	if !rec.SuspendedAt.IsZero() {
		return refuse(codeSuspended, "key was suspended at "+formatTime(rec.SuspendedAt)+" for anomalous use; write keys/"+rec.KeyID+"/resume to lift it")
	}
	if in.environment != "" && in.environment != rec.Environment {
		return refuse(codeEnvironmentMismatch, "key belongs to environment "+rec.Environment+", not "+printable(in.environment))
	}
	if len(rec.AllowedCIDRs) > 0 && !ipAllowed(in.sourceIP, rec.AllowedCIDRs) {
		return refuse(codeIPNotAllowed, "source_ip is not in the key's allowed_cidrs")
	}
	signed := false
	if rec.KeyType != keyTypeBearer {
		if code, msg := checkSignature(rec, in, now); code != "" {
			return refuse(code, msg)
		}
		signed = true
	}
	for _, sc := range in.scopes {
		if !slices.Contains(rec.Scopes, sc) {
			return refuse(codeInsufficientScope, "key lacks scope "+printable(sc))
		}
		if !signed && slices.Contains(cfg.SignedScopes, sc) {
			return refuse(codeInsufficientScope, "scope "+sc+" needs a signed request")
		}
	}
	if b.anomalies.observe(rec, now, in.sourceIP, b.logAnomaly) {
		return refuse(codeSuspended, "key is suspended for anomalous use; write keys/"+rec.KeyID+"/resume to lift it")
	}
	if ok, retry := b.limiter.allow(rec, now); !ok {
		res, _ := refuse(codeRateLimited, "rate limit exceeded")
		res.retryAfterMs = max(1, retry.Milliseconds())
		return res, nil
	}
	b.usage.record(rec.KeyID, now, in.sourceIP)
	return verifyResult{code: codeValid, rec: rec, ticket: usageTicket(cfg.ticketKey, rec.KeyID, now)}, nil
}

func ipAllowed(sourceIP string, cidrs []string) bool {
	a, err := netip.ParseAddr(sourceIP)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// checkSignature applies the replay window, then the signature. It returns
// an empty code when the request is properly signed.
func checkSignature(rec *keyRecord, in verifyInput, now time.Time) (code, msg string) {
	if in.signature == "" || in.timestamp == "" {
		return codeBadSignature, "a " + rec.KeyType + " key must sign its requests (signature and timestamp are required)"
	}
	ts, err := strconv.ParseInt(in.timestamp, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != in.timestamp {
		return codeBadSignature, "timestamp must be milliseconds since the epoch, in plain decimal"
	}
	// The message is a plain concatenation; fixing the shape of each part
	// keeps the timestamp/method/path boundaries unambiguous.
	if !validMethod(in.method) {
		return codeBadSignature, "method must be an HTTP method (letters only)"
	}
	if !strings.HasPrefix(in.path, "/") {
		return codeBadSignature, "path must start with /"
	}
	window := rec.RecvWindow
	if window <= 0 {
		window = defaultRecvWindow
	}
	skew := now.Sub(time.UnixMilli(ts))
	if skew > window || skew < -window {
		return codeStaleTimestamp, "timestamp is outside the key's recv_window of " + window.String()
	}
	if !signatureValid(rec, signingMessage(in.timestamp, in.method, in.path, in.body), in.signature) {
		return codeBadSignature, "signature does not match the request"
	}
	return "", ""
}

// logAnomaly reports a new finding. Only the key_id is logged: it is public.
func (b *backend) logAnomaly(keyID, kind string) {
	b.Logger().Warn("anomalous key use", "key_id", keyID, "kind", kind)
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
