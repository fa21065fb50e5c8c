//go:build tools

// Package tools pins the Vault server used by integration tests.
package tools

import _ "github.com/hashicorp/vault"
