package gateway

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// metric reads one sample of the gateway's /metrics.
func metric(t *testing.T, gw *runningGateway, name string) float64 {
	t.Helper()
	st, _, body := get(t, gw.url+"/metrics", nil)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

func authz(t *testing.T, gw *runningGateway, key string) (int, string) {
	t.Helper()
	st, h, _ := get(t, gw.url+"/authz", map[string]string{"Authorization": "Bearer " + key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/market/x"})
	return st, first(h, "X-Cryptokeys-Code")
}

// TestIntegration_TokenRenewed: the gateway's token has a 3 s TTL; the
// gateway keeps it alive, so a key first seen 7 s later is still verified
// by the engine.
func TestIntegration_TokenRenewed(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	gw := startGateway(t, e, e.token(t, "-ttl=3s"), "")
	time.Sleep(7 * time.Second)
	k := e.issue(t, "dev-reader") // not cached: the engine is asked with the token
	if st, code := authz(t, gw, k.key); st != 200 {
		t.Fatalf("7 s after start with a 3 s token: %d %s", st, code)
	}
	if n := metric(t, gw, "cryptokeys_gateway_token_renewals_total"); n < 2 {
		t.Errorf("token renewed %v times in 7 s with a 3 s TTL", n)
	}
	if ttl := metric(t, gw, "cryptokeys_gateway_token_ttl_seconds"); ttl <= 0 || ttl > 3 {
		t.Errorf("token TTL metric %v, want in (0, 3]", ttl)
	}
	if st, _, _ := get(t, gw.url+"/readyz", nil); st != 200 {
		t.Errorf("/readyz: %d", st)
	}
}

// TestIntegration_TokenFile: the token in token_file reaches its maximum
// TTL: the gateway says so and fails closed; a new token written to the
// file brings it back.
func TestIntegration_TokenFile(t *testing.T) {
	e := newEngine(t, vaulttest.Shared(t))
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(e.token(t, "-ttl=2s", "-explicit-max-ttl=3s")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	gw := startGateway(t, e, "", fmt.Sprintf("token_file = %q\n", file))
	k := e.issue(t, "dev-reader")
	if st, code := authz(t, gw, k.key); st != 200 {
		t.Fatalf("with a fresh token: %d %s", st, code)
	}
	waitFor(t, 6*time.Second, "failing closed at the token's max TTL", func() bool {
		st, _ := authz(t, gw, k.key)
		return st == 503
	})
	// (No bound on the time: on a loaded machine the watcher's grace
	// varies. Without it the gateway would fail closed only through the
	// verifier's staleness, and /readyz and the log would not name the
	// token.)
	t.Logf("failed closed %s after start (token max TTL 3 s)", time.Since(started).Round(time.Millisecond))
	st, _, body := get(t, gw.url+"/readyz", nil)
	if st != 503 || !strings.Contains(body, "token") {
		t.Errorf("/readyz: %d %s, want 503 naming the token", st, body)
	}
	if !strings.Contains(gw.log.String(), "FAILING CLOSED: the gateway's Vault token can no longer be renewed") {
		t.Errorf("no clear log line:\n%s", gw.log.String())
	}
	if err := os.WriteFile(file, []byte(e.token(t, "-ttl=1h")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ready with the new token", func() bool {
		st, _, _ := get(t, gw.url+"/readyz", nil)
		return st == 200
	})
	k2 := e.issue(t, "dev-reader")
	if st, code := authz(t, gw, k2.key); st != 200 {
		t.Errorf("with the new token: %d %s", st, code)
	}
	if !strings.Contains(gw.log.String(), "token_file changed; using the new token") {
		t.Errorf("no log line for the new token:\n%s", gw.log.String())
	}
}

// TestIntegration_CLIGateway runs the built bin/cryptokeys gateway with
// VAULT_ADDR / VAULT_TOKEN, then stops it with SIGTERM: it exits 0 after
// reporting the usage it counted, which the engine then shows.
func TestIntegration_CLIGateway(t *testing.T) {
	bin := filepath.Join(vaulttest.RepoRoot(), "bin", "cryptokeys")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make scanner` (make test does)", bin)
	}
	srv := vaulttest.Shared(t)
	e := newEngine(t, srv)
	dir := t.TempDir()
	port := freePort(t)
	cfgPath := filepath.Join(dir, "gateway.hcl")
	// usage_interval is long: only the shutdown reports.
	cfg := fmt.Sprintf(baseConfig, e.mount) + "usage_interval = \"1h\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "gateway", "-config", cfgPath, "-listen", fmt.Sprintf("127.0.0.1:%d", port)) // #nosec G204 -- the repository's own binary and a config the test wrote
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+e.token(t))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("gateway output:\n%s", stderr.String())
		}
	})
	gw := &runningGateway{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitFor(t, 15*time.Second, "the gateway ready", func() bool {
		st, _, _ := get(t, gw.url+"/readyz", nil)
		return st == 200
	})
	k := e.issue(t, "dev-reader")
	for i := 0; i < 5; i++ {
		if st, code := authz(t, gw, k.key); st != 200 {
			t.Fatalf("authz: %d %s", st, code)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15 s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "pending usage reported") {
		t.Errorf("no report of pending usage in:\n%s", stderr.String())
	}
	// The first verify went to the engine (counted there), the other four
	// were cache hits the shutdown reported.
	waitFor(t, 5*time.Second, "use_count 5", func() bool {
		s, err := srv.Client.Logical().Read(e.mount + "/keys/" + k.id)
		if err != nil || s == nil {
			return false
		}
		n, _ := s.Data["use_count"].(interface{ String() string })
		return n != nil && n.String() == "5"
	})
}
