//go:build tools

// Package tools pins the gitleaks binary (bin/gitleaks) that tests run
// examples/gitleaks/gitleaks.toml with.
package tools

import _ "github.com/zricethezav/gitleaks/v8"
