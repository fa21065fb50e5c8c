package gateway

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
)

// Envoy ext_authz over gRPC (envoy.service.auth.v3.Authorization/Check) on
// grpc_listen: the same route policy and decision as /authz.
//
// What is read from a CheckRequest (attributes.request.http): the method,
// the path (with its query string), and the headers, from `headers` or,
// when Envoy sends raw headers (encode_raw_headers), from `header_map`. The
// key from `authorization: Bearer` or `x-api-key`, as on /authz. With
// `with_request_body`, a request carrying x-cryptokeys-signature is checked
// as a signed request over its method, path and (raw) body.
//
// The client address: Envoy sends the downstream connection's address in
// attributes.source.address. It is believed only when the gRPC peer (the
// Envoy) is in trusted_proxies; otherwise the client is the gRPC peer
// itself, as with any untrusted HTTP peer. When the source address is in
// trusted_proxies too (a load balancer in front of Envoy), x-forwarded-for
// is walked from the right as on /authz.
//
// Answers: OK with OkHttpResponse headers X-Cryptokeys-Code, -Key-Id,
// -Role, -Environment, -Scopes (overwriting what the client sent; every
// other client-sent x-cryptokeys-* header is removed); a refusal is a
// DeniedHttpResponse with the status of the design's table (401 with
// WWW-Authenticate, 403, 429 with Retry-After, 503 with Retry-After), the
// X-Cryptokeys-Code header and the same small JSON body as /authz.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	g *Gateway
}

// GRPCServer is the gateway's gRPC service: Envoy's ext_authz
// Authorization service and the standard health service (SERVING when
// /readyz would answer 200).
func (g *Gateway) GRPCServer() *grpc.Server {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, &extAuthz{g: g})
	healthpb.RegisterHealthServer(s, &grpcHealth{g: g})
	return s
}

func (x *extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	g := x.g
	hr := req.GetAttributes().GetRequest().GetHttp()
	if hr == nil {
		return nil, status.Error(codes.InvalidArgument, "the CheckRequest has no attributes.request.http")
	}
	hdr := envoyHeaders(hr)
	method := strings.ToUpper(hr.GetMethod())
	if method == "" {
		method = hdr.Get(":method")
	}
	uri := hr.GetPath()
	if uri == "" {
		uri = hdr.Get(":path")
	}
	var signed *verifier.Request
	if sig := hdr.Get(HeaderSignature); sig != "" {
		body := string(hr.GetRawBody())
		if body == "" {
			body = hr.GetBody()
		}
		signed = &verifier.Request{Signature: sig, Timestamp: hdr.Get(HeaderTimestamp), Method: method, Path: uri, Body: body}
	}
	d := g.decide(ctx, keyOf(hdr), method, uri, g.envoyClientIP(ctx, req, hdr), signed)
	g.m.decided(d.code)
	return checkResponse(d, hdr), nil
}

// envoyHeaders is a CheckRequest's headers as an http.Header.
func envoyHeaders(hr *authv3.AttributeContext_HttpRequest) http.Header {
	h := http.Header{}
	for k, v := range hr.GetHeaders() {
		h.Add(k, v)
	}
	for _, kv := range hr.GetHeaderMap().GetHeaders() {
		v := kv.GetValue()
		if v == "" {
			v = string(kv.GetRawValue())
		}
		h.Add(kv.GetKey(), v)
	}
	return h
}

// envoyClientIP applies the rule in extAuthz's comment.
func (g *Gateway) envoyClientIP(ctx context.Context, req *authv3.CheckRequest, hdr http.Header) string {
	var peerHost string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerHost = p.Addr.String()
		if h, _, err := net.SplitHostPort(peerHost); err == nil {
			peerHost = h
		}
	}
	src := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	if src == "" || !g.trustedHost(peerHost) {
		// An untrusted peer (or no source address): the peer is the client.
		return g.clientFrom(peerHost, nil, "")
	}
	return g.clientFrom(src, hdr.Values("X-Forwarded-For"), "")
}

func (g *Gateway) trustedHost(host string) bool {
	if a, err := parsePrefix(host); err == nil {
		return g.trusted(a.Addr())
	}
	return false
}

// checkResponse is a decision as Envoy's CheckResponse.
func checkResponse(d decision, hdr http.Header) *authv3.CheckResponse {
	st := statusOf(d.code)
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	if st == http.StatusOK {
		ours := []*corev3.HeaderValueOption{
			set(HeaderCode, d.code),
			set(HeaderKeyID, d.res.KeyID),
			set(HeaderRole, d.res.Role),
			set(HeaderEnvironment, d.res.Environment),
			set(HeaderScopes, strings.Join(d.res.Scopes, ",")),
		}
		var remove []string
		for k := range hdr {
			ck := http.CanonicalHeaderKey(k)
			if strings.HasPrefix(ck, "X-Cryptokeys-") {
				switch ck {
				case HeaderCode, HeaderKeyID, HeaderRole, HeaderEnvironment, HeaderScopes:
					// overwritten above
				default:
					remove = append(remove, strings.ToLower(ck))
				}
			}
		}
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: ours, HeadersToRemove: remove,
			}},
		}
	}
	headers := []*corev3.HeaderValueOption{set(HeaderCode, d.code), set("Content-Type", "application/json"), set("Cache-Control", "no-store")}
	rpc := codes.PermissionDenied
	switch st {
	case http.StatusUnauthorized:
		rpc = codes.Unauthenticated
		if d.code == CodeNoKey {
			headers = append(headers, set("WWW-Authenticate", `Bearer realm="cryptokeys"`))
		} else {
			headers = append(headers, set("WWW-Authenticate", `Bearer realm="cryptokeys", error="invalid_token"`))
		}
	case http.StatusTooManyRequests:
		rpc = codes.ResourceExhausted
		headers = append(headers, set("Retry-After", strconv.Itoa(retrySeconds(d.retryAfter))))
	case http.StatusServiceUnavailable:
		rpc = codes.Unavailable
		headers = append(headers, set("Retry-After", "1"))
	}
	body := answerOf(d.code).body
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(rpc), Message: d.code}, // #nosec G115 -- a gRPC code (0 to 16)
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(st)}, // #nosec G115 -- st is one of statusOf's HTTP statuses (401 to 503)
			Headers: headers,
			Body:    string(body),
		}},
	}
}

// grpcHealth is grpc.health.v1: SERVING when the gateway is ready.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	g *Gateway
}

func (h *grpcHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "", authv3.Authorization_ServiceDesc.ServiceName:
	default:
		return nil, status.Error(codes.NotFound, "unknown service")
	}
	if ok, _ := h.g.ready(); ok {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
}
