package vaultplugin

import (
	"context"
	"crypto/hmac"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathVerify(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "verify",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "verify",
			OperationSuffix: "api-key",
		},
		Fields: map[string]*framework.FieldSchema{
			wire.FieldAPIKey:      {Type: framework.TypeString, Description: "The key the client presented."},
			wire.FieldScopes:      {Type: framework.TypeCommaStringSlice, Description: "Scopes the request needs; all must be granted."},
			wire.FieldEnvironment: {Type: framework.TypeString, Description: "Environment the calling service serves; a key of another environment is refused."},
			wire.FieldSourceIP:    {Type: framework.TypeString, Description: "Client address, checked against the key's allowed_cidrs."},
			wire.FieldSignature:   {Type: framework.TypeString, Description: "Signed keys: hex HMAC-SHA256 (hmac) or base64 Ed25519 signature (ed25519) of timestamp+method+path+body."},
			wire.FieldTimestamp:   {Type: framework.TypeString, Description: "Signed keys: the request's timestamp in milliseconds since the epoch."},
			wire.FieldMethod:      {Type: framework.TypeString, Description: "Signed keys: the HTTP method (upper-cased before signing)."},
			wire.FieldPath:        {Type: framework.TypeString, Description: "Signed keys: the request path with its query string."},
			wire.FieldBody:        {Type: framework.TypeString, Description: "Signed keys: the raw request body (empty for none)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			// A read takes the key from a header and every other field
			// from the query string. Before every write Vault asks a
			// plugin whether the target exists, and for a JSON body asks
			// its type once more (rate-limit quotas): two round trips a
			// read does not make (docs/performance.md has the figures).
			logical.ReadOperation: &framework.PathOperation{
				Callback:  strict(b.pathVerifyRead),
				Responses: okResponse("The verdict: always 200.", verifyResponseFields),
				Summary:   "Check a key sent in the " + wire.VerifyHeader + " header (the mount must pass it through).",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb:   "verify",
					OperationSuffix: "api-key-from-header",
				},
				ForwardPerformanceStandby:   false,
				ForwardPerformanceSecondary: false,
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  strict(b.pathVerify),
				Responses: okResponse("The verdict: always 200.", verifyResponseFields),
				Summary:   "Check whether a presented key may make a request.",
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
environment, scopes, expires_at and labels once the key is authenticated.
A VALID answer also carries usage_ticket: a local verifier that answers
later requests from its cache sends it with its usage reports (see usage);
it is good for that key on this mount for 15 minutes.
Verify never writes storage: usage is counted in memory and flushed
periodically.

Write (POST) sends every field in the body. Read (GET) is the cheaper call
for gateways: the key goes in the ` + wire.VerifyHeader + ` header and the other
fields in the query string (scopes as a comma-separated list). The mount must
pass that header through to the engine:
  vault secrets tune -passthrough-request-headers=` + wire.VerifyHeader + ` <mount>
(the cryptokeys_secrets_engine resource enables mounts that way). The key
itself is refused in a query string, where URLs end up in logs.`,
	}}
}

// verifyRequestFrom reads a verify's fields; the key comes from the body of
// a write or the header of a read. A request naming more scopes than a key
// can hold is a 400, so the list verify walks stays bounded.
func verifyRequestFrom(d *framework.FieldData, apiKey string) (wire.VerifyRequest, error) {
	scopes := d.Get(wire.FieldScopes).([]string)
	if len(scopes) > wire.MaxScopes {
		return wire.VerifyRequest{}, badField(wire.FieldScopes, "at most %d scopes", wire.MaxScopes)
	}
	return wire.VerifyRequest{
		APIKey:      apiKey,
		Scopes:      scopes,
		Environment: d.Get(wire.FieldEnvironment).(string),
		SourceIP:    d.Get(wire.FieldSourceIP).(string),
		Signature:   d.Get(wire.FieldSignature).(string),
		Timestamp:   d.Get(wire.FieldTimestamp).(string),
		Method:      d.Get(wire.FieldMethod).(string),
		Path:        d.Get(wire.FieldPath).(string),
		Body:        d.Get(wire.FieldBody).(string),
	}, nil
}

func (b *backend) pathVerifyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, ok := d.Raw[wire.FieldAPIKey]; ok {
		return respond(badField(wire.FieldAPIKey, "must not be sent in a query string, which proxies and access logs keep; send it in the %s header, or write (POST) verify", wire.VerifyHeader))
	}
	key, err := keyFromHeader(req.Headers)
	if err != nil {
		return respond(err)
	}
	in, err := verifyRequestFrom(d, key)
	if err != nil {
		return respond(err)
	}
	return b.answerVerify(ctx, req, in)
}

// keyFromHeader finds the one wire.VerifyHeader among the headers Vault
// passed through. Vault keeps the sender's spelling of header names, and
// audits request headers only when told to
// (sys/config/auditing/request-headers).
func keyFromHeader(headers map[string][]string) (string, error) {
	var values []string
	for name, v := range headers {
		if strings.EqualFold(name, wire.VerifyHeader) {
			values = append(values, v...)
		}
	}
	switch len(values) {
	case 1:
		return values[0], nil
	case 0:
		return "", badField(wire.FieldAPIKey, "is required in the %s header; if it was sent, this mount does not pass it through (vault secrets tune -passthrough-request-headers=%s <mount>)", wire.VerifyHeader, wire.VerifyHeader)
	default:
		return "", badField(wire.FieldAPIKey, "send one %s header, not %d", wire.VerifyHeader, len(values))
	}
}

func (b *backend) pathVerify(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	in, err := verifyRequestFrom(d, d.Get(wire.FieldAPIKey).(string))
	if err != nil {
		return respond(err)
	}
	return b.answerVerify(ctx, req, in)
}

func (b *backend) answerVerify(ctx context.Context, req *logical.Request, in wire.VerifyRequest) (*logical.Response, error) {
	v, err := b.verify(ctx, req.Storage, in)
	if err != nil {
		return nil, err
	}
	res := v.VerifyResponse
	if v.rec != nil {
		k := verifiedKey(v.rec)
		res.VerifiedKey = &k
	}
	return &logical.Response{Data: res.Data()}, nil
}

// verdict is verify's decision: the answer, and the key's record once the
// key is authenticated, from which answerVerify fills the answer's
// VerifiedKey (deciding needs only the record).
type verdict struct {
	wire.VerifyResponse
	rec *keyRecord
}

// verifiedKey is what verify tells of an authenticated key.
func verifiedKey(r *keyRecord) wire.VerifiedKey {
	return wire.VerifiedKey{
		KeyID:        r.KeyID,
		Name:         r.Name,
		Role:         r.Role,
		Environment:  r.Environment,
		Scopes:       r.Scopes,
		KeyType:      r.KeyType,
		ExpiresAt:    formatTime(r.end()),
		Labels:       r.Labels,
		AllowedCIDRs: r.AllowedCIDRs,
		RateLimit:    r.RateLimit,
		RateBurst:    r.RateBurst,
	}
}

var notFound = verdict{VerifyResponse: wire.VerifyResponse{Code: wire.CodeNotFound, Message: "no such key in this mount"}}

// verify decides a request, top to bottom: the key's shape, then its
// record, then the record's status, then what this request asks of it.
// It writes no storage. It reads the config (from memory once read) and at
// most one key record (on a cache miss).
func (b *backend) verify(ctx context.Context, s logical.Storage, in wire.VerifyRequest) (verdict, error) {
	// Shape and checksum, without I/O.
	key, err := keyformat.Parse(in.APIKey)
	if err != nil {
		return verdict{VerifyResponse: wire.VerifyResponse{Code: wire.CodeMalformed, Message: "not a well-formed key: " + err.Error()}}, nil
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return verdict{}, err
	}
	if key.Prefix != cfg.KeyPrefix || len(cfg.Pepper) == 0 {
		return notFound, nil
	}

	// The record. A key_id that had no record a moment ago costs no
	// storage read.
	now := b.now()
	if b.notFound.has(key.KeyID, now) {
		return notFound, nil
	}
	gen := b.notFound.generation()
	rec, err := b.getKey(ctx, s, key.KeyID)
	if err != nil {
		return verdict{}, err
	}
	if rec == nil {
		b.notFound.add(key.KeyID, now, gen)
		return notFound, nil
	}
	// A key_id that exists with a different secret is indistinguishable
	// from one that does not: both are NOT_FOUND. (Its id is not added
	// to b.notFound: that would shadow the real key.)
	if !hmac.Equal(rec.Hash, keyHash(cfg.Pepper, in.APIKey)) {
		return notFound, nil
	}

	// From here on the key is authenticated: every answer says whose it is.
	refuse := func(code, msg string) (verdict, error) {
		return verdict{VerifyResponse: wire.VerifyResponse{Code: code, Message: msg}, rec: rec}, nil
	}

	// The key's status: revoked, expired, suspended or active.
	switch st, at := b.keyStatus(rec, now); st {
	case statusRevoked:
		return refuse(wire.CodeRevoked, "key was revoked at "+formatTime(rec.RevokedAt)+": "+rec.notes().RevokeReason)
	case statusExpired:
		return refuse(wire.CodeExpired, "key expired at "+formatTime(rec.ExpiresAt))
	case statusSuspended:
		return refuse(wire.CodeSuspended, suspendedMessage(rec.KeyID, at))
	}

	// What this request asks of the key.
	if in.Environment != "" && in.Environment != rec.Environment {
		return refuse(wire.CodeEnvironmentMismatch, "key belongs to environment "+rec.Environment+", not "+printable(in.Environment))
	}
	if len(rec.cidrs) > 0 && !wire.SourceAllowed(in.SourceIP, rec.cidrs) {
		return refuse(wire.CodeIPNotAllowed, "source_ip is not in the key's allowed_cidrs")
	}
	signed := rec.KeyType != keyTypeBearer
	if signed {
		if code, msg := checkSignature(rec, in, now); code != "" {
			return refuse(code, msg)
		}
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(rec.Scopes, sc) {
			return refuse(wire.CodeInsufficientScope, "key lacks scope "+printable(sc))
		}
		if !signed && slices.Contains(cfg.SignedScopes, sc) {
			return refuse(wire.CodeInsufficientScope, "scope "+sc+" needs a signed request")
		}
	}

	// The request is allowed; count it against the key's limits.
	if rec.watchesAnomalies() && b.anomalies.observe(rec, now, in.SourceIP, b.logAnomaly) {
		return refuse(wire.CodeSuspended, suspendedMessage(rec.KeyID, now))
	}
	if ok, retry := b.limiter.allow(rec, now); !ok {
		res, _ := refuse(wire.CodeRateLimited, "rate limit exceeded")
		res.RetryAfterMs = max(1, retry.Milliseconds())
		return res, nil
	}
	b.usage.record(rec.KeyID, now, in.SourceIP)
	return verdict{VerifyResponse: wire.VerifyResponse{
		Valid:       true,
		Code:        wire.CodeValid,
		UsageTicket: usageTicket(cfg.ticketKey, rec.KeyID, now),
	}, rec: rec}, nil
}

func suspendedMessage(keyID string, at time.Time) string {
	return "key was suspended at " + formatTime(at) + " for anomalous use; write keys/" + keyID + "/resume to lift it"
}

// checkSignature applies the replay window, then the signature. It returns
// an empty code when the request is properly signed.
func checkSignature(rec *keyRecord, in wire.VerifyRequest, now time.Time) (code, msg string) {
	if in.Signature == "" || in.Timestamp == "" {
		return wire.CodeBadSignature, "a " + rec.KeyType + " key must sign its requests (signature and timestamp are required)"
	}
	ts, err := strconv.ParseInt(in.Timestamp, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != in.Timestamp {
		return wire.CodeBadSignature, "timestamp must be milliseconds since the epoch, in plain decimal"
	}
	// The message is a plain concatenation; fixing the shape of each part
	// keeps the timestamp/method/path boundaries unambiguous.
	if !validMethod(in.Method) {
		return wire.CodeBadSignature, "method must be an HTTP method (letters only)"
	}
	if !strings.HasPrefix(in.Path, "/") {
		return wire.CodeBadSignature, "path must start with /"
	}
	window := rec.RecvWindow
	if window <= 0 {
		window = defaultRecvWindow
	}
	skew := now.Sub(time.UnixMilli(ts))
	if skew > window || skew < -window {
		return wire.CodeStaleTimestamp, "timestamp is outside the key's recv_window of " + window.String()
	}
	if !signatureValid(rec, wire.Message(in.Timestamp, in.Method, in.Path, in.Body), in.Signature) {
		return wire.CodeBadSignature, "signature does not match the request"
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
