package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// traefikBin is the real Traefik that `make traefik` builds from the Go
// module proxy (tools/traefik) into bin/traefik; CK_TRAEFIK_BIN overrides.
// Traefik is not packaged in Debian, so without it the Traefik tests skip
// (make test builds it first).
func traefikBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CK_TRAEFIK_BIN")
	if bin == "" {
		bin = filepath.Join(vaulttest.RepoRoot(), "bin", "traefik")
	}
	if _, err := os.Stat(bin); err != nil { // #nosec G703 -- the test's own Traefik path (bin/ or CK_TRAEFIK_BIN), only checked for existence
		t.Skipf("no Traefik at %s: run `make traefik` (it builds Traefik from the Go module proxy; make test does)", bin)
	}
	return bin
}

// startTraefik runs the real Traefik with the shipped dynamic config
// (examples/gateway/traefik/dynamic.yml, only its addresses replaced) in
// front of up, asking gw, and waits until the config is loaded.
func startTraefik(t *testing.T, bin string, gw *runningGateway, up *upstream) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	dynamic := example(t, "traefik/dynamic.yml",
		"http://127.0.0.1:8181/authz", gw.url+"/authz",
		"http://127.0.0.1:9000", up.URL,
	)
	dynPath := filepath.Join(dir, "dynamic.yml")
	if err := os.WriteFile(dynPath, []byte(dynamic), 0o600); err != nil {
		t.Fatal(err)
	}
	// Test-only static config: the snippet's entry point "web" on a free
	// loopback port, the file provider reading the snippet, no dashboard,
	// no calls home.
	static := fmt.Sprintf(`global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:%d"
providers:
  file:
    filename: %q
    watch: false
log:
  level: DEBUG
accessLog: {}
`, port, dynPath)
	staticPath := filepath.Join(dir, "traefik.yml")
	if err := os.WriteFile(staticPath, []byte(static), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, []string{"HOME=" + dir}, filepath.Join(dir, "traefik.log"), bin, "--configFile="+staticPath)
	waitPort(t, port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The entry point listens before the file provider's routers are in
	// (until then Traefik answers 404): ready when the gateway answers.
	waitFor(t, 15*time.Second, "Traefik routing /v1/ through the gateway", func() bool {
		_, h, _ := get(t, base+"/v1/market/x", nil)
		return h.Get("X-Cryptokeys-Code") != ""
	})
	return base
}

// TestIntegration_TraefikDecide runs the cases of
// TestIntegration_ProxiesDecide through the real Traefik with the shipped
// snippet: VALID through with the gateway's X-Cryptokeys-* (a client's
// forged ones dropped), the refusals with their statuses, a revocation
// within a second, 429 with Retry-After past rate_burst.
func TestIntegration_TraefikDecide(t *testing.T) {
	bin := traefikBin(t)
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.token(t), "")
	up := newUpstream(t)
	testFrontsDecide(t, e, up, []front{{"traefik", startTraefik(t, bin, gw, up)}})
}

// TestIntegration_TraefikFailClosed is TestIntegration_ProxiesFailClosed
// through Traefik: Vault stopped past max_staleness gives 503 UNAVAILABLE,
// and the key passes again once Vault is back. Then the gateway itself
// stops: Traefik answers 500 (what the guide says) and lets nothing through.
func TestIntegration_TraefikFailClosed(t *testing.T) {
	bin := traefikBin(t)
	srv := vaulttest.Start(t)
	e := newEngine(t, srv)
	gw := startGateway(t, e, "", "")
	up := newUpstream(t)
	url := startTraefik(t, bin, gw, up)
	testFrontsFailClosed(t, srv, e, gw, []front{{"traefik", url}})

	k := e.issue(t, "dev-reader")
	if err := gw.stop(); err != nil {
		t.Fatalf("stopping the gateway: %v", err)
	}
	before := up.count()
	if st, _, body := get(t, url+"/v1/market/x", bearer(k.key)); st != 500 {
		t.Errorf("gateway down: Traefik answered %d %s, want 500", st, body)
	}
	if n := up.count() - before; n != 0 {
		t.Errorf("with the gateway down, %d requests reached the upstream", n)
	}
}
