package gateway

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

// Response headers (design, "Gateway").
const (
	HeaderCode        = "X-Cryptokeys-Code"
	HeaderKeyID       = "X-Cryptokeys-Key-Id"
	HeaderRole        = "X-Cryptokeys-Role"
	HeaderEnvironment = "X-Cryptokeys-Environment"
	HeaderScopes      = "X-Cryptokeys-Scopes"
)

// Codes the gateway adds to the verifier's.
const (
	CodeNoKey   = "NO_KEY"   // no Authorization: Bearer or X-API-Key
	CodeNoRoute = "NO_ROUTE" // no route matches and no default_scopes
)

// statusOf maps a verify code to the HTTP status of the design's table.
// An unknown code is refused (403): the gateway fails closed.
func statusOf(code string) int {
	switch code {
	case wire.CodeValid:
		return http.StatusOK
	case CodeNoKey, wire.CodeMalformed, wire.CodeNotFound, wire.CodeRevoked, wire.CodeExpired:
		return http.StatusUnauthorized
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case verifier.CodeUnavailable:
		return http.StatusServiceUnavailable
	default: // ENVIRONMENT_MISMATCH, INSUFFICIENT_SCOPE, IP_NOT_ALLOWED, SUSPENDED, BAD_SIGNATURE, STALE_TIMESTAMP, NO_ROUTE
		return http.StatusForbidden
	}
}

// messages are the gateway's own words for each code: the verifier's and
// the engine's messages are not passed on, so no body can echo a key.
var messages = map[string]string{
	wire.CodeValid:               "key accepted",
	CodeNoKey:                    "no API key: send Authorization: Bearer <key> or X-API-Key: <key>",
	CodeNoRoute:                  "no route allows this method and path",
	wire.CodeMalformed:           "the API key is not well-formed",
	wire.CodeNotFound:            "unknown API key",
	wire.CodeRevoked:             "the API key has been revoked",
	wire.CodeExpired:             "the API key has expired",
	wire.CodeEnvironmentMismatch: "the API key belongs to another environment",
	wire.CodeInsufficientScope:   "the API key lacks a scope this route needs",
	wire.CodeIPNotAllowed:        "requests from this address are not allowed for this key",
	wire.CodeSuspended:           "the API key is suspended",
	wire.CodeBadSignature:        "the request signature does not verify",
	wire.CodeStaleTimestamp:      "the request timestamp is outside the allowed window",
	wire.CodeRateLimited:         "rate limit exceeded",
	verifier.CodeUnavailable:     "verification is unavailable; try again later",
}

// decision is the outcome for one request.
type decision struct {
	code       string
	res        verifier.Result
	retryAfter time.Duration
}

// original is what a proxy tells about the request it asks about.
type original struct {
	method, uri string
}

// originalOf reads the original method and URI from the headers Traefik
// and Caddy (X-Forwarded-Method, X-Forwarded-Uri) or nginx
// (X-Original-Method, X-Original-URI) send; without them, the /authz
// request's own method and URI.
func originalOf(r *http.Request) original {
	o := original{method: r.Header.Get("X-Forwarded-Method"), uri: r.Header.Get("X-Forwarded-Uri")}
	if o.method == "" {
		o.method = r.Header.Get("X-Original-Method")
	}
	if o.uri == "" {
		o.uri = r.Header.Get("X-Original-Uri")
	}
	if o.method == "" {
		o.method = r.Method
	}
	if o.uri == "" {
		o.uri = r.URL.RequestURI()
	}
	o.method = strings.ToUpper(o.method)
	return o
}

// keyOf reads the key from Authorization: Bearer or X-API-Key.
func keyOf(h http.Header) string {
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return strings.TrimSpace(h.Get("X-Api-Key"))
}

// clientIP is the client's address: the connection's peer, or, when that
// peer is a trusted proxy, the last untrusted hop of X-Forwarded-For (read
// from the right, as each proxy appends), else X-Real-IP.
func (g *Gateway) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return g.clientFrom(host, r.Header.Values("X-Forwarded-For"), r.Header.Get("X-Real-Ip"))
}

// clientFrom is clientIP's rule for a peer address and the forwarding
// headers that came with it. It allocates nothing when the address it
// returns is already written in canonical form (what proxies send).
func (g *Gateway) clientFrom(host string, xff []string, realIP string) string {
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !g.trusted(peer) {
		return addrString(peer, host)
	}
	if len(xff) > 0 {
		// The hops of every X-Forwarded-For line in order; on the stack
		// for the usual few.
		var buf [8]string
		hops := buf[:0]
		for _, v := range xff {
			for v != "" {
				var h string
				h, v, _ = strings.Cut(v, ",")
				if h = strings.TrimSpace(h); h != "" {
					hops = append(hops, h)
				}
			}
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				break // garbage: do not believe anything left of it
			}
			a = a.Unmap()
			if !g.trusted(a) || i == 0 {
				return addrString(a, hops[i])
			}
		}
	}
	if xr := strings.TrimSpace(realIP); xr != "" {
		if a, err := netip.ParseAddr(xr); err == nil {
			a = a.Unmap()
			return addrString(a, xr)
		}
	}
	return addrString(peer, host)
}

// addrString is a.String(), or s itself when s already reads so (no copy).
func addrString(a netip.Addr, s string) string {
	var b [64]byte
	if string(a.AppendTo(b[:0])) == s {
		return s
	}
	return a.String()
}

func (g *Gateway) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// decide makes the decision for one request.
func (g *Gateway) decide(ctx context.Context, key, method, uri, sourceIP string, signed *verifier.Request) decision {
	if key == "" {
		return decision{code: CodeNoKey}
	}
	if why := g.failingClosed(); why != "" {
		return decision{code: verifier.CodeUnavailable}
	}
	p, ok := requestPath(uri)
	if !ok {
		return decision{code: CodeNoRoute}
	}
	scopes, _, ok := g.pol.match(method, p)
	if !ok {
		return decision{code: CodeNoRoute}
	}
	v := g.ver.Load()
	req := verifier.Request{APIKey: key, Scopes: scopes, SourceIP: sourceIP}
	if signed != nil {
		req.Signature, req.Timestamp, req.Method, req.Path, req.Body = signed.Signature, signed.Timestamp, signed.Method, signed.Path, signed.Body
	}
	start := time.Now()
	res, err := v.Verify(ctx, req)
	g.m.observe(res, time.Since(start))
	if res.Code == "" {
		res.Code = verifier.CodeUnavailable
	}
	if res.Code == verifier.CodeUnavailable {
		g.lastUnavailable.Store(time.Now().UnixNano())
		if err != nil {
			g.log.Warn("verify unavailable; failing closed", "error", shortErr(err))
		}
	}
	if res.Valid && res.Code != wire.CodeValid {
		res.Valid = false
	}
	return decision{code: res.Code, res: res, retryAfter: res.RetryAfter}
}

func (g *Gateway) serveAuthz(w http.ResponseWriter, r *http.Request) {
	o := originalOf(r)
	d := g.decide(r.Context(), keyOf(r.Header), o.method, o.uri, g.clientIP(r), nil)
	g.m.decided(d.code)
	writeDecision(w, d)
}

// answer is what every response for one code shares, made once: the body,
// and header values as slices of their own (len == cap, so an Add by
// anyone later appends to a copy, never into the shared array). net/http
// copies a handler's headers when it writes them, so sharing is safe.
type answer struct {
	status  int
	code    []string // X-Cryptokeys-Code
	body    []byte   // {"code": ..., "message": ...} and a newline
	length  []string // Content-Length of body
	wwwAuth []string // WWW-Authenticate, for 401
}

// Constant header values, shared by every response.
var (
	valJSON       = []string{"application/json"}
	valNoStore    = []string{"no-store"}
	valRetryOne   = []string{"1"}
	valBearer     = []string{`Bearer realm="cryptokeys"`}
	valBearerInvl = []string{`Bearer realm="cryptokeys", error="invalid_token"`}
)

// answers holds the answer of every code in messages; answerOf makes one
// for any other code.
var answers = func() map[string]*answer {
	m := make(map[string]*answer, len(messages))
	for code := range messages {
		m[code] = newAnswer(code)
	}
	return m
}()

func newAnswer(code string) *answer {
	msg := messages[code]
	if msg == "" {
		msg = "refused"
	}
	b, _ := json.Marshal(map[string]string{"code": code, "message": msg})
	b = append(b, '\n')
	a := &answer{status: statusOf(code), code: []string{code}, body: b, length: []string{strconv.Itoa(len(b))}}
	if a.status == http.StatusUnauthorized {
		a.wwwAuth = valBearerInvl
		if code == CodeNoKey {
			a.wwwAuth = valBearer
		}
	}
	return a
}

func answerOf(code string) *answer {
	if a := answers[code]; a != nil {
		return a
	}
	return newAnswer(code)
}

// writeDecision writes a decision as the design's table says.
func writeDecision(w http.ResponseWriter, d decision) {
	a := answerOf(d.code)
	// Header keys are already canonical: set directly, without Set's
	// canonicalisation and its one slice per value.
	h := w.Header()
	h[HeaderCode] = a.code
	switch a.status {
	case http.StatusOK:
		// One allocation for the four values of this key.
		v := &[4]string{d.res.KeyID, d.res.Role, d.res.Environment, strings.Join(d.res.Scopes, ",")}
		h[HeaderKeyID] = v[0:1:1]
		h[HeaderRole] = v[1:2:2]
		h[HeaderEnvironment] = v[2:3:3]
		h[HeaderScopes] = v[3:4:4]
	case http.StatusUnauthorized:
		h["Www-Authenticate"] = a.wwwAuth
	case http.StatusTooManyRequests:
		h["Retry-After"] = []string{strconv.Itoa(retrySeconds(d.retryAfter))}
	case http.StatusServiceUnavailable:
		h["Retry-After"] = valRetryOne
	}
	h["Content-Type"] = valJSON
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = a.length
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// retrySeconds rounds up, at least 1 (Retry-After is whole seconds).
func retrySeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
