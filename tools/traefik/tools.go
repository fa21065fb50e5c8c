//go:build tools

// Package tools pins the Traefik proxy that the gateway tests run the shipped
// Traefik snippet under (bin/traefik).
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
