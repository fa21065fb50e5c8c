package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
)

// gatewayReport holds the gateway's figures in bin/bench.json.
type gatewayReport struct {
	// AddedP50us, AddedP99us: the latency nginx with auth_request to the
	// gateway adds over nginx alone (same run, same concurrency).
	AddedP50us float64 `json:"added_p50_us"`
	AddedP99us float64 `json:"added_p99_us"`
	// RSSMB is the gateway process's resident memory with CachedKeys keys
	// in its cache (100,000 in full mode).
	RSSMB      float64 `json:"rss_mb"`
	CachedKeys int     `json:"cached_keys"`
}

// gatewayFigures measures `cryptokeys gateway` behind the real nginx with
// the shipped auth_request config, against srv (keys: api keys of role
// bench on mount), interleaved in one run at one concurrency:
//
//   - nginx_plain: nginx proxying to a small upstream, no auth;
//   - nginx_gateway: the same through auth_request to the gateway (keys
//     cached: the fast path);
//   - nginx_gateway_engine: the same through a second gateway whose cache
//     lasts 1 ns, so the engine's verify read answers every request.
//
// Then the first gateway's cache is filled with every key and its RSS read.
func gatewayFigures(t *testing.T, r *report, srv *vaulttest.Server, mount string, keys []string, m mode) {
	t.Helper()
	root := vaulttest.RepoRoot()
	bin := filepath.Join(root, "bin", "cryptokeys")
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 == nil {
			nginx = "/usr/sbin/nginx"
		}
	}
	if nginx == "" {
		r.Notes = append(r.Notes, "nginx not installed (make proxies): gateway figures skipped")
		return
	}
	if _, err := os.Stat(bin); err != nil {
		r.Notes = append(r.Notes, "bin/cryptokeys not built: gateway figures skipped")
		return
	}
	// The gateway verifies by read: the key in a header the mount must pass
	// through (a cryptokeys_secrets_engine mount does).
	srv.MustCLI(t, "secrets", "tune", "-passthrough-request-headers="+wire.VerifyHeader, mount)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	}))
	t.Cleanup(up.Close)

	fast := startGatewayProcess(t, srv, bin, mount, "")
	slow := startGatewayProcess(t, srv, bin, mount, `cache_ttl = "1ns"`+"\n")
	ports, nginxPID := startBenchNginx(t, nginx, strings.TrimPrefix(up.URL, "http://"), fast.addr, slow.addr)
	// Where each path's CPU goes: nginx (master and workers), each gateway,
	// Vault and its plugin, and this process (load generator and upstream).
	vaultCPU := cpuMeter(t, srv)
	meter := func() map[string]time.Duration {
		out := vaultCPU()
		add := func(name string, pid int) {
			if d, err := ProcessCPU(pid); err == nil {
				out[name] += d
			}
		}
		add("nginx", nginxPID)
		for _, pid := range childPIDs(nginxPID) {
			add("nginx", pid)
		}
		add("gateway", fast.pid)
		add("gateway_engine", slow.pid)
		return out
	}

	c := NewClient("http://"+ports[0], "", m.concurrency)
	cg := NewClient("http://"+ports[1], "", m.concurrency)
	ce := NewClient("http://"+ports[2], "", m.concurrency)
	hot := keys[:min(len(keys), 1000)]
	hdrs := make([]http.Header, len(hot))
	for i, k := range hot {
		hdrs[i] = http.Header{"Authorization": {"Bearer " + k}}
	}
	// Warm the fast gateway's cache with the keys the run uses.
	fillCache(t, NewClient("http://"+fast.addr, "", m.concurrency), hot, m.concurrency)
	ok := []byte(`"ok":true`)
	pick := func(w, i int) http.Header { return hdrs[(w*7919+i)%len(hdrs)] }
	waitQuiet(t, r, m, "before the gateway measurements")
	res := RunInterleaved(m.concurrency, m.duration, m.rounds, meter, []Op{
		{Name: "nginx_plain", Do: func(w, i int) error { return c.DoWith("GET", "market/btc-usd", pick(w, i), nil, 200, ok) }},
		{Name: "nginx_gateway", Do: func(w, i int) error { return cg.DoWith("GET", "market/btc-usd", pick(w, i), nil, 200, ok) }},
		{Name: "nginx_gateway_engine", Do: func(w, i int) error { return ce.DoWith("GET", "market/btc-usd", pick(w, i), nil, 200, ok) }},
	})
	for _, name := range []string{"nginx_plain", "nginx_gateway", "nginx_gateway_engine"} {
		mm := res[name]
		r.Measurements[name] = mm
		c := mm.CPUusPerRequest
		t.Logf("%-22s %9.0f req/s  p50 %6.0f us  p99 %6.0f us  (%d errors)  CPU per request: nginx %.0f us, gateway %.0f us, engine gateway %.0f us, vault %.0f us, plugin %.0f us, load+upstream %.0f us; idle %.0f us", name, mm.RPS, mm.P50us, mm.P99us, mm.Errors, c["nginx"], c["gateway"], c["gateway_engine"], c["vault"], c["plugin"], c["load"], c["idle"])
		if mm.Requests == 0 || mm.Errors > mm.Requests/100 {
			t.Errorf("%s: %d requests, %d errors", name, mm.Requests, mm.Errors)
		}
	}
	plain, gw, eng := res["nginx_plain"], res["nginx_gateway"], res["nginx_gateway_engine"]
	r.Ratios["gateway_nginx_vs_nginx"] = gw.RPS / plain.RPS
	r.Ratios["gateway_vs_engine_verify"] = gw.RPS / eng.RPS
	r.Gateway.AddedP50us = gw.P50us - plain.P50us
	r.Gateway.AddedP99us = gw.P99us - plain.P99us

	// RSS with every key cached (100,000 in full mode).
	fillCache(t, NewClient("http://"+fast.addr, "", m.concurrency), keys, m.concurrency)
	r.Gateway.CachedKeys = int(gatewayMetric(t, fast.addr, "cryptokeys_gateway_cache_entries"))
	r.Gateway.RSSMB = rssMB(fast.pid)
	t.Logf("gateway: added latency p50 %.0f us p99 %.0f us; RSS %.1f MB with %d cached keys", r.Gateway.AddedP50us, r.Gateway.AddedP99us, r.Gateway.RSSMB, r.Gateway.CachedKeys)
	if r.Gateway.CachedKeys < len(keys)*99/100 {
		t.Errorf("the gateway cached %d of %d keys", r.Gateway.CachedKeys, len(keys))
	}
}

type gatewayProc struct {
	addr string
	pid  int
}

// startGatewayProcess runs bin/cryptokeys gateway against srv with the root
// token, in its own process group, stopped when the test ends.
func startGatewayProcess(t *testing.T, srv *vaulttest.Server, bin, mount, extra string) gatewayProc {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`mount = %q
environment = "prod"
listen = %q
trusted_proxies = ["127.0.0.1/32"]
usage_interval = "10s"
route "GET /v1/market/*" {
  scopes = ["read"]
}
`, mount, addr) + extra
	path := filepath.Join(dir, "gateway.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "gateway.log")) // #nosec G304 -- the test's temp dir
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "gateway", "-config", path, "-log-level", "warn") // #nosec G204 -- this repository's own binary
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.Token)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "gateway.log")) // #nosec G304 -- the test's temp dir
			t.Fatalf("the gateway did not get ready:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return gatewayProc{addr: addr, pid: cmd.Process.Pid}
}

// startBenchNginx runs nginx with the shipped auth_request snippets:
// three servers, plain, through the fast gateway and through the engine
// gateway. It returns their addresses in that order, and the master's pid.
func startBenchNginx(t *testing.T, nginx, upstream, fast, slow string) ([]string, int) {
	t.Helper()
	dir := t.TempDir()
	ex := func(rel string, repl ...string) string {
		b, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "gateway", "nginx", rel)) // #nosec G304 -- the repository's examples
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for i := 0; i+1 < len(repl); i += 2 {
			if !strings.Contains(s, repl[i]) {
				t.Fatalf("examples/gateway/nginx/%s no longer contains %q", rel, repl[i])
			}
			s = strings.ReplaceAll(s, repl[i], repl[i+1])
		}
		return s
	}
	files := map[string]string{
		"fast-http.conf":           ex("cryptokeys-http.conf", "127.0.0.1:8181", fast),
		"slow-http.conf":           ex("cryptokeys-http.conf", "127.0.0.1:8181", slow, "cryptokeys_gateway", "cryptokeys_engine_gateway"),
		"fast-server.conf":         ex("cryptokeys-server.conf"),
		"slow-server.conf":         ex("cryptokeys-server.conf", "cryptokeys_gateway", "cryptokeys_engine_gateway"),
		"cryptokeys-location.conf": ex("cryptokeys-location.conf"),
	}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	files["nginx.conf"] = fmt.Sprintf(`daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
worker_processes auto;
%[6]s
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream api { server %[2]s; keepalive 32; }
    include %[1]s/fast-http.conf;
    include %[1]s/slow-http.conf;
    server {
        listen %[3]s;
        location /v1/ { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    server {
        listen %[4]s;
        include %[1]s/fast-server.conf;
        location /v1/ { include %[1]s/cryptokeys-location.conf; proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    server {
        listen %[5]s;
        include %[1]s/slow-server.conf;
        location /v1/ { include %[1]s/cryptokeys-location.conf; proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
`, dir, upstream, addrs[0], addrs[1], addrs[2], map[bool]string{true: "user root;", false: ""}[os.Geteuid() == 0])
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "nginx.conf")
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil { // #nosec G204 -- nginx and a config the test wrote
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")) // #nosec G204 -- nginx and a config the test wrote
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	for _, a := range addrs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if conn, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
				_ = conn.Close()
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(dir, "error.log")) // #nosec G304 -- the test's temp dir
				t.Fatalf("nginx is not listening on %s:\n%s", a, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs, cmd.Process.Pid
}

// childPIDs are the children of pid (nginx's workers of its master).
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children") // #nosec G304 -- a pid this test started
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// fillCache asks the gateway's /authz once for every key, so each is
// verified by the engine and cached.
func fillCache(t *testing.T, c *Client, keys []string, concurrency int) {
	t.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(keys) {
					return
				}
				req, _ := http.NewRequest("GET", c.Addr+"/authz", nil)
				req.Header.Set("Authorization", "Bearer "+keys[i])
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("X-Original-URI", "/v1/market/btc-usd")
				resp, err := c.HTTP.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > int64(len(keys)/100) {
		t.Fatalf("filling the gateway's cache: %d of %d refused", n, len(keys))
	}
}

func gatewayMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, l := range strings.Split(sb.String(), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// rssMB is a process's resident memory now (VmRSS).
func rssMB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status") // #nosec G304 -- a pid this test started
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBenchGateway measures only the gateway figures, for work on the
// gateway (the report is logged, bin/bench.json is left alone):
//
//	CK_BENCH_ONLY=gateway CK_BENCH=full go test ./bench -run TestBenchGateway -v -timeout 30m
func TestBenchGateway(t *testing.T) {
	m := onlyPart(t, "gateway")
	srv := vaulttest.Start(t)
	mount := srv.Mount(t)
	srv.MustCLI(t, "write", mount+"/roles/bench", "environment=prod", "scopes=read,trade", "ttl=24h")
	keys := seed(t, NewClient(srv.Addr, srv.Token, m.concurrency), mount, "bench", m.largeKeys, m.concurrency*2)
	r := newReport(m)
	waitQuiet(t, r, m, "before the gateway")
	gatewayFigures(t, r, srv, mount, keys, m)
	t.Logf("gateway_nginx_vs_nginx %.2f, gateway_vs_engine_verify %.2f, notes %q", r.Ratios["gateway_nginx_vs_nginx"], r.Ratios["gateway_vs_engine_verify"], r.Notes)
}
