// Package gateway is `cryptokeys gateway`: a verification service that runs
// beside an API gateway (nginx, Caddy, Traefik, Envoy), embeds the local
// verifier, follows the engine's revocations feed and answers the proxies'
// external-auth protocols. The contract (config, endpoints, headers, status
// codes) is the "Gateway" section of the design.
package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Config is a gateway's configuration, as read from its HCL file.
type Config struct {
	// Mount is the engine's mount path. Default "cryptokeys".
	Mount string
	// Environment, when set, refuses keys of other environments offline.
	Environment string
	// Listen is the HTTP address of /authz, /metrics, /healthz, /readyz.
	Listen string
	// GRPCListen is the gRPC address of the Envoy ext_authz service
	// ("" = no gRPC listener).
	GRPCListen string
	// Upstream turns on reverse-proxy mode ("" = off).
	Upstream *url.URL
	// TokenFile is a Vault Agent sink holding the gateway's token, re-read
	// when it changes. "" = the token from VAULT_TOKEN (or the CLI's token
	// helper file).
	TokenFile string
	// TrustedProxies are the peers whose X-Forwarded-For / X-Real-IP are
	// believed.
	TrustedProxies []netip.Prefix
	// Routes map method + path to the scopes a request needs.
	Routes []Route
	// DefaultScopes, when non-nil, are the scopes an unmatched request
	// needs; nil refuses unmatched requests.
	DefaultScopes []string

	// Tuning of the embedded verifier (zero = the verifier's default).
	CacheSize     int
	CacheTTL      time.Duration
	PollInterval  time.Duration
	MaxStaleness  time.Duration
	UsageInterval time.Duration
	// VerifyByRead asks the engine with a verify read (the key in the
	// X-Cryptokeys-Api-Key header); default true.
	VerifyByRead bool

	// Leaks are the leak receivers (leaks_config.go); all off by default.
	Leaks LeaksConfig
}

// Route is one route block: `route "GET /v1/market/*" { scopes = [...] }`.
type Route struct {
	Pattern string   // as written
	Method  string   // upper case, or "*" for any
	Path    string   // without the trailing "*"
	Prefix  bool     // the pattern ended in "*"
	Scopes  []string // all required
}

type fileConfig struct {
	Mount          string       `hcl:"mount,optional"`
	Environment    string       `hcl:"environment,optional"`
	Listen         string       `hcl:"listen,optional"`
	GRPCListen     string       `hcl:"grpc_listen,optional"`
	Upstream       string       `hcl:"upstream,optional"`
	TokenFile      string       `hcl:"token_file,optional"`
	TrustedProxies []string     `hcl:"trusted_proxies,optional"`
	DefaultScopes  *[]string    `hcl:"default_scopes,optional"`
	CacheSize      int          `hcl:"cache_size,optional"`
	CacheTTL       string       `hcl:"cache_ttl,optional"`
	PollInterval   string       `hcl:"poll_interval,optional"`
	MaxStaleness   string       `hcl:"max_staleness,optional"`
	UsageInterval  string       `hcl:"usage_interval,optional"`
	VerifyByRead   *bool        `hcl:"verify_by_read,optional"`
	Routes         []routeBlock `hcl:"route,block"`
	Leaks          *leaksBlock  `hcl:"leaks,block"`
}

type routeBlock struct {
	Pattern string   `hcl:"pattern,label"`
	Scopes  []string `hcl:"scopes"`
}

// DefaultListen is the listen address when the config names none.
const DefaultListen = "127.0.0.1:8181"

var (
	environmentRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	methodRE      = regexp.MustCompile(`^[A-Z]+$`)
	scopeRE       = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,63}$`) // the engine's rule
)

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path) // #nosec G304 -- the operator names the file
	if err != nil {
		return nil, err
	}
	return ParseConfig(src, path)
}

// ParseConfig parses and checks an HCL config. Errors name the file, the
// line and the field.
func ParseConfig(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	var fc fileConfig
	if diags := gohcl.DecodeBody(f.Body, nil, &fc); diags.HasErrors() {
		return nil, diagError(diags)
	}
	body, _ := f.Body.(*hclsyntax.Body)
	at := func(name string) string {
		if body != nil {
			if a, ok := body.Attributes[name]; ok {
				return fmt.Sprintf("%s:%d,%d: ", filename, a.SrcRange.Start.Line, a.SrcRange.Start.Column)
			}
		}
		return filename + ": "
	}
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%s%s: %s", at(name), name, fmt.Sprintf(format, args...))
	}

	c := &Config{Mount: "cryptokeys", Listen: DefaultListen, VerifyByRead: true}
	if fc.Mount != "" {
		c.Mount = strings.Trim(fc.Mount, "/")
		if c.Mount == "" || strings.ContainsAny(c.Mount, " ?#") {
			return nil, bad("mount", "%q is not a mount path", fc.Mount)
		}
	}
	if fc.Environment != "" {
		if !environmentRE.MatchString(fc.Environment) {
			return nil, bad("environment", "%q must match [a-z][a-z0-9]{0,15}", fc.Environment)
		}
		c.Environment = fc.Environment
	}
	if fc.Listen != "" {
		if _, err := netip.ParseAddrPort(fc.Listen); err != nil && !hostPort(fc.Listen) {
			return nil, bad("listen", "%q must be host:port", fc.Listen)
		}
		c.Listen = fc.Listen
	}
	if fc.GRPCListen != "" {
		if _, err := netip.ParseAddrPort(fc.GRPCListen); err != nil && !hostPort(fc.GRPCListen) {
			return nil, bad("grpc_listen", "%q must be host:port", fc.GRPCListen)
		}
		if fc.GRPCListen == c.Listen {
			return nil, bad("grpc_listen", "%q is also listen: the gRPC service needs a port of its own", fc.GRPCListen)
		}
		c.GRPCListen = fc.GRPCListen
	}
	if fc.Upstream != "" {
		u, err := url.Parse(fc.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("upstream", "%q must be an http:// or https:// URL", fc.Upstream)
		}
		c.Upstream = u
	}
	c.TokenFile = fc.TokenFile
	for _, s := range fc.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, bad("trusted_proxies", "%q is not an IP address or CIDR", s)
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	if fc.DefaultScopes != nil {
		c.DefaultScopes = []string{}
		for _, s := range *fc.DefaultScopes {
			if !scopeRE.MatchString(s) {
				return nil, bad("default_scopes", "%q is not a scope name", s)
			}
			c.DefaultScopes = append(c.DefaultScopes, s)
		}
	}
	if fc.CacheSize < 0 {
		return nil, bad("cache_size", "must not be negative")
	}
	c.CacheSize = fc.CacheSize
	for _, d := range []struct {
		name string
		src  string
		dst  *time.Duration
	}{
		{"cache_ttl", fc.CacheTTL, &c.CacheTTL},
		{"poll_interval", fc.PollInterval, &c.PollInterval},
		{"max_staleness", fc.MaxStaleness, &c.MaxStaleness},
		{"usage_interval", fc.UsageInterval, &c.UsageInterval},
	} {
		if d.src == "" {
			continue
		}
		v, err := time.ParseDuration(d.src)
		if err != nil || v <= 0 {
			return nil, bad(d.name, "%q must be a positive Go duration such as \"250ms\" or \"5s\"", d.src)
		}
		*d.dst = v
	}
	if fc.VerifyByRead != nil {
		c.VerifyByRead = *fc.VerifyByRead
	}
	var err error
	if c.Leaks, err = parseLeaks(fc.Leaks, body, filename); err != nil {
		return nil, err
	}

	seen := map[string]bool{}
	for i, rb := range fc.Routes {
		where := filename + ": "
		if body != nil && i < len(body.Blocks) {
			for _, b := range body.Blocks {
				if b.Type == "route" && len(b.Labels) == 1 && b.Labels[0] == rb.Pattern {
					where = fmt.Sprintf("%s:%d,%d: ", filename, b.TypeRange.Start.Line, b.TypeRange.Start.Column)
				}
			}
		}
		r, err := parseRoute(rb.Pattern)
		if err != nil {
			return nil, fmt.Errorf("%sroute %q: %v", where, rb.Pattern, err)
		}
		key := r.Method + " " + r.Path + map[bool]string{true: "*"}[r.Prefix]
		if seen[key] {
			return nil, fmt.Errorf("%sroute %q: the same method and path appear in an earlier route", where, rb.Pattern)
		}
		seen[key] = true
		for _, s := range rb.Scopes {
			if !scopeRE.MatchString(s) {
				return nil, fmt.Errorf("%sroute %q: scopes: %q is not a scope name", where, rb.Pattern, s)
			}
		}
		r.Scopes = slices.Clone(rb.Scopes)
		c.Routes = append(c.Routes, r)
	}
	return c, nil
}

// parseRoute reads "METHOD /path" or "METHOD /prefix/*"; METHOD may be "*".
func parseRoute(pattern string) (Route, error) {
	method, path, ok := strings.Cut(strings.TrimSpace(pattern), " ")
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return Route{}, errors.New(`must be "METHOD /path", e.g. "GET /v1/market/*"`)
	}
	if method != "*" && !methodRE.MatchString(method) {
		return Route{}, fmt.Errorf("method %q must be upper case letters (GET, POST, ...) or *", method)
	}
	if !strings.HasPrefix(path, "/") {
		return Route{}, fmt.Errorf("path %q must start with /", path)
	}
	r := Route{Pattern: pattern, Method: method, Path: path}
	if strings.HasSuffix(path, "*") {
		r.Prefix, r.Path = true, strings.TrimSuffix(path, "*")
	}
	if strings.ContainsAny(r.Path, "*?# ") {
		return Route{}, fmt.Errorf(`path %q: "*" is allowed only at the end, and no query, fragment or space`, path)
	}
	if clean, ok := normalizePath(r.Path); !ok || (clean != r.Path && !(r.Prefix && clean+"/" == r.Path)) {
		return Route{}, fmt.Errorf("path %q is not in canonical form (no //, . or .. segments, no %%-escapes)", path)
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func hostPort(s string) bool {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return false
	}
	port := s[i+1:]
	if port == "" {
		return false
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func diagError(diags hcl.Diagnostics) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		if d.Subject != nil {
			m = fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, m)
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "\n"))
}
