package gateway

import (
	"fmt"
	"net/url"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// DefaultGitHubPublicKeysURL is GitHub's document of the keys that sign
// secret-scanning partner alerts.
const DefaultGitHubPublicKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// DefaultReportsPerMinute is how many public reports one source may send
// a minute (also the burst) unless report_per_minute says otherwise.
const DefaultReportsPerMinute = 10

// LeaksConfig is the `leaks` block: the leak receivers, each off unless
// turned on (a gateway without them needs no revoke rights in Vault).
type LeaksConfig struct {
	// GitHub turns on POST /leaks/github (secret-scanning partner alerts).
	GitHub bool
	// GitHubPublicKeysURL is the public-keys document alerts are checked
	// against. Default DefaultGitHubPublicKeysURL.
	GitHubPublicKeysURL string
	// Report turns on POST /leaks/report (public revocation, no token).
	Report bool
	// ReportsPerMinute bounds the reports one source may send (rate and
	// burst). Default DefaultReportsPerMinute.
	ReportsPerMinute int
	// KeyPrefix is the mount's key_prefix: tokens of another prefix are
	// another mount's and are neither sent to this one nor labelled.
	// Default "ck".
	KeyPrefix string
}

// Enabled says whether any receiver is on.
func (l LeaksConfig) Enabled() bool { return l.GitHub || l.Report }

type leaksBlock struct {
	GitHub              *bool  `hcl:"github,optional"`
	GitHubPublicKeysURL string `hcl:"github_public_keys_url,optional"`
	Report              *bool  `hcl:"report,optional"`
	ReportsPerMinute    *int   `hcl:"report_per_minute,optional"`
	KeyPrefix           string `hcl:"key_prefix,optional"`
}

// parseLeaks checks the leaks block (nil: no block, every receiver off).
func parseLeaks(lb *leaksBlock, body *hclsyntax.Body, filename string) (LeaksConfig, error) {
	lc := LeaksConfig{GitHubPublicKeysURL: DefaultGitHubPublicKeysURL, ReportsPerMinute: DefaultReportsPerMinute, KeyPrefix: keyformat.DefaultPrefix}
	if lb == nil {
		return lc, nil
	}
	bad := func(name, format string, args ...any) error {
		where := filename + ": "
		if body != nil {
			for _, b := range body.Blocks {
				if b.Type != "leaks" {
					continue
				}
				where = fmt.Sprintf("%s:%d,%d: ", filename, b.TypeRange.Start.Line, b.TypeRange.Start.Column)
				if a, ok := b.Body.Attributes[name]; ok {
					where = fmt.Sprintf("%s:%d,%d: ", filename, a.SrcRange.Start.Line, a.SrcRange.Start.Column)
				}
			}
		}
		return fmt.Errorf("%sleaks: %s: %s", where, name, fmt.Sprintf(format, args...))
	}
	lc.GitHub = lb.GitHub != nil && *lb.GitHub
	lc.Report = lb.Report != nil && *lb.Report
	if lb.GitHubPublicKeysURL != "" {
		u, err := url.Parse(lb.GitHubPublicKeysURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return lc, bad("github_public_keys_url", "%q must be an http:// or https:// URL", lb.GitHubPublicKeysURL)
		}
		lc.GitHubPublicKeysURL = lb.GitHubPublicKeysURL
	}
	if lb.ReportsPerMinute != nil {
		if *lb.ReportsPerMinute < 1 || *lb.ReportsPerMinute > 10000 {
			return lc, bad("report_per_minute", "must be between 1 and 10000 (turn the receiver off with report = false)")
		}
		lc.ReportsPerMinute = *lb.ReportsPerMinute
	}
	if lb.KeyPrefix != "" {
		if !keyformat.ValidPrefix(lb.KeyPrefix) {
			return lc, bad("key_prefix", "%q must match [a-z][a-z0-9]{1,7} (the mount's key_prefix)", lb.KeyPrefix)
		}
		lc.KeyPrefix = lb.KeyPrefix
	}
	return lc, nil
}
