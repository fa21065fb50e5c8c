package gateway

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/peer"
)

// The client address of a Check: Envoy's attributes.source.address only
// when the gRPC peer is a trusted proxy (else the peer itself), and
// x-forwarded-for only when that source address is trusted too.
func TestEnvoyClientIP(t *testing.T) {
	g := &Gateway{cfg: &Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}}
	req := func(src string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: src}}},
		}}}
	}
	from := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}})
	}
	xff := http.Header{"X-Forwarded-For": {"192.0.2.1, 198.51.100.7"}}
	for _, tc := range []struct {
		name, peer, src string
		hdr             http.Header
		want            string
	}{
		{"trusted Envoy: its source address", "127.0.0.1", "203.0.113.5", nil, "203.0.113.5"},
		{"trusted Envoy, untrusted source: x-forwarded-for ignored", "127.0.0.1", "203.0.113.5", xff, "203.0.113.5"},
		{"trusted Envoy behind a trusted balancer: x-forwarded-for", "127.0.0.1", "10.1.2.3", xff, "198.51.100.7"},
		{"untrusted peer: its claims ignored", "192.0.2.99", "203.0.113.5", xff, "192.0.2.99"},
		{"no source address: the peer", "127.0.0.1", "", nil, "127.0.0.1"},
	} {
		hdr := tc.hdr
		if hdr == nil {
			hdr = http.Header{}
		}
		if got := g.envoyClientIP(from(tc.peer), req(tc.src), hdr); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
