package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"google.golang.org/grpc"
)

// Options are what a caller gives a gateway besides its config.
type Options struct {
	// Client reaches Vault. Default: api.NewClient(api.DefaultConfig()),
	// which reads VAULT_ADDR, VAULT_CACERT, VAULT_TOKEN, ... as the vault
	// CLI does, keeping vaultIdleConns idle connections.
	Client *api.Client
	Logger hclog.Logger
	// TokenFileInterval is how often token_file is checked for a change.
	// Default 1 s.
	TokenFileInterval time.Duration
	// StartRetry is how long to wait between attempts to reach the engine
	// before the first feed read. Default 1 s.
	StartRetry time.Duration
	// GitHubKeysRefetch is the least time between two fetches of GitHub's
	// public-keys document for an identifier it does not hold. Default 1 min.
	GitHubKeysRefetch time.Duration
}

// Gateway is one running gateway. Its HTTP handler answers from the start;
// /authz refuses with 503 until the embedded verifier has read the feed.
type Gateway struct {
	cfg    *Config
	log    hclog.Logger
	client *api.Client
	pol    policy
	m      *metrics
	opts   Options

	ver atomic.Pointer[verifier.Verifier]

	leaks *leaks // the leak receivers (leaks*.go); nil when none is on

	// tokenFail is why the gateway fails closed because of its own Vault
	// token ("" when the token is fine).
	tokenMu   sync.Mutex
	tokenFail string
	// tokenExpiry is when the current token expires (zero: never).
	tokenExpiry atomic.Int64

	// lastUnavailable is when a verify last answered UNAVAILABLE (unix
	// nanoseconds).
	lastUnavailable atomic.Int64

	stop    context.CancelFunc
	bg      sync.WaitGroup
	closeMu sync.Once
}

// New starts a gateway's background work: the token watch (and token_file
// re-reads) and the embedded verifier (retried until the engine answers).
// Call Close when done.
// vaultIdleConns is how many idle connections to Vault the gateway keeps:
// about the concurrency of requests that miss the cache at once.
const vaultIdleConns = 64

func New(cfg *Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "gateway", Output: os.Stderr, Level: hclog.Info})
	}
	if opts.TokenFileInterval <= 0 {
		opts.TokenFileInterval = time.Second
	}
	if opts.StartRetry <= 0 {
		opts.StartRetry = time.Second
	}
	client := opts.Client
	if client == nil {
		vc := api.DefaultConfig()
		if vc.Error != nil {
			return nil, fmt.Errorf("reading the VAULT_* environment: %w", vc.Error)
		}
		// The default transport keeps GOMAXPROCS+1 idle connections to
		// Vault: a burst of cache misses (a cold start, a flush) from
		// concurrent requests then opens and closes a connection per
		// verify. Keep as many as such a burst uses.
		if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
			t.MaxIdleConnsPerHost = vaultIdleConns
		}
		var err error
		if client, err = api.NewClient(vc); err != nil {
			return nil, fmt.Errorf("creating the Vault client: %w", err)
		}
	}
	if cfg.TokenFile != "" {
		tok, err := readTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token_file: %w", err)
		}
		client.SetToken(tok)
	}
	if client.Token() == "" {
		return nil, errors.New("no Vault token: set VAULT_TOKEN, or token_file in the config")
	}
	g := &Gateway{
		cfg:    cfg,
		log:    opts.Logger,
		client: client,
		pol:    policy{routes: cfg.Routes, defaultScopes: cfg.DefaultScopes},
		opts:   opts,
	}
	g.m = newMetrics(g)
	if cfg.Leaks.Enabled() {
		g.leaks = newLeaks(g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	g.bg.Add(2)
	go func() { defer g.bg.Done(); g.watchToken(ctx) }()
	go func() { defer g.bg.Done(); g.startVerifier(ctx) }()
	return g, nil
}

// startVerifier creates the embedded verifier, retrying until the engine's
// feed answers.
func (g *Gateway) startVerifier(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		v, err := verifier.New(ctx, verifier.Config{
			Client:        g.client,
			Mount:         g.cfg.Mount,
			VerifyByRead:  g.cfg.VerifyByRead,
			Environment:   g.cfg.Environment,
			CacheSize:     g.cfg.CacheSize,
			CacheTTL:      g.cfg.CacheTTL,
			PollInterval:  g.cfg.PollInterval,
			MaxStaleness:  g.cfg.MaxStaleness,
			UsageInterval: g.cfg.UsageInterval,
			Logger:        g.log.Named("verifier"),
		})
		if err == nil {
			g.ver.Store(v)
			g.log.Info("first read of the revocations feed done; ready", "mount", g.cfg.Mount, "addr", g.client.Address())
			return
		}
		if attempt == 0 || attempt%30 == 0 {
			g.log.Warn("cannot reach the engine yet; refusing requests (503) until it answers", "mount", g.cfg.Mount, "addr", g.client.Address(), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(g.opts.StartRetry):
		}
	}
}

// failingClosed says why every request is refused, or "".
func (g *Gateway) failingClosed() string {
	if g.ver.Load() == nil {
		return "the engine has not answered yet"
	}
	g.tokenMu.Lock()
	reason := g.tokenFail
	g.tokenMu.Unlock()
	if reason != "" {
		return reason
	}
	return ""
}

// ready is /readyz: the first feed read is done, the token is fine, the
// embedded verifier has read the feed within the staleness bound (its
// Status) and no verify answered UNAVAILABLE in the last second.
func (g *Gateway) ready() (bool, string) {
	if r := g.failingClosed(); r != "" {
		return false, r
	}
	if st := g.ver.Load().Status(); st.Stale {
		return false, "the revocations feed has not been read within max_staleness"
	}
	if time.Now().UnixNano()-g.lastUnavailable.Load() < int64(time.Second) {
		return false, "the verifier is failing closed"
	}
	return true, ""
}

// Close stops the background work and reports the usage counted but not
// yet sent (verifier.Close).
func (g *Gateway) Close(ctx context.Context) error {
	var err error
	g.closeMu.Do(func() {
		g.stop()
		g.bg.Wait()
		if v := g.ver.Load(); v != nil {
			g.log.Info("reporting pending usage to the engine")
			if err = v.Close(ctx); err != nil {
				g.log.Error("reporting pending usage failed; those counts are lost", "error", err)
			} else {
				g.log.Info("pending usage reported")
			}
		}
	})
	return err
}

// Handler is the gateway's HTTP API: /authz, /healthz, /readyz, /metrics,
// and in reverse-proxy mode every other path.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/authz", g.serveAuthz)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := g.ready(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "message": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("/metrics", g.m.handler())
	g.registerLeaks(mux)
	if g.cfg.Upstream != nil {
		// Reverse-proxy mode: everything but the paths above goes to the
		// upstream when allowed.
		mux.Handle("/", g.reverseProxy())
	}
	return mux
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully: it
// stops taking requests, lets those in flight finish (up to 10 s) and closes
// the gateway (reporting pending usage).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return g.ServeListeners(ctx, ln, nil)
}

// ServeListeners is Serve with, when grpcLn is not nil, the gRPC service
// (Envoy ext_authz, grpc.health.v1) on grpcLn. Both stop together; pending
// usage is reported once both have.
func (g *Gateway) ServeListeners(ctx context.Context, ln, grpcLn net.Listener) error {
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("listening", "addr", ln.Addr().String())
	gs := g.GRPCServer()
	if grpcLn != nil {
		go func() { errc <- gs.Serve(grpcLn) }()
		g.log.Info("listening for Envoy ext_authz (gRPC)", "addr", grpcLn.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
		g.log.Info("shutting down")
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	_ = srv.Shutdown(sctx)
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
	}
	closeErr := g.Close(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return closeErr
}

// Run is the whole `cryptokeys gateway`: it starts a gateway for cfg,
// listens on cfg.Listen (and cfg.GRPCListen) and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, opts Options) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var grpcLn net.Listener
	if cfg.GRPCListen != "" {
		if grpcLn, err = net.Listen("tcp", cfg.GRPCListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("grpc_listen %s: %w", cfg.GRPCListen, err)
		}
	}
	g, err := New(cfg, opts)
	if err != nil {
		_ = ln.Close()
		if grpcLn != nil {
			_ = grpcLn.Close()
		}
		return err
	}
	return g.ServeListeners(ctx, ln, grpcLn)
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the file
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}
