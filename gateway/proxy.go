package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

// MaxProxyBody bounds the body the gateway reads in reverse-proxy mode (it
// must read it whole: a signature covers it).
const MaxProxyBody = 1 << 20

// Signed-request headers a client sends in reverse-proxy mode.
const (
	HeaderTimestamp = "X-Cryptokeys-Timestamp"
	HeaderSignature = "X-Cryptokeys-Signature"
)

type verdictKey struct{}

// reverseProxy is reverse-proxy mode: the decision is made on the real
// request (body included, so signed requests work), every client-sent
// X-Cryptokeys-* header is removed, and allowed requests go to upstream
// with the gateway's X-Cryptokeys-* headers.
func (g *Gateway) reverseProxy() http.Handler {
	up := g.cfg.Upstream
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			for k := range pr.Out.Header {
				if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Cryptokeys-") {
					pr.Out.Header.Del(k)
				}
			}
			if d, ok := pr.In.Context().Value(verdictKey{}).(*decision); ok {
				pr.Out.Header.Set(HeaderCode, d.code)
				pr.Out.Header.Set(HeaderKeyID, d.res.KeyID)
				pr.Out.Header.Set(HeaderRole, d.res.Role)
				pr.Out.Header.Set(HeaderEnvironment, d.res.Environment)
				pr.Out.Header.Set(HeaderScopes, strings.Join(d.res.Scopes, ","))
			}
			if ip, ok := pr.In.Context().Value(clientIPKey{}).(string); ok && ip != "" {
				pr.Out.Header.Set("X-Forwarded-For", ip)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Warn("upstream unreachable", "error", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"code": "UPSTREAM_UNAVAILABLE", "message": "the API behind the gateway did not answer"})
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxProxyBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"code": "BODY_TOO_LARGE", "message": "the request body is larger than the gateway reads"})
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "BAD_REQUEST", "message": "the request body could not be read"})
			return
		}
		var signed *verifier.Request
		if sig := r.Header.Get(HeaderSignature); sig != "" {
			signed = &verifier.Request{Signature: sig, Timestamp: r.Header.Get(HeaderTimestamp), Method: r.Method, Path: r.RequestURI, Body: string(body)}
		}
		ip := g.clientIP(r)
		d := g.decide(r.Context(), keyOf(r.Header), r.Method, r.RequestURI, ip, signed)
		g.m.decided(d.code)
		if d.code != wire.CodeValid {
			writeDecision(w, d)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		ctx := context.WithValue(context.WithValue(r.Context(), verdictKey{}, &d), clientIPKey{}, ip)
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

type clientIPKey struct{}
