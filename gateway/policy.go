package gateway

import (
	"net/url"
	"path"
	"strings"
)

// policy maps a request's method and path to the scopes it needs.
type policy struct {
	routes        []Route
	defaultScopes []string // nil: unmatched requests are refused
}

// match returns the scopes the request needs, and false when no route
// covers it and there is no default. The most specific route wins: an
// exact path over a prefix, a longer prefix over a shorter one, a named
// method over "*". A GET route also covers HEAD.
func (p *policy) match(method, reqPath string) (scopes []string, pattern string, ok bool) {
	best, bestRank := -1, -1
	for i, r := range p.routes {
		if r.Method != "*" && r.Method != method && (r.Method != "GET" || method != "HEAD") {
			continue
		}
		var rank int
		switch {
		case !r.Prefix && reqPath == r.Path:
			rank = 1 << 20
		case r.Prefix && strings.HasPrefix(reqPath, r.Path):
			rank = len(r.Path) * 2
		default:
			continue
		}
		if r.Method != "*" {
			rank++
		}
		if rank > bestRank {
			best, bestRank = i, rank
		}
	}
	if best >= 0 {
		return p.routes[best].Scopes, p.routes[best].Pattern, true
	}
	if p.defaultScopes != nil {
		return p.defaultScopes, "default_scopes", true
	}
	return nil, "", false
}

// requestPath is the path a route is matched against: the URI's path
// without its query, percent-decoded and cleaned of "//", "." and ".."
// segments, so "/v1/market/../withdrawals" cannot pass as a market read
// (the upstream would serve it as /v1/withdrawals). ok is false for a URI
// that cannot be decoded or does not start with "/".
func requestPath(uri string) (string, bool) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return normalizePath(uri)
}

func normalizePath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	dec, err := url.PathUnescape(p)
	if err != nil || strings.ContainsAny(dec, "\\\x00") {
		return "", false
	}
	clean := path.Clean(dec)
	if strings.HasSuffix(dec, "/") && clean != "/" {
		clean += "/"
	}
	return clean, true
}
