// Command cryptokeys finds leaked cryptokeys API keys in files and git
// history, and can revoke them on the Vault that issued them.
//
//	cryptokeys scan [--git] [--revoke] [--mount cryptokeys] [--prefix ck] [--reason TEXT] [--fail-on-skipped] PATH...
//	cryptokeys gateway -config FILE [-listen ADDR]
//	cryptokeys -version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes follow grep: a finding is 1, trouble is 2 even if keys were
// also found, because an incomplete scan must not pass for a clean one.
const (
	exitClean    = 0
	exitFindings = 1
	exitError    = 2
)

const defaultMaxSize = 10 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it with their own output and
// environment so they never touch the real ones.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runContext(context.Background(), args, stdout, stderr, getenv)
}

const usage = `Usage:
  cryptokeys scan [flags] PATH...   find cryptokeys API keys in files, directories or git history
  cryptokeys gateway -config FILE   verify keys for nginx, Caddy, Traefik (forward auth at /authz)
  cryptokeys -version               print the version

Scan prints one line per key whose checksum holds, as
  FILE:LINE prefix_env_KEYID… (redacted)        (or COMMIT:FILE:LINE with --git)
The secret part of a key is never printed. Look-alikes whose checksum fails
are counted on stderr, not reported.

Files not scanned (over --max-size, or binary) are named on stderr and
counted; --fail-on-skipped makes them fail the run. --revoke sends only the
keys of the mount's key_prefix, and warns when TLS verification is off.

Exit status: 0 no keys found, 1 keys found, 2 usage or I/O error, --revoke
failed, or (with --fail-on-skipped) a file was skipped.
`

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	switch args[0] {
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "cryptokeys", version)
		return exitClean
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitClean
	case "scan":
		return runScan(ctx, args[1:], stdout, stderr, getenv)
	case "gateway":
		return runGateway(ctx, args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "cryptokeys: unknown command %q\n\n%s", args[0], usage)
		return exitError
	}
}

type scanFlags struct {
	git           bool
	revoke        bool
	failOnSkipped bool
	mount         string
	prefix        string
	reason        string
	maxSize       int64
	paths         []string
}

// parseScanFlags allows flags after paths (`scan . --git`), which the flag
// package alone does not: people type them in either order.
func parseScanFlags(args []string, stderr io.Writer) (scanFlags, error) {
	var f scanFlags
	fs := flag.NewFlagSet("cryptokeys scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.git, "git", false, "scan the whole history (all refs and the reflog) of the git repository at each PATH instead of its files")
	fs.BoolVar(&f.revoke, "revoke", false, "send the keys found to <mount>/revoke/leaked on the Vault named by VAULT_ADDR and VAULT_TOKEN")
	fs.StringVar(&f.mount, "mount", "cryptokeys", "mount path of the cryptokeys secrets engine (with --revoke)")
	fs.StringVar(&f.prefix, "prefix", "", "with --revoke, send only keys of this key_prefix (default: the mount's, read from <mount>/config)")
	fs.StringVar(&f.reason, "reason", "found by cryptokeys scan", "revocation reason recorded by Vault (with --revoke)")
	fs.Int64Var(&f.maxSize, "max-size", defaultMaxSize, "skip files larger than this many bytes (reported on stderr)")
	fs.BoolVar(&f.failOnSkipped, "fail-on-skipped", false, "exit 2 when a file was skipped (over --max-size, or binary), since it was not scanned")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return f, err
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		// After "--" everything is a path, even if it starts with "-".
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			f.paths = append(f.paths, left...)
			break
		}
		f.paths = append(f.paths, left[0])
		rest = left[1:]
	}
	if len(f.paths) == 0 {
		fs.Usage()
		return f, errors.New("no PATH given")
	}
	f.mount = strings.Trim(f.mount, "/")
	if f.mount == "" {
		return f, errors.New("--mount must not be empty")
	}
	if f.maxSize <= 0 {
		return f, errors.New("--max-size must be positive")
	}
	if f.prefix != "" && !keyformat.ValidPrefix(f.prefix) {
		return f, fmt.Errorf("--prefix %q must match [a-z][a-z0-9]{1,7}", f.prefix)
	}
	return f, nil
}

func runScan(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	f, err := parseScanFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitClean
	}
	if err != nil {
		fmt.Fprintln(stderr, "cryptokeys scan:", err)
		return exitError
	}

	s := &scanner{maxSize: f.maxSize, stderr: stderr, emit: func(fd finding) {
		fmt.Fprintln(stdout, fd)
	}}
	for _, p := range f.paths {
		if f.git {
			s.scanGit(ctx, p)
		} else {
			s.scanPath(p)
		}
		if ctx.Err() != nil {
			s.fail("interrupted")
			break
		}
	}
	s.summary()

	code := exitClean
	if len(s.keys) > 0 {
		code = exitFindings
	}
	if s.errors > 0 {
		code = exitError
	}
	if n := s.skipped(); n > 0 {
		if f.failOnSkipped {
			fmt.Fprintf(stderr, "cryptokeys scan: failing: %d file(s) were not scanned (--fail-on-skipped)\n", n)
			code = exitError
		} else {
			fmt.Fprintf(stderr, "cryptokeys scan: %d file(s) were not scanned; --fail-on-skipped makes that fail the run\n", n)
		}
	}
	if f.revoke && ctx.Err() == nil {
		if len(s.keys) == 0 {
			fmt.Fprintln(stderr, "cryptokeys scan: no keys found, nothing to revoke")
			return code
		}
		res, err := revokeLeaked(ctx, getenv, f.mount, f.prefix, f.reason, s.keys, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "cryptokeys scan: revoke:", err)
			return exitError
		}
		if res.sent == 0 {
			return code
		}
		fmt.Fprintf(stdout, "%s/revoke/leaked: revoked_count=%d unknown_count=%d already_revoked_count=%d\n",
			f.mount, res.revoked, res.unknown, res.alreadyRevoked)
		for _, id := range res.revokedIDs {
			fmt.Fprintln(stdout, "revoked key_id", id)
		}
	}
	return code
}
