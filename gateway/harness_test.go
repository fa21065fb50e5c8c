package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/go-hclog"
)

func TestMain(m *testing.M) { vaulttest.Main(m) }

// engine is a mount of the real plugin on a real Vault, set up for the
// gateway: the verify header passed through, a few roles.
type engine struct {
	srv   *vaulttest.Server
	mount string
}

func newEngine(t *testing.T, srv *vaulttest.Server) *engine {
	t.Helper()
	e := &engine{srv: srv, mount: srv.Mount(t)}
	srv.MustCLI(t, "secrets", "tune", "-passthrough-request-headers="+wire.VerifyHeader, e.mount)
	srv.MustCLI(t, "write", e.mount+"/roles/dev-reader", "environment=dev", "scopes=read", "ttl=1h")
	srv.MustCLI(t, "write", e.mount+"/roles/dev-trader", "environment=dev", "scopes=read,trade", "ttl=1h", "rate_limit=1", "rate_burst=3")
	srv.MustCLI(t, "write", e.mount+"/roles/prod-reader", "environment=prod", "scopes=read,trade", "ttl=1h")
	return e
}

// token creates a token with the shipped gateway policy
// (examples/gateway/gateway-policy.hcl) for this mount.
func (e *engine) token(t *testing.T, args ...string) string {
	t.Helper()
	pol := "gw-" + e.mount
	if err := e.srv.Client.Sys().PutPolicy(pol, example(t, "gateway-policy.hcl", `"cryptokeys/`, `"`+e.mount+`/`)); err != nil {
		t.Fatal(err)
	}
	out := e.srv.MustCLI(t, append([]string{"token", "create", "-policy=" + pol, "-field=token"}, args...)...)
	return strings.TrimSpace(out)
}

type issued struct{ key, id string }

func (e *engine) issue(t *testing.T, role string) issued {
	t.Helper()
	s, err := e.srv.Client.Logical().Read(e.mount + "/creds/" + role)
	if err != nil {
		t.Fatalf("creds/%s: %v", role, err)
	}
	k, _ := s.Data["api_key"].(string)
	id, _ := s.Data["key_id"].(string)
	if k == "" || id == "" {
		t.Fatalf("creds/%s: no key in %v", role, s.Data)
	}
	return issued{k, id}
}

func (e *engine) revoke(t *testing.T, id string) {
	t.Helper()
	if _, err := e.srv.Client.Logical().Delete(e.mount + "/keys/" + id); err != nil {
		t.Fatalf("revoke %s: %v", id, err)
	}
}

// syncBuffer is a log sink tests can read while the gateway writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type runningGateway struct {
	g    *Gateway
	addr string // 127.0.0.1:port
	url  string
	// grpcAddr is the gRPC listener (Envoy ext_authz), 127.0.0.1:port.
	grpcAddr string
	log      *syncBuffer
	stop     func() error
	// accepts counts the connections the HTTP listener accepted.
	accepts *atomic.Int64
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

const baseConfig = `
mount           = "%s"
environment     = "dev"
trusted_proxies = ["127.0.0.1/32"]
poll_interval   = "100ms"
max_staleness   = "2s"

route "GET /v1/market/*" {
  scopes = ["read"]
}
route "POST /v1/orders" {
  scopes = ["trade"]
}
`

// startGateway runs a gateway in this process on a free port, with a
// client of its own (token tok, or the root token when ""), and waits
// until it is ready.
func startGateway(t *testing.T, e *engine, tok, extra string) *runningGateway {
	t.Helper()
	return startGatewayOpts(t, e, tok, extra, Options{})
}

// startGatewayOpts is startGateway with options (Client, Logger and the
// test's short intervals are set here).
func startGatewayOpts(t *testing.T, e *engine, tok, extra string, opts Options) *runningGateway {
	t.Helper()
	cfg, err := ParseConfig([]byte(fmt.Sprintf(baseConfig, e.mount)+extra), "gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	client, err := e.srv.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	if tok == "" {
		tok = e.srv.Token
	}
	client.SetToken(tok)
	rg := &runningGateway{log: &syncBuffer{}, accepts: &atomic.Int64{}}
	logger := hclog.New(&hclog.LoggerOptions{Name: "gateway", Output: rg.log, Level: hclog.Debug})
	opts.Client, opts.Logger, opts.TokenFileInterval, opts.StartRetry = client, logger, 100*time.Millisecond, 200*time.Millisecond
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := countingListener{tcp, rg.accepts}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.ServeListeners(ctx, ln, gln) }()
	var once sync.Once
	var stopErr error
	rg.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() {
		_ = rg.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", rg.log.String())
		}
	})
	rg.g, rg.addr, rg.url, rg.grpcAddr = g, ln.Addr().String(), "http://"+ln.Addr().String(), gln.Addr().String()
	waitFor(t, 15*time.Second, "gateway ready", func() bool {
		st, _, _ := get(t, rg.url+"/readyz", nil)
		return st == 200
	})
	return rg
}

// upstream is the API behind the proxy: it answers with what it saw.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

type seen struct {
	Method  string            `json:"method"`
	URI     string            `json:"uri"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, URI: r.RequestURI, Headers: map[string]string{}, Body: string(body)}
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-Cryptokeys-") {
				s.Headers[k] = strings.Join(v, "|")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url string, hdr map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func get(t *testing.T, url string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	return do(t, "GET", url, hdr, "")
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proxyBin finds a proxy binary or fails, telling how to get it (make
// proxies installs nginx and caddy).
func proxyBin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name, filepath.Join(vaulttest.RepoRoot(), "bin", name)} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed: run `make proxies` (make test does)", name)
	return ""
}

// startProcess runs a proxy in its own process group, stopped (SIGTERM,
// then SIGKILL) when the test ends, also on failure.
func startProcess(t *testing.T, env []string, logPath string, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(logPath) // #nosec G304 -- a path the test made (temp dir or the repository)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...) // #nosec G204 -- the proxy binary and its args come from the test itself
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath) // #nosec G304 -- a path the test made (temp dir or the repository)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// example reads a shipped file under examples/gateway and makes the
// replacements (old, new, old, new, ...), each of which must occur.
func example(t *testing.T, rel string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "gateway", rel)) // #nosec G304 -- a path the test made (temp dir or the repository)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("examples/gateway/%s no longer contains %q", rel, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

// startNginx runs the shipped nginx example in front of up, asking gw.
func startNginx(t *testing.T, gw *runningGateway, up *upstream) string {
	t.Helper()
	bin := proxyBin(t, "nginx")
	dir := t.TempDir()
	port := freePort(t)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	files := map[string]string{
		"cryptokeys-http.conf":     example(t, "nginx/cryptokeys-http.conf", "127.0.0.1:8181", gw.addr),
		"cryptokeys-server.conf":   example(t, "nginx/cryptokeys-server.conf"),
		"cryptokeys-location.conf": example(t, "nginx/cryptokeys-location.conf"),
		"nginx.conf": example(t, "nginx/nginx.conf",
			"listen 127.0.0.1:8080", fmt.Sprintf("listen 127.0.0.1:%d", port),
			"127.0.0.1:9000", upAddr,
			"/etc/nginx/cryptokeys/", dir+"/") +
			// Test-only: a private prefix, no daemon, logs in the temp dir.
			"",
	}
	main := fmt.Sprintf("daemon off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log info;\n", dir)
	if os.Geteuid() == 0 {
		main += "user root;\n" // workers must read and write the test's temp dir
	}
	files["nginx.conf"] = main + strings.Replace(files["nginx.conf"], "http {", fmt.Sprintf(`http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
`, dir), 1)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil { // #nosec G204 -- the proxy binary and its args come from the test itself
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	startProcess(t, nil, filepath.Join(dir, "stderr.log"), bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitPort(t, port)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log")) // #nosec G304 -- a path the test made (temp dir or the repository)
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	return base
}

// startCaddy runs the shipped Caddyfile in front of up, asking gw.
func startCaddy(t *testing.T, gw *runningGateway, up *upstream) string {
	t.Helper()
	bin := proxyBin(t, "caddy")
	dir := t.TempDir()
	port := freePort(t)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	cf := example(t, "caddy/Caddyfile",
		"127.0.0.1:8181", gw.addr,
		"127.0.0.1:9000", upAddr,
		"http://127.0.0.1:8080", fmt.Sprintf("http://127.0.0.1:%d", port),
	)
	// Test-only: no admin endpoint (its port 2019 would clash between
	// tests), state in the temp dir.
	cf = strings.Replace(cf, "{\n", "{\n\tadmin off\n\tstorage file_system "+filepath.Join(dir, "data")+"\n", 1)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"), "HOME=" + dir}
	startProcess(t, env, filepath.Join(dir, "caddy.log"), bin, "run", "--config", path, "--adapter", "caddyfile")
	waitPort(t, port)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("a listener on 127.0.0.1:%d", port), func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
}
