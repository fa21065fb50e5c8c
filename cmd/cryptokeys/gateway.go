package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/cryptokeys/terraform-provider-cryptokeys/gateway"
	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/gcpace"
	"github.com/hashicorp/go-hclog"
)

const gatewayUsage = `Usage: cryptokeys gateway -config FILE [-listen ADDR] [-log-level LEVEL]

Runs the verification service beside an API gateway: forward auth at /authz
(nginx auth_request, Caddy forward_auth, Traefik ForwardAuth), Envoy's
ext_authz over gRPC on grpc_listen, /metrics, /healthz and /readyz, and the
leak receivers a leaks block turns on (/leaks/github, /leaks/report). Vault
is reached as the vault CLI does (VAULT_ADDR,
VAULT_TOKEN, VAULT_CACERT, ...) or with token_file in the config.
SIGINT or SIGTERM stops it gracefully, reporting the usage counted so far.
`

func runGateway(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("cryptokeys gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "the gateway's HCL config file (required)")
	listen := fs.String("listen", "", "listen address, overriding the config's listen")
	level := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(stderr, gatewayUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitClean
		}
		return exitError
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitError
	}
	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "cryptokeys gateway: %v\n", err)
		return exitError
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	// The gateway's heap is mostly its key cache, long-lived as the
	// engine's: paced as the plugin paces its own (100,000 cached keys at
	// GOGC=100 make the process about twice its live heap).
	gcpace.Start()
	logger := hclog.New(&hclog.LoggerOptions{Name: "gateway", Output: stderr, Level: hclog.LevelFromString(*level)})
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, cfg, gateway.Options{Logger: logger}); err != nil {
		fmt.Fprintf(stderr, "cryptokeys gateway: %v\n", err)
		return exitError
	}
	return exitClean
}
