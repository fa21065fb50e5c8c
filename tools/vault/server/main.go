// Command server is the Vault test server (bin/vault): Vault 1.13.0's own
// main, with the fix Vault made in 1.13.x later (hashicorp/vault#23902)
// applied the only way a build from the module proxy can apply it.
//
// Vault 1.13.0 has deadlock detection (github.com/sasha-s/go-deadlock)
// always on for the expiration manager's and the quota manager's locks,
// whatever detect_deadlocks says. Every request takes the quota locks, and
// every lease registration the expiration manager's: each of those lock
// calls then records its callers' stacks under one global mutex, starts a
// goroutine and a timer. Vault's fix made detection opt-in. Disabling the
// detector here gives the same locks plain sync behaviour, so the test
// server performs as every Vault after the fix does. (detect_deadlocks
// has no effect on this build: nothing here sets it.)
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
	"github.com/sasha-s/go-deadlock"
)

func main() {
	deadlock.Opts.Disable = true
	// What Vault's main does in init (internal.PatchSha1, which a module
	// outside Vault cannot import): allow SHA-1 signed certificates, for
	// Vault and the plugins it starts (they inherit the environment).
	godebug := os.Getenv("GODEBUG")
	if godebug != "" {
		godebug += ","
	}
	_ = os.Setenv("GODEBUG", godebug+"x509sha1=1")
	os.Exit(command.Run(os.Args[1:]))
}
